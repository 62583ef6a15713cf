// SPDX-License-Identifier: MIT
// The name policy's settings: repeatable lists, domain patterns, addresses,
// DNS servers and rate limits are checked before anything starts, with
// errors that name the flag.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_RATE_LIMIT_CLIENT_SHARE, DEFAULT_RATE_LIMIT_DOMAIN, DEFAULT_RATE_LIMIT_TOTAL } from '../../../src/certs/policy';
import { loadSettings } from '../../../src/config/load';
import { checkDnsServer, normaliseDomainPattern, splitList } from '../../../src/config/name-lists';
import { OPTIONS } from '../../../src/config/options';
import { parseRateLimit, parseShare } from '../../../src/config/rate-limit';
import { NAME_POLICY_OPTION_NAMES, namePolicyOptions } from '../../../src/daemon/name-policy-settings';

const H = 3_600_000;
const D = 86_400_000;

test('rate limits: COUNT/PERIOD lists, bare units, off; sorted shortest window first', () => {
  assert.deepEqual(parseRateLimit('5/1h,40/7d'), [{ count: 5, windowMs: H }, { count: 40, windowMs: 7 * D }]);
  assert.deepEqual(parseRateLimit(' 40/7d , 5/h '), [{ count: 5, windowMs: H }, { count: 40, windowMs: 7 * D }]);
  assert.deepEqual(parseRateLimit('10/30m'), [{ count: 10, windowMs: 30 * 60_000 }]);
  assert.deepEqual(parseRateLimit('off'), []);
  for (const bad of ['', '5', '5/', '/1h', '0/1h', '5/1x', '5/100ms', '5/40d', 'five/1h', '5/1h,', '-1/1h']) {
    assert.throws(() => parseRateLimit(bad), { code: 'JFE_ERR_CONFIG_INVALID' }, bad);
  }
});

test('a client\'s share: a percentage from 1% to 100%, or off (100%)', () => {
  assert.equal(parseShare('25%'), 0.25);
  assert.equal(parseShare(' 100% '), 1);
  assert.equal(parseShare('1 %'), 0.01);
  assert.equal(parseShare('off'), 1);
  for (const bad of ['', '0%', '101%', '25', '0.25', '-5%', '2.5%', 'half']) {
    assert.throws(() => parseShare(bad), { code: 'JFE_ERR_CONFIG_INVALID', message: /is not a share/ }, bad);
  }
});

test('the defaults in the option table are the policy\'s own defaults', () => {
  assert.deepEqual(parseRateLimit(String(OPTIONS.rateLimitDomain.default)), DEFAULT_RATE_LIMIT_DOMAIN);
  assert.deepEqual(parseRateLimit(String(OPTIONS.rateLimitTotal.default)), DEFAULT_RATE_LIMIT_TOTAL);
  assert.equal(parseShare(String(OPTIONS.rateLimitClientShare.default)), DEFAULT_RATE_LIMIT_CLIENT_SHARE);
});

test('lists: a repeated flag (array) and comma or space separated values', () => {
  assert.deepEqual(splitList('a.com,b.com'), ['a.com', 'b.com']);
  assert.deepEqual(splitList(['a.com', 'b.com, c.com']), ['a.com', 'b.com', 'c.com']);
  assert.deepEqual(splitList(' '), []);
});

test('domain patterns: names and *.names, normalised; wildcards elsewhere, bad labels and public suffixes refused', () => {
  assert.equal(normaliseDomainPattern('Example.COM.'), 'example.com');
  assert.equal(normaliseDomainPattern('*.Example.com'), '*.example.com');
  assert.equal(normaliseDomainPattern('*.example.co.uk'), '*.example.co.uk');
  assert.equal(normaliseDomainPattern('com'), 'com'); // exact: allows only the name "com", harmless
  for (const bad of ['*', '*.', 'a.*.example.com', '*example.com', 'exa_mple.com', '-a.com', 'a..com', '1.2.3.4', `${'a'.repeat(64)}.com`, 'http://x.com']) {
    assert.throws(() => normaliseDomainPattern(bad), { code: 'JFE_ERR_CONFIG_INVALID', message: /is not a domain/ }, bad);
  }
  for (const suffix of ['*.com', '*.co.uk', '*.github.io']) {
    assert.throws(() => normaliseDomainPattern(suffix), { code: 'JFE_ERR_CONFIG_INVALID', message: /covers the public suffix/ }, suffix);
  }
});

test('dns servers: IP with optional port', () => {
  for (const ok of ['10.0.0.53', '10.0.0.53:5353', 'fd00::53', '[fd00::53]:5353', '[fd00::53]']) assert.equal(checkDnsServer(ok), ok);
  for (const bad of ['dns.example', '10.0.0.53:0', '10.0.0.53:70000', 'fd00::53:5353x', '[10.0.0.53]:53', '10.0.0:53']) {
    assert.throws(() => checkDnsServer(bad), { code: 'JFE_ERR_CONFIG_INVALID' }, bad);
  }
});

test('loaded settings: flags repeat, env is comma-separated, defaults allow nothing', () => {
  const none = loadSettings({}, NAME_POLICY_OPTION_NAMES, { env: {} });
  assert.deepEqual(namePolicyOptions(none), {
    domains: [],
    askUrl: null,
    askTimeoutMs: 3000,
    publicIps: [],
    dnsServer: null,
    rateLimitDomain: DEFAULT_RATE_LIMIT_DOMAIN,
    rateLimitTotal: DEFAULT_RATE_LIMIT_TOTAL,
    rateLimitClientShare: DEFAULT_RATE_LIMIT_CLIENT_SHARE,
    negativeCacheTtlMs: 600_000,
    negativeCacheSize: 10_000,
  });
  const s = loadSettings(
    { domain: ['Shop.Example.com', '*.example.org,shop.example.com'], publicIp: ['203.0.113.7'], dnsServer: '127.0.0.1:8053', rateLimitTotal: 'off' },
    NAME_POLICY_OPTION_NAMES,
    { env: { JFE_ASK: 'http://127.0.0.1:9/allow?token=x', JFE_PUBLIC_IP: 'ignored.when.flag.given', JFE_NEGATIVE_CACHE_TTL: '30s' } },
  );
  const o = namePolicyOptions(s);
  assert.deepEqual(o.domains, ['shop.example.com', '*.example.org']);
  assert.deepEqual(o.publicIps, ['203.0.113.7']);
  assert.equal(o.askUrl, 'http://127.0.0.1:9/allow?token=x');
  assert.equal(o.dnsServer, '127.0.0.1:8053');
  assert.deepEqual(o.rateLimitTotal, []);
  assert.equal(o.negativeCacheTtlMs, 30_000);
  const fromEnv = loadSettings({}, ['domain', 'publicIp'] as const, { env: { JFE_DOMAIN: 'a.example.com, *.b.example.com', JFE_PUBLIC_IP: '203.0.113.7 2001:db8::7' } });
  assert.deepEqual(fromEnv, { domain: ['a.example.com', '*.b.example.com'], publicIp: ['203.0.113.7', '2001:db8::7'] });
});

test('bad policy settings name the flag (command line)', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ domain: ['ok.example.com', '*.co.uk'] }, /^invalid --domain \(command line\): "\*\.co\.uk" covers the public suffix "co\.uk"/],
    [{ publicIp: 'my.host' }, /^invalid --public-ip \(command line\): "my\.host" is not an IP address$/],
    [{ ask: 'ftp://x' }, /^invalid --ask \(command line\): must be an http\(s\) URL/],
    [{ dnsServer: 'resolver.example' }, /^invalid --dns-server \(command line\): "resolver\.example" is not a DNS server/],
    [{ rateLimitDomain: '5' }, /^invalid --rate-limit-domain \(command line\): "5" is not a rate limit/],
    [{ rateLimitClientShare: '0.25' }, /^invalid --rate-limit-client-share \(command line\): "0\.25" is not a share/],
    [{ negativeCacheTtl: '10' }, /^invalid --negative-cache-ttl \(command line\): "10" is not a duration/],
  ];
  for (const [argv, msg] of cases) {
    assert.throws(() => loadSettings(argv, NAME_POLICY_OPTION_NAMES, { env: {} }), { code: 'JFE_ERR_CONFIG_INVALID', message: msg });
  }
});

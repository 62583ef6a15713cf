// SPDX-License-Identifier: MIT
// The name policy's rules, one by one, with fakes only at its seams (clock,
// DNS answer, ask answer, the host's addresses): which names pass, the
// reason of each refusal, that a refusal costs no lookup it need not, the
// negative cache, the rate limits and the sharing of concurrent lookups.
// policy-real.test.ts runs the same policy against a real DNS and HTTP server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AskOutcome } from '../../../src/certs/ask-url';
import type { AcmeDeferral, CertEvents, PolicyRefusal } from '../../../src/certs/cert-events';
import type { Resolved } from '../../../src/certs/name-resolver';
import { type NamePolicyOptions, createNamePolicy, matchesDomain } from '../../../src/certs/policy';
import { bufferLogger } from './temp-state';

const HOST = '203.0.113.10';
const MIN = 60_000;

interface Harness {
  check(name: string, dialled?: string | null, client?: string | null): Promise<string>;
  policy: ReturnType<typeof createNamePolicy>;
  dns: Map<string, Resolved>;
  askAnswers: Map<string, AskOutcome>;
  lookups: string[];
  asks: string[];
  refusals: PolicyRefusal[];
  deferrals: AcmeDeferral[];
  clock: { now: number };
  log: ReturnType<typeof bufferLogger>;
  /** Resolves every pending DNS/ask answer (when `gated`). */
  open(): void;
}

function harness(opts: Partial<NamePolicyOptions> = {}, h: { gated?: boolean; local?: string[] } = {}): Harness {
  const dns = new Map<string, Resolved>();
  const askAnswers = new Map<string, AskOutcome>();
  const lookups: string[] = [];
  const asks: string[] = [];
  const refusals: PolicyRefusal[] = [];
  const deferrals: AcmeDeferral[] = [];
  const clock = { now: 1_000_000 };
  const log = bufferLogger();
  let open: () => void = () => undefined;
  let gate = Promise.resolve();
  if (h.gated === true) gate = new Promise<void>((r) => (open = r));
  const events: CertEvents = { issued: () => undefined, expiry: () => undefined, policyRefused: (r) => refusals.push(r), acmeDeferred: (r) => deferrals.push(r) };
  const local = new Set(h.local ?? [HOST, '2001:db8::10', '10.0.0.10']);
  const policy = createNamePolicy(
    { domains: ['shop.example.com', '*.example.org', '*.example.co.uk'], askUrl: null, publicIps: [], ...opts },
    {
      log,
      events,
      now: () => clock.now,
      resolve: async (name) => {
        lookups.push(name);
        await gate;
        return dns.get(name) ?? { addresses: [], error: null };
      },
      ask: async (_url, name) => {
        asks.push(name);
        await gate;
        return askAnswers.get(name) ?? { result: 'refused', status: 404 };
      },
      isLocalAddress: (ip) => local.has(ip),
    },
  );
  const check = async (name: string, dialled: string | null = HOST, client: string | null = null): Promise<string> => {
    const v = await policy.check(name, dialled, client);
    return v.ok ? 'ok' : v.reason;
  };
  return { check, policy, dns, askAnswers, lookups, asks, refusals, deferrals, clock, log, open: () => open() };
}

const here = (...addresses: string[]): Resolved => ({ addresses: addresses.length ? addresses : [HOST], error: null });

test('domain patterns: exact, or *.suffix for every name below it', () => {
  assert.ok(matchesDomain('shop.example.com', 'shop.example.com'));
  assert.ok(!matchesDomain('www.shop.example.com', 'shop.example.com'));
  assert.ok(matchesDomain('a.example.org', '*.example.org'));
  assert.ok(matchesDomain('b.a.example.org', '*.example.org'));
  assert.ok(!matchesDomain('example.org', '*.example.org'), 'the apex is not below itself');
  assert.ok(!matchesDomain('badexample.org', '*.example.org'));
  assert.ok(!matchesDomain('example.org.evil.net', '*.example.org'));
});

test('syntax: IP literals, wildcards and invalid names are refused before anything else', async () => {
  const p = harness();
  const cases: [string, PolicyRefusal][] = [
    ['203.0.113.10', 'ip-literal'],
    ['2001:db8::10', 'ip-literal'],
    ['::ffff:203.0.113.10', 'ip-literal'],
    ['*.example.org', 'wildcard'],
    ['a.*.example.org', 'wildcard'],
    ['under_score.example.org', 'invalid-name'],
    ['-lead.example.org', 'invalid-name'],
    ['trail-.example.org', 'invalid-name'],
    ['a..example.org', 'invalid-name'],
    ['UPPER.example.org', 'invalid-name'], // callers pass normalised names
    ['dot.example.org.', 'invalid-name'],
    [`${'a'.repeat(64)}.example.org`, 'invalid-name'],
    [`${'a.'.repeat(124)}example.org`, 'invalid-name'], // 259 characters
    ['1.2.3.999', 'invalid-name'],
    ['', 'invalid-name'],
  ];
  for (const [name, reason] of cases) assert.equal(await p.check(name), reason, name);
  assert.deepEqual(p.lookups, [], 'no DNS query for a malformed name');
  assert.equal(await p.check(`${'a'.repeat(63)}.example.org`), 'dns-mismatch', 'a 63-character label is fine');
});

test('allow list: names outside --domain are refused without a lookup; inside, they go on to DNS', async () => {
  const p = harness();
  p.dns.set('shop.example.com', here());
  p.dns.set('x.y.example.org', here());
  assert.equal(await p.check('shop.example.com'), 'ok');
  assert.equal(await p.check('x.y.example.org'), 'ok');
  assert.equal(await p.check('www.shop.example.com'), 'not-allowed');
  assert.equal(await p.check('example.org'), 'not-allowed');
  assert.equal(await p.check('evil.net'), 'not-allowed');
  assert.deepEqual(p.lookups, ['shop.example.com', 'x.y.example.org']);
  assert.deepEqual(p.asks, []);
});

test('with neither --domain nor --ask, nothing is allowed (and nothing is looked up)', async () => {
  const p = harness({ domains: [], askUrl: null });
  p.dns.set('shop.example.com', here());
  assert.equal(await p.check('shop.example.com'), 'not-allowed');
  assert.deepEqual(p.lookups, []);
  assert.ok(p.log.lines.some((l) => l.level === 'warn' && /allows no name/.test(l.msg ?? '')));
});

test('--ask: asked only for names outside --domain; 200 allows, a refusal or an error refuses', async () => {
  const p = harness({ askUrl: 'http://ask.invalid/' });
  p.askAnswers.set('customer.net', { result: 'allowed' });
  p.askAnswers.set('down.net', { result: 'error', detail: 'ECONNREFUSED' });
  for (const n of ['customer.net', 'shop.example.com', 'other.net', 'down.net']) p.dns.set(n, here());
  assert.equal(await p.check('customer.net'), 'ok');
  assert.equal(await p.check('shop.example.com'), 'ok');
  assert.equal(await p.check('other.net'), 'ask-refused');
  assert.equal(await p.check('down.net'), 'ask-error');
  assert.deepEqual(p.asks, ['customer.net', 'other.net', 'down.net'], 'a --domain name is not asked about');
  assert.deepEqual(p.lookups, ['customer.net', 'shop.example.com'], 'a refused name costs no DNS query');
});

test('DNS: the name must resolve to the dialled address or a --public-ip', async () => {
  const p = harness({ publicIps: ['198.51.100.7', '2001:DB8:0::7'] });
  p.dns.set('shop.example.com', here('192.0.2.99', HOST));
  p.dns.set('a.example.org', here('192.0.2.99'));
  p.dns.set('nat.example.org', here('198.51.100.7'));
  p.dns.set('nat6.example.org', here('2001:db8::7'));
  p.dns.set('v6.example.org', here('2001:db8::10'));
  p.dns.set('broken.example.org', { addresses: [], error: 'ESERVFAIL' });
  p.dns.set('half.example.org', { addresses: [HOST], error: 'ETIMEOUT' });
  assert.equal(await p.check('shop.example.com'), 'ok', 'one of its addresses is enough');
  assert.equal(await p.check('a.example.org'), 'dns-mismatch', 'resolves elsewhere');
  assert.equal(await p.check('missing.example.org'), 'dns-mismatch', 'no records at all');
  assert.equal(await p.check('nat.example.org'), 'ok', 'behind NAT: the public address');
  assert.equal(await p.check('nat6.example.org'), 'ok', 'public IPs are compared canonically');
  assert.equal(await p.check('v6.example.org', '2001:0db8:0:0::10'), 'ok', 'the dialled address is compared canonically');
  assert.equal(await p.check('shop.example.com', `::ffff:${HOST}`), 'ok', 'an IPv4 client on a dual-stack socket');
  assert.equal(await p.check('v6.example.org', HOST), 'dns-mismatch', 'the v6 address is not the one dialled');
  assert.equal(await p.check('broken.example.org'), 'dns-error');
  assert.equal(await p.check('half.example.org'), 'ok', 'a failing family does not spoil a matching one');
});

test('no dialled address (a background renewal after a restart): the name must resolve to any of the host\'s addresses or a --public-ip', async () => {
  const p = harness({ publicIps: ['198.51.100.7'] }, { local: [HOST, '10.0.0.10'] });
  p.dns.set('shop.example.com', here('192.0.2.99', '10.0.0.10'));
  p.dns.set('a.example.org', here('192.0.2.99'));
  p.dns.set('nat.example.org', here('198.51.100.7'));
  p.dns.set('lo.example.org', here('127.0.0.1'));
  assert.equal(await p.check('shop.example.com', null), 'ok', 'one local address among its records is enough');
  assert.equal(await p.check('nat.example.org', null), 'ok', 'behind NAT: the public address');
  assert.equal(await p.check('a.example.org', null), 'dns-mismatch', 'resolves elsewhere');
  assert.equal(await p.check('lo.example.org', null), 'dns-mismatch', 'loopback is not an address of this host for others');
  // Remembered apart from any dialled address: a client dialling this host's
  // address for a.example.org is not refused by the renewal's refusal.
  p.dns.set('a.example.org', here('192.0.2.99', HOST));
  assert.equal(await p.check('a.example.org', HOST), 'ok');
  assert.equal(await p.check('a.example.org', null), 'negative-cache');
});

test('the dialled address must be one of the host\'s own (non-loopback) addresses', async () => {
  const p = harness({}, { local: [HOST] });
  p.dns.set('shop.example.com', here('127.0.0.1'));
  assert.equal(await p.check('shop.example.com', '127.0.0.1'), 'dialled-not-local');
  assert.equal(await p.check('shop.example.com', '192.0.2.1'), 'dialled-not-local');
  assert.deepEqual(p.lookups, []);
});

test('every refusal is counted with its reason and logged once with it', async () => {
  const p = harness();
  p.dns.set('a.example.org', here('192.0.2.99'));
  assert.equal(await p.check('evil.net'), 'not-allowed');
  assert.equal(await p.check('10.0.0.1'), 'ip-literal');
  assert.equal(await p.check('a.example.org'), 'dns-mismatch');
  assert.deepEqual(p.refusals, ['not-allowed', 'ip-literal', 'dns-mismatch']);
  const lines = p.log.lines.filter((l) => l.msg === 'certificate name refused by policy');
  assert.deepEqual(lines.map((l) => [l.level, l.obj.name, l.obj.reason]), [
    ['info', 'evil.net', 'not-allowed'],
    ['info', '10.0.0.1', 'ip-literal'],
    ['info', 'a.example.org', 'dns-mismatch'],
  ]);
  assert.deepEqual(lines[2]?.obj.resolved, ['192.0.2.99']);
  assert.equal(lines[2]?.obj.component, 'name-policy');
});

test('negative cache: a refused name is refused again without a lookup until its TTL passes', async () => {
  const p = harness({ negativeCacheTtlMs: 10 * MIN, askUrl: 'http://ask.invalid/' });
  p.dns.set('a.example.org', here('192.0.2.99'));
  assert.equal(await p.check('a.example.org'), 'dns-mismatch');
  assert.equal(await p.check('other.net'), 'ask-refused');
  for (let i = 0; i < 100; i++) {
    assert.equal(await p.check('a.example.org'), 'negative-cache');
    assert.equal(await p.check('other.net'), 'negative-cache');
  }
  assert.equal(p.lookups.length, 1, 'a flood of one bad name costs one lookup');
  assert.equal(p.asks.length, 1);
  assert.equal(p.refusals.filter((r) => r === 'negative-cache').length, 200, 'cached refusals are counted too');
  assert.equal(p.log.lines.filter((l) => l.level === 'info' && l.msg === 'certificate name refused by policy').length, 2, 'repeats log at debug');
  p.dns.set('a.example.org', here());
  p.clock.now += 10 * MIN - 1;
  assert.equal(await p.check('a.example.org'), 'negative-cache');
  p.clock.now += 1;
  assert.equal(await p.check('a.example.org'), 'ok', 'checked anew after the TTL');
});

test('negative cache: failures are remembered for at most a minute', async () => {
  const p = harness({ negativeCacheTtlMs: 10 * MIN });
  p.dns.set('a.example.org', { addresses: [], error: 'ETIMEOUT' });
  assert.equal(await p.check('a.example.org'), 'dns-error');
  p.dns.set('a.example.org', here());
  p.clock.now += MIN - 1;
  assert.equal(await p.check('a.example.org'), 'negative-cache');
  p.clock.now += 1;
  assert.equal(await p.check('a.example.org'), 'ok');
});

test('negative cache: a client dialling the wrong address does not get the name refused for those dialling the right one', async () => {
  const p = harness();
  p.dns.set('shop.example.com', here());
  assert.equal(await p.check('shop.example.com', '10.0.0.10'), 'dns-mismatch');
  assert.equal(await p.check('shop.example.com', '10.0.0.10'), 'negative-cache');
  assert.equal(await p.check('shop.example.com', HOST), 'ok');
});

test('negative cache: bounded; the least recently refused names are forgotten first', async () => {
  const p = harness({ negativeCacheSize: 3 });
  for (const n of ['a', 'b', 'c', 'd']) assert.equal(await p.check(`${n}.example.org`), 'dns-mismatch');
  assert.equal(p.lookups.length, 4);
  assert.equal(await p.check('d.example.org'), 'negative-cache');
  assert.equal(await p.check('b.example.org'), 'negative-cache');
  assert.equal(await p.check('a.example.org'), 'dns-mismatch', 'evicted: looked up again');
  assert.equal(p.lookups.length, 5);
});

test('rate limits: counted by recordOrder, per registered domain; a limited name costs no lookup', async () => {
  const p = harness({ rateLimitDomain: [{ count: 2, windowMs: 60 * MIN }], rateLimitTotal: [{ count: 3, windowMs: 60 * MIN }] });
  for (const n of ['a.example.co.uk', 'b.example.co.uk', 'c.example.co.uk', 'a.other.example.org', 'b.other.example.org']) p.dns.set(n, here());
  assert.equal(await p.check('a.example.co.uk'), 'ok');
  p.policy.recordOrder('a.example.co.uk');
  assert.equal(await p.check('b.example.co.uk'), 'ok');
  p.policy.recordOrder('b.example.co.uk');
  const before = p.lookups.length;
  assert.equal(await p.check('c.example.co.uk'), 'rate-limited', 'a.example.co.uk and b.example.co.uk share example.co.uk');
  assert.equal(p.lookups.length, before, 'refused before the DNS query');
  // *.example.org names all belong to example.org: two more would pass the domain limit, not the total.
  assert.equal(await p.check('a.other.example.org'), 'ok');
  p.policy.recordOrder('a.other.example.org');
  assert.equal(await p.check('b.other.example.org'), 'rate-limited', 'the total of 3 is reached');
  assert.equal(await p.check('b.other.example.org'), 'rate-limited', 'not negative-cached: it frees up on its own');
  p.clock.now += 60 * MIN;
  assert.equal(await p.check('b.other.example.org'), 'ok');
  assert.equal(await p.check('c.example.co.uk'), 'ok');
});

test('rate limits are deferrals, not refusals: counted by the limit reached', async () => {
  const p = harness({ rateLimitDomain: [{ count: 1, windowMs: 60 * MIN }] });
  for (const n of ['a.example.org', 'b.example.org']) p.dns.set(n, here());
  assert.equal(await p.check('a.example.org'), 'ok');
  p.policy.recordOrder('a.example.org');
  assert.equal(await p.check('b.example.org'), 'rate-limited');
  assert.deepEqual(p.deferrals, ['rate-limit-domain']);
  assert.deepEqual(p.refusals, []);
});

test('one client (the flood of the issue: *.example.org, every name resolving here): its names take a quarter of the window, the rest stays for other clients', async () => {
  const p = harness({ rateLimitDomain: [{ count: 8, windowMs: 60 * MIN }] });
  const attacker = '198.51.100.66';
  const names = Array.from({ length: 20 }, (_, i) => `r${i}.example.org`);
  for (const n of [...names, 'r20.example.org', 'www.example.org', 'shop.example.org']) p.dns.set(n, here());
  const verdicts: string[] = [];
  for (const n of names) {
    const v = await p.check(n, HOST, attacker);
    verdicts.push(v);
    if (v === 'ok') p.policy.recordOrder(n);
  }
  assert.equal(verdicts.filter((v) => v === 'ok').length, 2, 'floor(8 × 25%)');
  assert.ok(p.deferrals.every((d) => d === 'rate-limit-client'), p.deferrals.join(' '));
  assert.equal(p.deferrals.length, 18);
  // Real names from other clients still get their orders.
  assert.equal(await p.check('www.example.org', HOST, '203.0.113.7'), 'ok');
  p.policy.recordOrder('www.example.org');
  assert.equal(await p.check('shop.example.org', HOST, '2001:db8:7::1'), 'ok');
  p.policy.recordOrder('shop.example.org');
  // The attacker's next window has room again, for its share only.
  p.clock.now += 60 * MIN;
  assert.equal(await p.check('r20.example.org', HOST, attacker), 'ok');
});

test('IPv6: every address of one /64 is one client; the next /64 is another; a renewal (no client) uses no share', async () => {
  const p = harness({ rateLimitDomain: [{ count: 4, windowMs: 60 * MIN }] });
  for (const n of ['a.example.org', 'b.example.org', 'c.example.org', 'd.example.org']) p.dns.set(n, here());
  assert.equal(await p.check('a.example.org', HOST, '2001:db8:0:1::1'), 'ok');
  p.policy.recordOrder('a.example.org');
  assert.equal(await p.check('b.example.org', HOST, '2001:db8:0:1:ffff::2'), 'rate-limited', 'the same /64: its share (1 of 4) is spent');
  assert.equal(await p.check('b.example.org', HOST, '2001:db8:0:2::1'), 'ok', 'another /64');
  p.policy.recordOrder('b.example.org');
  assert.equal(await p.check('c.example.org', HOST, null), 'ok', 'no client: only the domain and total limits');
});

test('rate limits: of many distinct names checked at once, only as many pass as the limit has room for', async () => {
  const p = harness({ rateLimitDomain: [{ count: 2, windowMs: 60 * MIN }] }, { gated: true });
  const names = Array.from({ length: 20 }, (_, i) => `n${i}.example.org`);
  for (const n of names) p.dns.set(n, here());
  const pending = names.map((n) => p.check(n));
  p.open();
  const verdicts = await Promise.all(pending);
  assert.equal(verdicts.filter((v) => v === 'ok').length, 2);
  assert.equal(verdicts.filter((v) => v === 'rate-limited').length, 18);
});

test('single flight: 50 concurrent checks of one new name cost one DNS query and one ask', async () => {
  const p = harness({ domains: [], askUrl: 'http://ask.invalid/' }, { gated: true });
  p.askAnswers.set('new.example.net', { result: 'allowed' });
  p.dns.set('new.example.net', here());
  const pending = Array.from({ length: 50 }, () => p.check('new.example.net'));
  await new Promise((r) => setImmediate(r));
  p.open();
  assert.deepEqual(new Set(await Promise.all(pending)), new Set(['ok']));
  assert.equal(p.asks.length, 1);
  assert.equal(p.lookups.length, 1);
});

test('single flight: concurrent checks of one bad name share the lookup and are all refused', async () => {
  const p = harness({}, { gated: true });
  p.dns.set('bad.example.org', here('192.0.2.99'));
  const pending = Array.from({ length: 50 }, () => p.check('bad.example.org'));
  await new Promise((r) => setImmediate(r));
  p.open();
  assert.deepEqual(new Set(await Promise.all(pending)), new Set(['dns-mismatch']));
  assert.equal(p.lookups.length, 1);
  assert.equal(await p.check('bad.example.org'), 'negative-cache');
});

test('a flood of distinct bad names: at most 30 info lines a minute, the rest at debug, then a summary', async () => {
  const p = harness();
  for (let i = 0; i < 100; i++) assert.equal(await p.check(`n${i}.evil.net`), 'not-allowed');
  const refusedAt = (level: string) => p.log.lines.filter((l) => l.level === level && l.msg === 'certificate name refused by policy').length;
  assert.equal(refusedAt('info'), 30);
  assert.equal(refusedAt('debug'), 70);
  assert.equal(p.refusals.length, 100, 'every refusal is still counted');
  p.clock.now += MIN;
  await p.check('late.evil.net');
  const summary = p.log.lines.find((l) => /more certificate names refused/.test(l.msg ?? ''));
  assert.equal(summary?.obj.count, 70);
});

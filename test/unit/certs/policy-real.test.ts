// SPDX-License-Identifier: MIT
// The name policy against real components: its DNS check asks a real DNS
// server (pebble-challtestsrv, records added through its management API),
// its --ask check a real HTTP server, and the dialled address is checked
// against this host's own addresses as the kernel reports them.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { askAllows } from '../../../src/certs/ask-url';
import type { PolicyRefusal } from '../../../src/certs/cert-events';
import { readLocalAddresses } from '../../../src/certs/local-addresses';
import { createNameResolver } from '../../../src/certs/name-resolver';
import { createNamePolicy } from '../../../src/certs/policy';
import { requireTools, startChallTestSrv } from '../../helpers/challtestsrv';
import { bufferLogger } from './temp-state';

interface AskServer {
  url: string;
  requests: string[];
}

/** A real HTTP server answering by path: /allow-list?domain=… gives 200 for `allowed`, others give what their path says. */
async function startAskServer(t: { after(fn: () => unknown): void }, allowed: Set<string>): Promise<AskServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const u = new URL(req.url ?? '/', 'http://x');
    const domain = u.searchParams.get('domain') ?? '';
    switch (u.pathname) {
      case '/allow-list':
        res.writeHead(allowed.has(domain) ? 200 : 403).end();
        return;
      case '/status':
        res.writeHead(Number(u.searchParams.get('code'))).end();
        return;
      case '/moved':
        res.writeHead(302, { location: `/allow-list?domain=${encodeURIComponent(domain)}` }).end();
        return;
      case '/moved-away':
        res.writeHead(302, { location: `http://127.0.0.2:${(server.address() as AddressInfo).port}/allow-list?domain=${encodeURIComponent(domain)}` }).end();
        return;
      case '/slow':
        setTimeout(() => res.writeHead(200).end(), 5000).unref();
        return;
      case '/huge':
        // 200 with an endless body: the answer is the status; the body is never read.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        {
          const chunk = Buffer.alloc(64 * 1024);
          const pump = (): void => {
            while (!res.destroyed && res.write(chunk));
            if (!res.destroyed) res.once('drain', pump);
          };
          pump();
        }
        return;
      default:
        res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

test('ask URL against a real HTTP server', async (t) => {
  const ask = await startAskServer(t, new Set(['customer.example.net']));
  const o = { timeoutMs: 1000 };
  assert.deepEqual(await askAllows(`${ask.url}/allow-list`, 'customer.example.net', o), { result: 'allowed' });
  assert.deepEqual(await askAllows(`${ask.url}/allow-list`, 'other.example.net', o), { result: 'refused', status: 403 });
  assert.deepEqual(await askAllows(`${ask.url}/status?code=204`, 'customer.example.net', o), { result: 'refused', status: 204 }, 'only 200 allows');
  assert.deepEqual(await askAllows(`${ask.url}/status?code=500`, 'customer.example.net', o), { result: 'refused', status: 500 });
  assert.deepEqual(await askAllows(`${ask.url}/moved`, 'customer.example.net', o), { result: 'allowed' }, 'a same-origin redirect is followed');
  assert.deepEqual(await askAllows(`${ask.url}/moved-away`, 'customer.example.net', o), { result: 'refused', status: 302, detail: 'redirect to another origin not followed' });
  assert.deepEqual(await askAllows(`${ask.url}/huge`, 'customer.example.net', o), { result: 'allowed' }, 'an endless body does not matter');
  const slow = await askAllows(`${ask.url}/slow`, 'customer.example.net', { timeoutMs: 300 });
  assert.deepEqual(slow, { result: 'error', detail: 'no answer within 300 ms' });
  const closed = await askAllows('http://127.0.0.1:1/', 'customer.example.net', o);
  assert.deepEqual(closed, { result: 'error', detail: 'ECONNREFUSED' });
  // The name is one query parameter, added to those the URL has.
  assert.deepEqual(await askAllows(`${ask.url}/allow-list?token=s3cret`, 'customer.example.net', o), { result: 'allowed' });
  assert.equal(ask.requests.at(-1), '/allow-list?token=s3cret&domain=customer.example.net');
});

test('A/AAAA lookups against a real DNS server', async (t) => {
  if (!requireTools(t, ['pebble-challtestsrv'])) return;
  const dns = await startChallTestSrv(t);
  await dns.addA('both.example.org', ['192.0.2.10', '192.0.2.11']);
  await dns.addAAAA('both.example.org', ['2001:DB8::10']);
  await dns.addA('v4.example.org', ['192.0.2.20']);
  const resolve = createNameResolver({ server: dns.dnsServer, timeoutMs: 1000 });
  assert.deepEqual(await resolve('both.example.org'), { addresses: ['192.0.2.10', '192.0.2.11', '2001:db8::10'], error: null });
  assert.deepEqual(await resolve('v4.example.org'), { addresses: ['192.0.2.20'], error: null }, 'no AAAA is an answer, not an error');
  assert.deepEqual(await resolve('nothing.example.org'), { addresses: [], error: null });
  // A server that never answers: an error, not "no records".
  const dead = createNameResolver({ server: '127.0.0.1:1', timeoutMs: 200 });
  const r = await dead('both.example.org');
  assert.deepEqual(r.addresses, []);
  assert.ok(r.error !== null && /^E[A-Z]+$/.test(r.error), `an error code: ${r.error}`);
});

test('the whole policy against a real DNS server, a real ask server and the kernel\'s addresses', async (t) => {
  if (!requireTools(t, ['pebble-challtestsrv'])) return;
  const [hostAddr] = [...readLocalAddresses()].filter((a) => !a.includes(':'));
  if (hostAddr === undefined) {
    const msg = 'NOT RUN: this host has no non-loopback IPv4 address to dial';
    process.stderr.write(`\n*** ${msg} ***\n\n`);
    t.skip(msg);
    return;
  }
  const dns = await startChallTestSrv(t);
  const ask = await startAskServer(t, new Set(['customer.example.net', 'elsewhere.example.net']));
  await dns.addA('shop.example.com', [hostAddr]);
  await dns.addA('customer.example.net', [hostAddr]);
  await dns.addA('elsewhere.example.net', ['192.0.2.99']);
  await dns.addA('wrong.example.com', ['192.0.2.99']);
  await dns.addA('nat.example.com', ['198.51.100.7']);
  const refusals: PolicyRefusal[] = [];
  const policy = createNamePolicy(
    {
      domains: ['shop.example.com', '*.example.com'],
      askUrl: `${ask.url}/allow-list`,
      publicIps: ['198.51.100.7'],
      dnsServer: dns.dnsServer,
      dnsTimeoutMs: 1000,
      askTimeoutMs: 1000,
    },
    { log: bufferLogger(), events: { issued: () => undefined, expiry: () => undefined, policyRefused: (r) => refusals.push(r), acmeDeferred: () => undefined } },
  );
  const check = async (name: string, dialled = hostAddr): Promise<string> => {
    const v = await policy.check(name, dialled);
    return v.ok ? 'ok' : v.reason;
  };
  assert.equal(await check('shop.example.com'), 'ok');
  assert.equal(await check('shop.example.com', `::ffff:${hostAddr}`), 'ok');
  assert.equal(await check('customer.example.net'), 'ok', 'allowed by the ask server, pointing here');
  assert.equal(await check('stranger.example.net'), 'ask-refused');
  assert.equal(await check('elsewhere.example.net'), 'dns-mismatch', 'allowed by the ask server, but pointing elsewhere');
  assert.equal(await check('wrong.example.com'), 'dns-mismatch');
  assert.equal(await check('nat.example.com'), 'ok', 'the --public-ip (not an address of this host: NAT)');
  assert.equal(await check('unknown.example.com'), 'dns-mismatch', 'no records');
  assert.equal(await check('shop.example.com', '127.0.0.1'), 'dialled-not-local', 'loopback is not how the CA reaches us');
  assert.equal(await check('shop.example.com', '192.0.2.250'), 'dialled-not-local');
  assert.equal(await check('203.0.113.1'), 'ip-literal');
  assert.deepEqual(ask.requests.map((u) => new URL(u, 'http://x').searchParams.get('domain')), ['customer.example.net', 'stranger.example.net', 'elsewhere.example.net']);
  // A record that changes is seen once the refusal's TTL is over; within it, the cache answers.
  await dns.clearA('wrong.example.com');
  await dns.addA('wrong.example.com', [hostAddr]);
  assert.equal(await check('wrong.example.com'), 'negative-cache');
  assert.deepEqual(refusals, ['ask-refused', 'dns-mismatch', 'dns-mismatch', 'dns-mismatch', 'dialled-not-local', 'dialled-not-local', 'ip-literal', 'negative-cache']);
});

// SPDX-License-Identifier: MIT
// Guards the order owner with the internal CA standing in for an ACME CA:
// refusals cost no order, one order per name however many ask, a failure
// backs off, a stored leaf is reused until due, and a due one is renewed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AcmeOrders } from '../../../../src/certs/acme/acme-orders';
import { AcmeCertSource } from '../../../../src/certs/acme/acme-cert-source';
import { type AcmeDeferral, type CertEvents, NO_CERT_EVENTS } from '../../../../src/certs/cert-events';
import { InternalCa } from '../../../../src/certs/internal-ca';
import type { IssuedCert, Issuer } from '../../../../src/certs/issuer';
import type { NamePolicy, PolicyVerdict } from '../../../../src/certs/name-policy';
import { StateDir } from '../../../../src/certs/state-dir';
import { CertStore } from '../../../../src/certs/store';
import { bufferLogger, tempDir } from '../temp-state';
import type { TestContext } from 'node:test';

const DAY_MS = 86_400_000;

class FakeAcme implements Issuer {
  readonly name = 'acme';
  readonly asked: string[] = [];
  fail = false;
  constructor(private readonly inner: Issuer) {}
  async issue(name: string): Promise<IssuedCert> {
    this.asked.push(name);
    await new Promise((r) => setTimeout(r, 20));
    if (this.fail) throw new Error('CA down');
    return this.inner.issue(name);
  }
}

class FakePolicy implements NamePolicy {
  readonly checked: string[] = [];
  /** The dialled address each check was made for. */
  readonly dialled: (string | null)[] = [];
  /** The client address each check was made for (null: a renewal). */
  readonly clients: (string | null)[] = [];
  readonly orders: string[] = [];
  async check(name: string, dialledAddress: string | null, clientAddress: string | null = null): Promise<PolicyVerdict> {
    this.checked.push(name);
    this.dialled.push(dialledAddress);
    this.clients.push(clientAddress);
    return name.endsWith('.ok.test') ? { ok: true } : { ok: false, reason: 'not-allowed' };
  }
  recordOrder(name: string): void {
    this.orders.push(name);
  }
}

async function setup(t: TestContext, clock = { now: Date.now() }) {
  const log = bufferLogger();
  const stateDir = await StateDir.open(tempDir(t), log);
  const ca = await InternalCa.open({ stateDir, log, now: () => clock.now });
  const issuer = new FakeAcme(ca);
  const policy = new FakePolicy();
  const store = await CertStore.open({ stateDir, log, maxContexts: 1 });
  const deferrals: AcmeDeferral[] = [];
  const events: CertEvents = { ...NO_CERT_EVENTS, acmeDeferred: (r) => deferrals.push(r) };
  const orders = new AcmeOrders({ issuers: [issuer], policy, store, stateDir, events, log, now: () => clock.now, retryMinMs: 60_000, retryMaxMs: 3_600_000 });
  return { log, stateDir, ca, issuer, policy, store, orders, clock, deferrals, events };
}

test('a name refused by policy costs no order', async (t) => {
  const s = await setup(t);
  const r = await s.orders.request('www.elsewhere.test', '10.0.0.1');
  assert.deepEqual(r, { kind: 'refused', reason: 'not-allowed' });
  assert.deepEqual(s.issuer.asked, []);
});

test('one order per name however many ask at once; then the stored leaf is reused', async (t) => {
  const s = await setup(t);
  const replies = await Promise.all(Array.from({ length: 30 }, () => s.orders.request('a.ok.test', '10.0.0.1')));
  assert.ok(replies.every((r) => r.kind === 'cert'));
  assert.deepEqual(s.issuer.asked, ['a.ok.test']);
  const again = await s.orders.request('a.ok.test', '10.0.0.1');
  assert.equal(again.kind, 'cert');
  assert.deepEqual(s.issuer.asked, ['a.ok.test']);
});

test('a failed order backs off: no new order until the wait is over', async (t) => {
  const s = await setup(t);
  s.issuer.fail = true;
  const r1 = await s.orders.request('b.ok.test', '10.0.0.1');
  assert.equal(r1.kind, 'error');
  const r2 = await s.orders.request('b.ok.test', '10.0.0.1');
  assert.equal(r2.kind, 'error');
  assert.equal(s.issuer.asked.length, 1);
  assert.deepEqual(s.deferrals, ['backoff'], 'the request during the backoff is a deferral, counted');
  s.issuer.fail = false;
  s.clock.now += 61_000;
  const r3 = await s.orders.request('b.ok.test', '10.0.0.1');
  assert.equal(r3.kind, 'cert');
  assert.equal(s.issuer.asked.length, 2);
});

test('a leaf past two thirds of its lifetime (plus jitter) is renewed, once', async (t) => {
  const s = await setup(t);
  assert.equal((await s.orders.request('c.ok.test', '10.0.0.1')).kind, 'cert');
  s.clock.now += 55 * DAY_MS; // the internal CA's leaves live 90 days: not due yet
  await s.orders.request('c.ok.test', '10.0.0.1');
  assert.equal(s.issuer.asked.length, 1);
  s.clock.now += 10 * DAY_MS; // 65 days: due (60 + at most 3 of jitter)
  await Promise.all([s.orders.request('c.ok.test', '10.0.0.1'), s.orders.request('c.ok.test', '10.0.0.1')]);
  assert.equal(s.issuer.asked.length, 2);
});

test('renewDue renews stored leaves that are due even with no handshake, and only those', async (t) => {
  const s = await setup(t);
  await s.orders.request('e.ok.test', '10.0.0.1');
  s.clock.now += 30 * DAY_MS;
  await s.orders.request('f.ok.test', '10.0.0.1');
  assert.equal(await s.orders.renewDue(), 0);
  s.clock.now += 35 * DAY_MS; // e: 65 days old, due; f: 35 days, not
  assert.equal(await s.orders.renewDue(), 1);
  assert.deepEqual(s.issuer.asked, ['e.ok.test', 'f.ok.test', 'e.ok.test']);
  assert.equal(await s.orders.renewDue(), 0);
});

test('renewDue checks policy against the address last dialled for the name; after a restart, with none (any of the host\'s)', async (t) => {
  const s = await setup(t);
  await s.orders.request('g.ok.test', '10.0.0.1');
  s.clock.now += 65 * DAY_MS;
  assert.equal(await s.orders.renewDue(), 1);
  assert.deepEqual(s.policy.dialled, ['10.0.0.1', '10.0.0.1']);
  // A new owner on the same state directory knows no client yet.
  const restarted = new AcmeOrders({ issuers: [s.issuer], policy: s.policy, store: s.store, stateDir: s.stateDir, events: NO_CERT_EVENTS, log: s.log, now: () => s.clock.now, retryMinMs: 60_000, retryMaxMs: 3_600_000 });
  s.clock.now += 65 * DAY_MS;
  assert.equal(await restarted.renewDue(), 1);
  assert.deepEqual(s.policy.dialled, ['10.0.0.1', '10.0.0.1', null]);
  assert.deepEqual(s.issuer.asked, ['g.ok.test', 'g.ok.test', 'g.ok.test']);
});

test('a worker waits at most issueWaitMs, then gets the internal CA; the ACME leaf serves later handshakes', async (t) => {
  const s = await setup(t);
  const internalAsked: string[] = [];
  const fallbackCtx = {} as import('node:tls').SecureContext;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const src = new AcmeCertSource({
    store: await CertStore.open({ stateDir: s.stateDir, log: s.log }),
    internal: { contextFor: async (req) => (internalAsked.push(req.servername ?? req.localAddress), fallbackCtx) },
    requestOrder: async (name, addr, client) => {
      await gate;
      return s.orders.request(name, addr, client);
    },
    events: s.events,
    log: s.log,
    issueWaitMs: 50,
  });
  const first = await src.contextFor({ servername: 'd.ok.test', localAddress: '10.0.0.1', clientAddress: '192.0.2.9' });
  assert.equal(first, fallbackCtx);
  assert.deepEqual(internalAsked, ['d.ok.test']);
  assert.deepEqual(s.deferrals, ['issue-wait'], 'the handshake that got the internal CA meanwhile is a deferral, counted');
  release();
  await src.idle();
  const later = await src.contextFor({ servername: 'd.ok.test', localAddress: '10.0.0.1' });
  assert.notEqual(later, fallbackCtx);
  // IP names never reach the order owner.
  await src.contextFor({ servername: null, localAddress: '10.0.0.1' });
  assert.deepEqual(internalAsked, ['d.ok.test', '10.0.0.1']);
  assert.deepEqual(s.issuer.asked, ['d.ok.test']);
  assert.deepEqual(s.policy.clients, ['192.0.2.9'], "the policy saw the client's address (whose share the order uses)");
});

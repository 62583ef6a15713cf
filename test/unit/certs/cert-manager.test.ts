// SPDX-License-Identifier: MIT
// Guards the CertManager: SNI normalisation and fallback to the dialled
// address, one issuance per name however many handshakes wait, reuse across
// restarts, renewal at two thirds of the lifetime, and failure handling.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { SecureContext } from 'node:tls';
import { isJfeError } from '../../../src/errors';
import { CertManager, type CertManagerOptions, openCertManager, renewalDue } from '../../../src/certs/cert-manager';
import { InternalCa } from '../../../src/certs/internal-ca';
import type { IssuedCert, Issuer } from '../../../src/certs/issuer';
import { CERTS_DIR, CertStore } from '../../../src/certs/store';
import { StateDir } from '../../../src/certs/state-dir';
import { type BufferLogger, bufferLogger, tempDir } from './temp-state';

const DAY_MS = 86_400_000;
const LOCAL = '127.0.0.1';

/** Wraps an issuer: records every name asked for, and can fail or stall on demand. */
class CountingIssuer implements Issuer {
  readonly name: string;
  readonly asked: string[] = [];
  failFor = new Set<string>();
  failAll = false;
  stallFor = new Set<string>();
  /** Stalled issuances go on when this resolves. */
  release!: () => void;
  private readonly gate = new Promise<void>((r) => (this.release = r));

  constructor(private readonly inner: Issuer) {
    this.name = inner.name;
  }

  async issue(name: string): Promise<IssuedCert> {
    this.asked.push(name);
    // Yield first, so concurrent callers really overlap with the issuance.
    await new Promise((r) => setImmediate(r));
    if (this.failAll || this.failFor.has(name)) throw new Error(`test issuer refuses ${name}`);
    if (this.stallFor.has(name)) await this.gate;
    return this.inner.issue(name);
  }
}

interface Setup {
  root: string;
  manager: CertManager;
  issuer: CountingIssuer;
  log: BufferLogger;
  clock: { ms: number };
  store: CertStore;
}

async function setup(root: string, opts: { clock?: { ms: number }; maxStoredPerIssuer?: number; manager?: Partial<CertManagerOptions> } = {}): Promise<Setup> {
  const log = bufferLogger();
  const clock = opts.clock ?? { ms: Date.now() };
  const now = (): number => clock.ms;
  const stateDir = await StateDir.open(root);
  const issuer = new CountingIssuer(await InternalCa.open({ stateDir, log, now }));
  const store = await CertStore.open({ stateDir, log, maxStoredPerIssuer: opts.maxStoredPerIssuer });
  const manager = new CertManager({ issuer, store, log, now, ...opts.manager });
  return { root, manager, issuer, log, clock, store };
}

test('concurrent handshakes for one new name share one issuance', async (t) => {
  const s = await setup(tempDir(t));
  const contexts = await Promise.all(Array.from({ length: 25 }, () => s.manager.contextFor({ servername: 'new.example', localAddress: LOCAL })));
  assert.deepEqual(s.issuer.asked, ['new.example']);
  for (const c of contexts) assert.equal(c, contexts[0]);
  assert.equal(s.manager.stats().issuedTotal, 1);
  assert.equal(s.manager.stats().inFlight, 0);
});

test('two workers on one state directory: the second serves the leaf the first stored, issuing nothing', async (t) => {
  const root = tempDir(t);
  const a = await setup(root);
  const b = await setup(root); // opened before a issued, like a sibling worker
  await a.manager.contextFor({ servername: 'shared.example', localAddress: LOCAL });
  await b.manager.contextFor({ servername: 'shared.example', localAddress: LOCAL });
  assert.deepEqual(a.issuer.asked, ['shared.example']);
  assert.deepEqual(b.issuer.asked, [], 'adopted from disk');
  assert.equal(b.manager.describe('shared.example')?.serial, a.manager.describe('shared.example')?.serial);
});

test('a held name is answered at once with the same context, and not issued again', async (t) => {
  const s = await setup(tempDir(t));
  const first = await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  let settled: SecureContext | undefined;
  const p = s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL }).then((c) => (settled = c));
  await Promise.resolve();
  assert.equal(settled, first, 'resolved within one microtask: no issuance, no I/O');
  await p;
  assert.deepEqual(s.issuer.asked, ['svc.example']);
});

test('SNI is lower-cased and loses its trailing dot', async (t) => {
  const s = await setup(tempDir(t));
  const a = await s.manager.contextFor({ servername: 'Svc.Example.', localAddress: LOCAL });
  const b = await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  assert.equal(a, b);
  assert.deepEqual(s.issuer.asked, ['svc.example']);
});

test('invalid or absent SNI uses the dialled address; an IP literal in SNI is used as an IP', async (t) => {
  const s = await setup(tempDir(t));
  const invalid = ['bad name!', 'a..b', 'a'.repeat(300), '', '*.example.com', 'under_score.example'];
  const contexts = await Promise.all(invalid.map((servername) => s.manager.contextFor({ servername, localAddress: LOCAL })));
  const none = await s.manager.contextFor({ servername: null, localAddress: LOCAL });
  for (const c of contexts) assert.equal(c, none);
  assert.deepEqual(s.issuer.asked, [LOCAL]);
  await s.manager.contextFor({ servername: '1.2.3.4', localAddress: LOCAL });
  assert.deepEqual(s.issuer.asked, [LOCAL, '1.2.3.4']);
  assert.ok(s.manager.describe('1.2.3.4'));
});

test('the dialled address is canonical: v4-mapped as v4, IPv6 compressed', async (t) => {
  const s = await setup(tempDir(t));
  await s.manager.contextFor({ servername: null, localAddress: '::ffff:127.0.0.1' });
  await s.manager.contextFor({ servername: null, localAddress: '2001:DB8:0::1' });
  assert.deepEqual(s.issuer.asked, ['127.0.0.1', '2001:db8::1']);
});

test('no usable name at all rejects with JFE_ERR_CERT', async (t) => {
  const s = await setup(tempDir(t));
  await assert.rejects(s.manager.contextFor({ servername: 'bad name!', localAddress: 'not-an-ip' }), (err) => isJfeError(err, 'JFE_ERR_CERT'));
  assert.deepEqual(s.issuer.asked, []);
});

test('a restart over the same state directory reuses the stored certificate', async (t) => {
  const root = tempDir(t);
  const first = await setup(root);
  await first.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  const serial = first.manager.describe('svc.example')?.serial;
  assert.ok(serial);
  const second = await setup(root);
  await second.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  assert.deepEqual(second.issuer.asked, []);
  assert.equal(second.manager.describe('svc.example')?.serial, serial);
});

test('renewal: not before two thirds of the lifetime, then in the background while the old one serves', async (t) => {
  const s = await setup(tempDir(t));
  const t0 = s.clock.ms;
  const old = await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  const oldInfo = s.manager.describe('svc.example');
  assert.ok(oldInfo);
  const lifetime = oldInfo.notAfter.getTime() - oldInfo.notBefore.getTime();

  s.clock.ms = oldInfo.notBefore.getTime() + (2 * lifetime) / 3 - 60_000;
  assert.equal(await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL }), old);
  await s.manager.idle();
  assert.equal(s.issuer.asked.length, 1, 'not renewed before 2/3 of the lifetime');

  s.clock.ms = t0 + 61 * DAY_MS;
  assert.equal(await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL }), old, 'the old leaf serves while renewing');
  await s.manager.idle();
  assert.equal(s.issuer.asked.length, 2);
  const renewed = await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  assert.notEqual(renewed, old);
  const newInfo = s.manager.describe('svc.example');
  assert.notEqual(newInfo?.serial, oldInfo.serial);
  assert.ok(newInfo && newInfo.notAfter > oldInfo.notAfter);
  assert.equal(s.manager.stats().renewedTotal, 1);
  // And the renewal reached the disk.
  const reopened = await setup(s.root, { clock: s.clock });
  assert.equal(reopened.manager.describe('svc.example')?.serial, newInfo?.serial);
});

test('an expired leaf is not served: the handshake waits for a new one', async (t) => {
  const s = await setup(tempDir(t));
  const old = await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  s.clock.ms += 91 * DAY_MS;
  const fresh = await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  assert.notEqual(fresh, old);
  assert.equal(s.issuer.asked.length, 2);
});

test('a failed renewal keeps the current leaf and backs off before retrying', async (t) => {
  const s = await setup(tempDir(t), { manager: { renewRetryMinMs: 60_000 } });
  const old = await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  s.issuer.failAll = true;
  s.clock.ms += 61 * DAY_MS;
  assert.equal(await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL }), old);
  await s.manager.idle();
  assert.equal(s.manager.stats().renewErrorsTotal, 1);
  assert.ok(s.log.lines.some((l) => l.level === 'warn' && /renewal failed/.test(l.msg ?? '')));
  assert.equal(await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL }), old);
  await s.manager.idle();
  assert.equal(s.issuer.asked.length, 2, 'no retry within the backoff');
  s.issuer.failAll = false;
  s.clock.ms += 61_000;
  await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  await s.manager.idle();
  assert.equal(s.issuer.asked.length, 3);
  assert.notEqual(await s.manager.contextFor({ servername: 'svc.example', localAddress: LOCAL }), old);
});

test('when a name cannot be issued, the handshake gets the dialled address certificate', async (t) => {
  const s = await setup(tempDir(t));
  s.issuer.failFor.add('refused.example');
  const ctx = await s.manager.contextFor({ servername: 'refused.example', localAddress: LOCAL });
  assert.equal(ctx, await s.manager.contextFor({ servername: null, localAddress: LOCAL }));
  assert.deepEqual(s.issuer.asked, ['refused.example', LOCAL]);
  assert.equal(s.manager.stats().fallbacksTotal, 1);
  assert.ok(s.log.lines.some((l) => l.level === 'warn' && l.obj['name'] === 'refused.example' && l.obj['err'] instanceof Error));
});

test('when even the dialled address cannot be issued, contextFor rejects', async (t) => {
  const s = await setup(tempDir(t));
  s.issuer.failAll = true;
  await assert.rejects(s.manager.contextFor({ servername: 'x.example', localAddress: LOCAL }), (err) => isJfeError(err, 'JFE_ERR_CERT'));
  await assert.rejects(s.manager.contextFor({ servername: null, localAddress: LOCAL }), (err) => isJfeError(err, 'JFE_ERR_CERT'));
  assert.ok(s.log.lines.some((l) => l.level === 'error'));
});

test('a stalled issuance is waited for only up to issueTimeoutMs, then falls back; it still completes', async (t) => {
  // Generous: the fallback's own issuance must fit in it on a loaded machine.
  const s = await setup(tempDir(t), { manager: { issueTimeoutMs: 1000 } });
  s.issuer.stallFor.add('slow.example');
  // The manager's timers are unref'd; this keeps the test's event loop alive while it waits.
  const keepAlive = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keepAlive));
  const ctx = await s.manager.contextFor({ servername: 'slow.example', localAddress: LOCAL });
  assert.equal(ctx, await s.manager.contextFor({ servername: null, localAddress: LOCAL }));
  assert.equal(s.manager.describe('slow.example'), undefined, 'not there yet: the handshake did not wait for it');
  s.issuer.release();
  await s.manager.idle();
  assert.ok(s.manager.describe('slow.example'), 'stored when it finally arrived');
});

test('the disk cap holds through the manager: every name served, only the cap written', async (t) => {
  const s = await setup(tempDir(t), { maxStoredPerIssuer: 3 });
  const names = Array.from({ length: 6 }, (_, i) => `n${i}.example`);
  await Promise.all(names.map((servername) => s.manager.contextFor({ servername, localAddress: LOCAL })));
  assert.equal(fs.readdirSync(path.join(s.root, CERTS_DIR, 'internal')).length, 3);
  assert.equal(s.store.stats().notPersistedTotal, 3);
  assert.equal(s.issuer.asked.length, 6);
});

test('renewalDue: less than a third of the lifetime left', () => {
  const info = { notBefore: new Date(0), notAfter: new Date(90) };
  assert.equal(renewalDue(info, 59), false);
  assert.equal(renewalDue(info, 60), true);
  assert.equal(renewalDue(info, 100), true);
});

test('openCertManager wires state directory, CA and store', async (t) => {
  const root = path.join(tempDir(t), 'state');
  const { manager, ca } = await openCertManager({ stateDir: root, log: bufferLogger() });
  await manager.contextFor({ servername: 'svc.example', localAddress: LOCAL });
  assert.match(ca.rootPem(), /^-----BEGIN CERTIFICATE-----\n/);
  assert.ok(fs.existsSync(path.join(root, CERTS_DIR, 'internal', 'svc.example', 'cert.pem')));
});

test('a flood of new names: 30 "certificate issued" lines a minute at info, the rest at debug, then a summary with their count', async (t) => {
  const s = await setup(tempDir(t));
  for (let i = 0; i < 40; i++) await s.manager.contextFor({ servername: `n${i}.flood.example`, localAddress: LOCAL });
  const issued = (level: string) => s.log.lines.filter((l) => l.level === level && l.msg === 'certificate issued');
  assert.equal(issued('info').length, 30);
  assert.equal(issued('debug').length, 10, 'the rest are still logged, at debug');
  s.clock.ms += 60_000;
  await s.manager.contextFor({ servername: 'late.flood.example', localAddress: LOCAL });
  const summary = s.log.lines.filter((l) => l.level === 'info' && /more certificates issued than logged/.test(l.msg ?? ''));
  assert.deepEqual(summary.map((l) => l.obj.count), [10]);
  assert.equal(issued('info').length, 31, 'a new minute, a new share');
});

// SPDX-License-Identifier: MIT
// Guards the certificate store: leaves on disk (private, reloaded, capped per
// issuer), SecureContexts made once and reused, broken entries skipped.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { isJfeError } from '../../../src/errors';
import { InternalCa } from '../../../src/certs/internal-ca';
import { CERTS_DIR, CERT_FILE, CertStore, type CertStoreOptions, KEY_FILE } from '../../../src/certs/store';
import { STALE_TEMP_MS, StateDir, TEMP_MARKER } from '../../../src/certs/state-dir';
import { type BufferLogger, bufferLogger, modeOf, tempDir } from './temp-state';

interface World {
  root: string;
  stateDir: StateDir;
  ca: InternalCa;
  log: BufferLogger;
  open(opts?: Partial<CertStoreOptions>): Promise<CertStore>;
}

async function world(root: string): Promise<World> {
  const log = bufferLogger();
  const stateDir = await StateDir.open(root);
  const ca = await InternalCa.open({ stateDir, log });
  return { root, stateDir, ca, log, open: (opts = {}) => CertStore.open({ stateDir, log, ...opts }) };
}

test('put writes cert.pem and key.pem privately under certs/<issuer>/<name>/, atomically', async (t) => {
  const w = await world(tempDir(t));
  const store = await w.open();
  const entry = await store.put('internal', 'svc.example', await w.ca.issue('svc.example'));
  assert.equal(entry.info.persisted, true);
  const dir = path.join(w.root, CERTS_DIR, 'internal', 'svc.example');
  assert.deepEqual(fs.readdirSync(dir).sort(), [CERT_FILE, KEY_FILE], 'no temp file left');
  assert.equal(modeOf(dir), 0o700);
  assert.equal(modeOf(path.join(dir, KEY_FILE)), 0o600);
  assert.equal(modeOf(path.join(w.root, CERTS_DIR)), 0o700);
  assert.deepEqual(store.stats().stored, { internal: 1 });
});

test('lookup reuses one SecureContext per certificate', async (t) => {
  const w = await world(tempDir(t));
  const store = await w.open();
  const put = await store.put('internal', 'svc.example', await w.ca.issue('svc.example'));
  const a = store.lookup('internal', 'svc.example');
  const b = store.lookup('internal', 'svc.example');
  assert.ok(a && b);
  assert.equal(a.context, put.context);
  assert.equal(b.context, put.context);
  assert.equal(store.lookup('internal', 'other.example'), undefined);
  assert.equal(store.lookup('acme', 'svc.example'), undefined, 'issuers are kept apart');
});

test('a new store loads what the last one wrote (same serial), IPv6 names included', async (t) => {
  const w = await world(tempDir(t));
  const first = await w.open();
  const dns = await first.put('internal', 'svc.example', await w.ca.issue('svc.example'));
  const v6 = await first.put('internal', '2001:db8::1', await w.ca.issue('2001:db8::1'));
  assert.ok(fs.existsSync(path.join(w.root, CERTS_DIR, 'internal', '2001_db8__1', CERT_FILE)));
  const second = await w.open();
  assert.deepEqual(second.describe('internal', 'svc.example'), dns.info);
  assert.deepEqual(second.describe('internal', '2001:db8::1'), v6.info);
  assert.ok(second.lookup('internal', 'svc.example')?.context);
  assert.deepEqual(second.stats().stored, { internal: 2 });
});

test('the disk cap: beyond it leaves are served but not written, counted and logged once', async (t) => {
  const w = await world(tempDir(t));
  const store = await w.open({ maxStoredPerIssuer: 2 });
  for (const name of ['a.example', 'b.example', 'c.example', 'd.example']) {
    const entry = await store.put('internal', name, await w.ca.issue(name));
    assert.equal(entry.info.persisted, name < 'c', name);
    assert.ok(store.lookup('internal', name), `${name} is served`);
  }
  assert.deepEqual(fs.readdirSync(path.join(w.root, CERTS_DIR, 'internal')).sort(), ['a.example', 'b.example']);
  assert.equal(store.stats().notPersistedTotal, 2);
  assert.equal(w.log.lines.filter((l) => l.level === 'warn' && /store full/.test(l.msg ?? '')).length, 1);
  // A renewal of a stored name still writes.
  const renewed = await store.put('internal', 'a.example', await w.ca.issue('a.example'));
  assert.equal(renewed.info.persisted, true);
  assert.equal((await w.open()).describe('internal', 'a.example')?.serial, renewed.info.serial);
});

test('concurrent puts do not overshoot the disk cap', async (t) => {
  const w = await world(tempDir(t));
  const store = await w.open({ maxStoredPerIssuer: 3 });
  const names = Array.from({ length: 10 }, (_, i) => `n${i}.example`);
  const issued = await Promise.all(names.map((n) => w.ca.issue(n)));
  await Promise.all(names.map((n, i) => store.put('internal', n, issued[i]!)));
  assert.equal(fs.readdirSync(path.join(w.root, CERTS_DIR, 'internal')).length, 3);
  assert.equal(store.stats().notPersistedTotal, 7);
});

test('the disk cap holds for every store on the state directory together (one per worker), even when they put at once', async (t) => {
  const w = await world(tempDir(t));
  const workers = await Promise.all([w.open({ maxStoredPerIssuer: 5 }), w.open({ maxStoredPerIssuer: 5 }), w.open({ maxStoredPerIssuer: 5 })]);
  const names = Array.from({ length: 12 }, (_, i) => `n${i}.example`);
  const issued = await Promise.all(names.map((n) => w.ca.issue(n)));
  const entries = await Promise.all(names.map((n, i) => workers[i % 3]!.put('internal', n, issued[i]!)));
  const onDisk = fs.readdirSync(path.join(w.root, CERTS_DIR, 'internal')).filter((n) => !n.startsWith('.'));
  assert.equal(onDisk.length, 5, onDisk.join(' '));
  assert.deepEqual(entries.filter((e) => e.info.persisted).map((e) => e.info.name).sort(), onDisk.sort());
  assert.equal(workers.reduce((n, s) => n + s.stats().notPersistedTotal, 0), 7);
  for (const [i, n] of names.entries()) assert.ok(workers[i % 3]!.lookup('internal', n), `${n} is served`);
  // A renewal of a stored name still writes at the cap, from any worker.
  const stored = onDisk[0]!;
  assert.equal((await workers[2]!.put('internal', stored, await w.ca.issue(stored))).info.persisted, true);
});

test('an empty leaf directory (a claim whose writer died) is removed at load once stale, freeing its slot; a young one stays', async (t) => {
  const w = await world(tempDir(t));
  const base = path.join(w.root, CERTS_DIR, 'internal');
  fs.mkdirSync(path.join(base, 'dead.example'), { recursive: true });
  fs.mkdirSync(path.join(base, 'young.example'));
  const longAgo = new Date(Date.now() - STALE_TEMP_MS - 60_000);
  fs.utimesSync(path.join(base, 'dead.example'), longAgo, longAgo);
  const store = await w.open({ maxStoredPerIssuer: 2 });
  assert.deepEqual(fs.readdirSync(base), ['young.example']);
  assert.equal((await store.put('internal', 'new.example', await w.ca.issue('new.example'))).info.persisted, true, 'the slot is free again');
});

test('the context LRU is bounded; a stored leaf that fell out gets a new context', async (t) => {
  const w = await world(tempDir(t));
  const store = await w.open({ maxContexts: 2 });
  const a = await store.put('internal', 'a.example', await w.ca.issue('a.example'));
  await store.put('internal', 'b.example', await w.ca.issue('b.example'));
  assert.equal(store.lookup('internal', 'b.example') !== undefined, true);
  await store.put('internal', 'c.example', await w.ca.issue('c.example'));
  assert.equal(store.stats().contexts, 2);
  const again = store.lookup('internal', 'a.example');
  assert.ok(again, 'reloaded from the stored PEM');
  assert.notEqual(again.context, a.context);
  assert.equal(again.info.serial, a.info.serial);
});

test('contexts unused for a while are dropped, least recently used first; a stored leaf gets a new one at its next lookup', async (t) => {
  const w = await world(tempDir(t));
  const clock = { now: 1_000_000 };
  const store = await w.open({ now: () => clock.now, maxStoredPerIssuer: 2 });
  const names = ['a.example', 'b.example', 'c.example', 'd.example'];
  for (const n of names) {
    await store.put('internal', n, await w.ca.issue(n));
    clock.now += 1000;
  }
  store.lookup('internal', 'a.example'); // used again: the most recent now
  assert.equal(store.dropIdleContexts(60_000), 0, 'nothing idle yet');
  clock.now += 60_000;
  store.lookup('internal', 'c.example');
  assert.equal(store.dropIdleContexts(60_000), 3, 'all but c, used just now');
  assert.equal(store.stats().contexts, 1);
  // a and b are stored: served again (a new context); d was kept in memory only (past the cap): gone.
  assert.ok(store.lookup('internal', 'a.example'));
  assert.ok(store.lookup('internal', 'b.example'));
  assert.equal(store.lookup('internal', 'd.example'), undefined);
});

test('put refuses a leaf that does not cover the name, or whose key does not match', async (t) => {
  const w = await world(tempDir(t));
  const store = await w.open();
  const a = await w.ca.issue('a.example');
  const b = await w.ca.issue('b.example');
  await assert.rejects(store.put('internal', 'b.example', a), (err) => isJfeError(err, 'JFE_ERR_CERT'));
  await assert.rejects(store.put('internal', 'a.example', { ...a, keyPem: b.keyPem }), (err) => isJfeError(err, 'JFE_ERR_CERT'));
  assert.equal(fs.readdirSync(path.join(w.root, CERTS_DIR)).length, 0);
});

test('load skips broken entries and removes temp files, and says so', async (t) => {
  const w = await world(tempDir(t));
  const first = await w.open();
  for (const n of ['good.example', 'mismatch.example', 'half.example']) await first.put('internal', n, await w.ca.issue(n));
  const base = path.join(w.root, CERTS_DIR, 'internal');
  fs.copyFileSync(path.join(base, 'good.example', KEY_FILE), path.join(base, 'mismatch.example', KEY_FILE));
  fs.rmSync(path.join(base, 'half.example', CERT_FILE));
  fs.mkdirSync(path.join(base, 'Not A Name'));
  fs.renameSync(path.join(base, 'good.example'), path.join(base, 'moved.example'));
  fs.cpSync(path.join(base, 'moved.example'), path.join(base, 'good.example'), { recursive: true });
  const stale = path.join(base, 'good.example', `.cert.pem${TEMP_MARKER}1-x`);
  fs.writeFileSync(stale, 'half');
  const longAgo = new Date(Date.now() - STALE_TEMP_MS - 60_000);
  fs.utimesSync(stale, longAgo, longAgo);
  fs.mkdirSync(path.join(w.root, CERTS_DIR, 'Bad Issuer'));

  const second = await w.open();
  assert.ok(second.describe('internal', 'good.example'));
  for (const n of ['mismatch.example', 'half.example', 'moved.example']) assert.equal(second.describe('internal', n), undefined, n);
  assert.equal(second.stats().skippedAtLoadTotal, 4);
  assert.deepEqual(fs.readdirSync(path.join(base, 'good.example')).sort(), [CERT_FILE, KEY_FILE]);
  const warned = w.log.lines.filter((l) => l.level === 'warn').map((l) => String(l.obj['dir'] ?? ''));
  for (const d of ['mismatch.example', 'half.example', 'Not A Name', 'moved.example', 'Bad Issuer']) {
    assert.ok(warned.some((x) => x.endsWith(d)), `warned about ${d}`);
  }
});

test('a failed write is logged and counted; the leaf is still served', async (t) => {
  const w = await world(tempDir(t));
  const store = await w.open();
  // A file where the issuer's directory should be makes every write fail.
  fs.writeFileSync(path.join(w.root, CERTS_DIR, 'internal'), 'in the way');
  const entry = await store.put('internal', 'svc.example', await w.ca.issue('svc.example'));
  assert.equal(entry.info.persisted, false);
  assert.ok(store.lookup('internal', 'svc.example'));
  assert.equal(store.stats().writeErrorsTotal, 1);
  assert.deepEqual(store.stats().stored, {});
  assert.ok(w.log.lines.some((l) => l.level === 'warn' && /cannot store/.test(l.msg ?? '')));
});

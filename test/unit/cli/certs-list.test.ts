// SPDX-License-Identifier: MIT
// `jfe certs list`: what is stored, by name, issuer, expiry and days left, as
// text and --json; broken entries shown as such; nothing created; a missing
// or unreadable state directory is a clear error. The integration test
// certs-list.test.ts lists what a running jfe stored.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { listStoredCerts } from '../../../src/certs/cert-list';
import { InternalCa } from '../../../src/certs/internal-ca';
import { StateDir } from '../../../src/certs/state-dir';
import { CERTS_DIR, CERT_FILE, CertStore } from '../../../src/certs/store';
import { renderCertList } from '../../../src/cli/render-certs';
import { requireRoot } from '../../helpers/root';
import { BIN, runSync, runUnprivileged } from '../../helpers/spawn';
import { bufferLogger, tempDir } from '../certs/temp-state';

const DAY = 86_400_000;

async function stateWith(root: string, names: string[]): Promise<Map<string, { notAfter: Date; serial: string }>> {
  const log = bufferLogger();
  const stateDir = await StateDir.open(root);
  const ca = await InternalCa.open({ stateDir, log });
  const store = await CertStore.open({ stateDir, log });
  const out = new Map<string, { notAfter: Date; serial: string }>();
  for (const n of names) {
    const e = await store.put('internal', n, await ca.issue(n));
    out.set(n, { notAfter: e.info.notAfter, serial: e.info.serial });
  }
  return out;
}

test('lists every stored leaf with issuer, expiry and days left, sorted by name', async (t) => {
  const root = tempDir(t);
  const issued = await stateWith(root, ['web.example', '2001:db8::1', 'api.example']);
  // A second issuer's copy of one name (e.g. ACME beside the internal CA).
  const acmeDir = path.join(root, CERTS_DIR, 'acme', 'web.example');
  fs.mkdirSync(acmeDir, { recursive: true, mode: 0o700 });
  fs.copyFileSync(path.join(root, CERTS_DIR, 'internal', 'web.example', CERT_FILE), path.join(acmeDir, CERT_FILE));
  const now = Date.now();
  const rows = await listStoredCerts(root, now);
  assert.deepEqual(rows.map((r) => [r.name, r.issuer]), [
    ['2001:db8::1', 'internal'],
    ['api.example', 'internal'],
    ['web.example', 'acme'],
    ['web.example', 'internal'],
  ]);
  for (const r of rows) {
    const want = issued.get(r.name);
    assert.equal(r.notAfter?.getTime(), want?.notAfter.getTime());
    assert.equal(r.serial, want?.serial);
    assert.equal(r.daysLeft, Math.floor(((want?.notAfter.getTime() ?? 0) - now) / DAY));
    assert.equal(r.problem, null);
  }
  assert.ok((rows[0]?.daysLeft ?? 0) >= 89, 'internal leaves live 90 days');
  assert.equal((await listStoredCerts(root, now + 100 * DAY))[0]?.daysLeft, rows[0] && (rows[0].daysLeft ?? 0) - 100, 'negative once expired');
});

test('broken entries are shown as unusable; temp and foreign directories are not listed', async (t) => {
  const root = tempDir(t);
  await stateWith(root, ['ok.example']);
  const certs = path.join(root, CERTS_DIR, 'internal');
  fs.mkdirSync(path.join(certs, 'nocert.example'));
  fs.mkdirSync(path.join(certs, 'garbage.example'));
  fs.writeFileSync(path.join(certs, 'garbage.example', CERT_FILE), 'not a certificate');
  fs.mkdirSync(path.join(certs, '.half.example.tmp-1-abc'));
  fs.mkdirSync(path.join(certs, 'Not_A_Name!'));
  fs.mkdirSync(path.join(root, CERTS_DIR, 'Bad Issuer'));
  const rows = await listStoredCerts(root);
  assert.deepEqual(rows.map((r) => [r.name, r.problem?.replace(/:.*/, '') ?? null]), [
    ['garbage.example', 'cert.pem unparsable'],
    ['nocert.example', 'cert.pem missing'],
    ['ok.example', null],
  ]);
  const text = renderCertList(rows, root);
  assert.match(text, /^NAME\s+ISSUER\s+NOT AFTER\s+DAYS LEFT$/m);
  assert.match(text, /^nocert\.example\s+internal\s+-\s+- \(unusable: cert\.pem missing; issued again when asked for\)$/m);
  assert.match(text, /^ok\.example\s+internal\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+\d+$/m);
});

test('an empty or new state directory lists nothing and is not created or changed', async (t) => {
  const root = tempDir(t);
  assert.deepEqual(await listStoredCerts(root), []);
  assert.deepEqual(fs.readdirSync(root), [], 'nothing created');
  const missing = path.join(root, 'nope');
  await assert.rejects(listStoredCerts(missing), { code: 'JFE_ERR_STATE', message: /does not exist: jfe has not run with it yet, or give the one it uses with --state-dir/ });
  assert.ok(!fs.existsSync(missing));
});

test('the bin: text and --json; errors exit 1 with one clear line', async (t) => {
  const root = tempDir(t);
  const issued = await stateWith(root, ['web.example']);
  const text = runSync(BIN.jfe, ['certs', 'list', '--state-dir', root]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^web\.example\s+internal\s+\S+\s+(89|90)\n$/m);
  const json = runSync(BIN.jfe, ['certs', 'list', '--state-dir', root, '--json']);
  assert.equal(json.status, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as Record<string, unknown>[];
  assert.deepEqual(parsed.map((r) => [r.name, r.issuer, r.notAfter, r.serial, r.problem]), [
    ['web.example', 'internal', issued.get('web.example')?.notAfter.toISOString(), issued.get('web.example')?.serial, null],
  ]);
  const empty = runSync(BIN.jfe, ['certs', 'list', '--state-dir', path.join(root, CERTS_DIR, 'internal', 'web.example')]);
  assert.equal(empty.stdout, `no certificates stored in ${path.join(root, CERTS_DIR, 'internal', 'web.example')}\n`);
  const missing = runSync(BIN.jfe, ['certs', 'list', '--state-dir', path.join(root, 'nope')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^Error: state directory \S+ does not exist/);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  const help = runSync(BIN.jfe, ['certs', 'list', '--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--state-dir/);
  assert.match(help.stdout, /--json/);
});

test('a state directory private to root: a clear error for other users', async (t) => {
  if (!requireRoot(t, ['setpriv', 'unshare'])) return; // root, to run the bin as another user
  const parent = tempDir(t);
  const root = path.join(parent, 'state');
  await stateWith(root, ['web.example']);
  // The state dir is 0700, as jfe makes it. Let "nobody" reach our own temp parent, so that only the state dir's mode stops it.
  fs.chmodSync(parent, 0o755);
  const r = runUnprivileged(t, BIN.jfe, ['certs', 'list', '--state-dir', root]);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /^Error: cannot read \S+: permission denied; the state directory is private to the user jfe runs as \(root\): run this as root, e.g\. sudo jfe certs list\n$/);
});

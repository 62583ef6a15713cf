// SPDX-License-Identifier: MIT
// Guards `jfe certs list`: after a running jfe issued certificates for real
// handshakes (by SNI and by address), the list shows each of them with the
// issuer, expiry and serial the clients were actually served, while jfe runs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { connectTls } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { BIN, runSync } from '../helpers/spawn';

const DAY = 86_400_000;

test('jfe certs list shows what a running jfe served', async (t) => {
  if (!requireRoot(t, ['nginx'])) return;
  const w = createWorld(t);
  await startNginx(w);
  const jfe = await startJfe(w);
  const ca = fs.readFileSync(jfe.caFile, 'utf8');

  const served = new Map<string, { serial: string; validTo: string }>();
  for (const [name, sni] of [['shop.example', 'shop.example'], ['api.example', 'api.example'], [w.srv4, undefined]] as const) {
    const c = await connectTls(w.cli, w.srv4, 8080, ca, sni);
    const peer = c.tls.getPeerCertificate();
    served.set(name, { serial: peer.serialNumber.toUpperCase(), validTo: peer.valid_to });
    c.tls.destroy();
  }

  // daysLeft is counted at some moment between these two: either count is right.
  const listedFrom = Date.now();
  const list = runSync(BIN.jfe, ['certs', 'list', '--state-dir', jfe.stateDir, '--json']);
  const listedTo = Date.now();
  assert.equal(list.status, 0, list.stderr);
  const rows = JSON.parse(list.stdout) as { name: string; issuer: string; notAfter: string; daysLeft: number; serial: string; problem: string | null }[];
  for (const [name, cert] of served) {
    const row = rows.find((r) => r.name === name);
    assert.ok(row, `${name} is listed: ${list.stdout}`);
    assert.equal(row.issuer, 'internal');
    assert.equal(row.serial, cert.serial, `${name}: the certificate the client was served`);
    assert.equal(new Date(row.notAfter).getTime(), new Date(cert.validTo).getTime());
    const daysLeftAt = (t: number): number => Math.floor((new Date(row.notAfter).getTime() - t) / DAY);
    assert.ok([daysLeftAt(listedFrom), daysLeftAt(listedTo)].includes(row.daysLeft), `${name}: ${row.daysLeft} days left`);
    assert.equal(row.problem, null);
  }
  assert.equal(rows.length, served.size, 'nothing else is listed');

  const text = runSync(BIN.jfe, ['certs', 'list', '--state-dir', jfe.stateDir]);
  assert.equal(text.status, 0, text.stderr);
  const lines = text.stdout.trim().split('\n');
  assert.match(lines[0] ?? '', /^NAME\s+ISSUER\s+NOT AFTER\s+DAYS LEFT$/);
  assert.equal(lines.length, 1 + served.size);
  assert.ok(lines.some((l) => /^shop\.example\s+internal\s+\S+Z\s+(89|90)$/.test(l)), text.stdout);
});

// SPDX-License-Identifier: MIT
// Guards jfe under many connections at once: 1,000 clients (half TLS, half
// plaintext, IPv4 and IPv6) are all open through jfe at the same moment, then
// each makes one request to nginx; every one is answered (none lost, counted
// exactly, on both ends), and the agent and its workers stay up.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { httpGet, jfePids, waitSteered } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { run } from '../helpers/spawn';

const PER_KIND = 500;

/**
 * Runs in the client namespace. Opens every connection first (TLS ones up to the
 * end of the handshake) and holds them; once all have settled, sends one request
 * on each and reads to EOF. Prints a JSON summary: counts and every failure.
 */
const CLIENT = `
const net = require('net'), tls = require('tls'), fs = require('fs');
const [host4, host6, port, caFile, perKind, timeoutMs] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
const TIMEOUT = Number(timeoutMs);

function open(i, kind) {
  const host = i % 2 === 0 ? host4 : host6;
  const c = { i, kind, host, stage: 'connect', sock: null, error: null };
  c.connected = new Promise((resolve) => {
    const timer = setTimeout(() => { c.error = 'timeout'; resolve(false); }, TIMEOUT);
    const ok = () => { clearTimeout(timer); resolve(true); };
    const fail = (err) => { clearTimeout(timer); c.error = err.code || err.message; resolve(false); };
    const sock = kind === 'tls'
      ? tls.connect({ host, port: Number(port), ca, ...(i % 4 < 2 ? { servername: 'conc.example' } : {}) }, ok)
      : net.connect({ host, port: Number(port) }, ok);
    sock.once('error', fail);
    c.sock = sock;
  });
  return c;
}

function request(c) {
  c.stage = 'request';
  return new Promise((resolve) => {
    let data = '';
    const timer = setTimeout(() => { c.error = 'timeout'; resolve(false); }, TIMEOUT);
    c.sock.setEncoding('utf8');
    c.sock.on('data', (d) => (data += d));
    c.sock.on('error', (err) => { clearTimeout(timer); c.error = err.code || err.message; resolve(false); });
    c.sock.on('end', () => {
      clearTimeout(timer);
      const ok = /^HTTP\\/1\\.1 200 /.test(data) && data.endsWith('\\r\\n\\r\\nnginx-plain\\n');
      if (!ok) c.error = 'bad response: ' + JSON.stringify(data.slice(0, 120));
      resolve(ok);
    });
    c.sock.write('GET /?i=' + c.i + ' HTTP/1.1\\r\\nHost: conc\\r\\nConnection: close\\r\\n\\r\\n');
  });
}

(async () => {
  const n = Number(perKind);
  const conns = [];
  for (let i = 0; i < 2 * n; i++) conns.push(open(i, i < n ? 'plain' : 'tls'));
  const connected = await Promise.all(conns.map((c) => c.connected));
  const openAtOnce = connected.filter(Boolean).length;
  const answered = await Promise.all(conns.map((c, k) => (connected[k] ? request(c) : false)));
  for (const c of conns) c.sock && c.sock.destroy();
  const ok = { plain: 0, tls: 0 };
  conns.forEach((c, k) => { if (answered[k]) ok[c.kind]++; });
  const failures = conns.filter((c, k) => !answered[k]).map((c) => ({ i: c.i, kind: c.kind, host: c.host, stage: c.stage, error: c.error }));
  process.stdout.write(JSON.stringify({ openAtOnce, ok, failures }) + '\\n');
})();
`;

test('1,000 concurrent connections through jfe: none lost', async (t) => {
  if (!requireRoot(t, ['nginx'])) return;
  const w = createWorld(t);
  const nginx = await startNginx(w);
  const jfe = await startJfe(w);
  await waitSteered(w, 8080);
  const pidsBefore = jfePids(jfe).sort();
  assert.equal(pidsBefore.length, 3, `primary and two workers: ${pidsBefore.join(' ')}`);
  const script = path.join(w.tmp, 'concurrency-client.js');
  fs.writeFileSync(script, CLIENT);

  await t.test(`${PER_KIND} TLS and ${PER_KIND} plaintext, all open at once, each answered`, async () => {
    const r = await run('ip', ['netns', 'exec', w.cli.name, process.execPath, script, w.srv4, w.srv6, '8080', jfe.caFile, String(PER_KIND), '60000'], { timeoutMs: 150_000 });
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { openAtOnce: number; ok: { plain: number; tls: number }; failures: unknown[] };
    if (summary.failures.length > 0) {
      t.diagnostic(`${summary.failures.length} failures, first 20: ${JSON.stringify(summary.failures.slice(0, 20))}`);
    }
    assert.deepEqual(summary.failures, []);
    assert.equal(summary.openAtOnce, 2 * PER_KIND);
    assert.deepEqual(summary.ok, { plain: PER_KIND, tls: PER_KIND });
  });

  await t.test('nginx answered each request exactly once, from the client address', () => {
    const served = new Map<string, number>();
    for (const line of fs.readFileSync(nginx.accessLog, 'utf8').split('\n')) {
      const m = /^(\S+) 8080 "GET \/\?i=(\d+) HTTP\/1\.1" 200$/.exec(line);
      if (!m) continue;
      assert.ok(m[1] === w.cli4 || m[1] === w.cli6, line);
      served.set(m[2] ?? '', (served.get(m[2] ?? '') ?? 0) + 1);
    }
    assert.equal(served.size, 2 * PER_KIND);
    assert.ok([...served.values()].every((n) => n === 1));
  });

  await t.test('jfe and its workers stayed up, and still serve', async () => {
    assert.equal(jfe.proc.exitCode, null);
    assert.equal(jfe.proc.signalCode, null);
    assert.deepEqual(jfePids(jfe).sort(), pidsBefore);
    assert.equal(jfe.logs.filter((l) => l.msg === 'worker exited; restarting it').length, 0);
    assert.equal(await httpGet(w.cli, w.srv4, 8080, '/'), 'nginx-plain\n');
    assert.equal(await httpGet(w.cli, w.srv4, 8080, '/', fs.readFileSync(jfe.caFile, 'utf8')), 'nginx-plain\n');
  });
});

// SPDX-License-Identifier: MIT
// Guards the workers' file descriptors: after a bounded load (2,000 plaintext
// requests, 200 over TLS, 200 connections the client resets, half before any
// byte, half mid-request) has ended, each worker holds exactly the fds it held
// before the first connection. A leaked socket, pipe or epoll set per
// connection shows here as a count that does not come back, listed by target.
// Also: each worker runs with its soft open-files limit raised to the hard one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { eventually, jfePids, waitSteered, workerPid } from '../helpers/clients';
import { describeFds, listFds, newFds, summarizeFds, type OpenFd } from '../helpers/fds';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { run } from '../helpers/spawn';

const PLAIN = 2000;
const TLS = 200;
const RESETS = 200;
/** Connections open at once. */
const PARALLEL = 100;
/**
 * Fds a worker may hold after the load beyond those before it: none. (What
 * Node opens lazily — the first TLS connection, the first DNS lookup — was
 * looked for: a worker's count came back to its exact baseline.)
 */
const ALLOWED_EXTRA = 0;

/** Runs in the client namespace; prints a JSON summary: counts per kind and the first failures. */
const CLIENT = `
const net = require('net'), tls = require('tls'), fs = require('fs');
const [host4, host6, port, caFile, plain, tlsN, resets, parallel, timeoutMs] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
const TIMEOUT = Number(timeoutMs);
const ok = { plain: 0, tls: 0, reset: 0 };
const failures = [];

function one(i, kind) {
  const host = i % 2 === 0 ? host4 : host6;
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { if (failures.length < 20) failures.push({ i, kind, host, err }); } else ok[kind]++;
      sock.destroy();
      resolve();
    };
    const timer = setTimeout(() => finish('timeout'), TIMEOUT);
    const request = () => {
      if (kind === 'reset') {
        // Half reset before any byte, half after part of a request.
        if (i % 4 < 2) sock.write('GET / HTTP/1.1\\r\\nHo');
        setTimeout(() => { sock.resetAndDestroy(); finish(null); }, 20);
        return;
      }
      sock.write('GET /?i=' + i + ' HTTP/1.1\\r\\nHost: fd\\r\\nConnection: close\\r\\n\\r\\n');
    };
    const sock = kind === 'tls' ? tls.connect({ host, port: Number(port), ca, servername: 'fd.example' }, request) : net.connect({ host, port: Number(port) }, request);
    sock.setEncoding('utf8');
    sock.on('data', (d) => (data += d));
    sock.on('error', (err) => finish(kind === 'reset' ? null : err.code || err.message));
    sock.on('end', () => finish(/^HTTP\\/1\\.1 200 /.test(data) && data.endsWith('nginx-plain\\n') ? null : 'bad response: ' + JSON.stringify(data.slice(0, 80))));
  });
}

(async () => {
  const jobs = [];
  for (let i = 0; i < Number(plain); i++) jobs.push([i, 'plain']);
  for (let i = 0; i < Number(tlsN); i++) jobs.push([i, 'tls']);
  for (let i = 0; i < Number(resets); i++) jobs.push([i, 'reset']);
  // Interleaved, so TLS and resets happen while plaintext is in flight.
  jobs.sort((a, b) => (a[0] * 7919) % 1000 - (b[0] * 7919) % 1000);
  let next = 0;
  const lane = async () => { while (next < jobs.length) { const [i, kind] = jobs[next++]; await one(i, kind); } };
  await Promise.all(Array.from({ length: Number(parallel) }, lane));
  process.stdout.write(JSON.stringify({ ok, failures }) + '\\n');
})();
`;

function softHard(pid: number): [number, number] {
  const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files')) ?? '';
  const m = /^Max open files\s+(\d+)\s+(\d+)/.exec(line);
  assert.ok(m, `no open files line in /proc/${pid}/limits: ${line}`);
  return [Number(m[1]), Number(m[2])];
}

test('each worker holds the same fds after a bounded load as before it', async (t) => {
  if (!requireRoot(t, ['nginx'])) return;
  const w = createWorld(t);
  await startNginx(w);
  const jfe = await startJfe(w);
  await waitSteered(w, 8080);
  const workers = [0, 1].map((slot) => {
    const pid = workerPid(jfe, slot);
    assert.ok(pid, `worker ${slot} found`);
    return pid;
  });
  const before = new Map<number, OpenFd[]>(workers.map((pid) => [pid, listFds(pid)]));
  for (const pid of workers) t.diagnostic(`worker ${pid} before: ${before.get(pid)?.length} fds (${summarizeFds(before.get(pid) ?? [])})`);

  await t.test('every worker and the primary run with the soft open-files limit at the hard one; the primary says so once', () => {
    for (const pid of jfePids(jfe)) {
      const [soft, hard] = softHard(pid);
      assert.equal(soft, hard, `pid ${pid}: soft ${soft}, hard ${hard}`);
    }
    const said = jfe.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('open files limit'));
    assert.equal(said.length, 1, JSON.stringify(said));
    assert.equal(said[0]?.soft, said[0]?.hard);
  });

  await t.test(`${PLAIN} plaintext, ${TLS} TLS and ${RESETS} reset connections, ${PARALLEL} at a time`, async () => {
    const script = path.join(w.tmp, 'fd-client.js');
    fs.writeFileSync(script, CLIENT);
    const r = await run('ip', ['netns', 'exec', w.cli.name, process.execPath, script, w.srv4, w.srv6, '8080', jfe.caFile, String(PLAIN), String(TLS), String(RESETS), String(PARALLEL), '20000'], { timeoutMs: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { ok: Record<string, number>; failures: unknown[] };
    assert.deepEqual(summary.failures, []);
    assert.deepEqual(summary.ok, { plain: PLAIN, tls: TLS, reset: RESETS });
  });

  await t.test(`once the connections are closed, each worker is back to its fds of before (+${ALLOWED_EXTRA})`, async () => {
    for (const pid of workers) {
      const base = before.get(pid) ?? [];
      // The agent closes its side when the service's FIN or the client's reset has crossed it: give it a moment.
      const after =
        (await eventually(async () => {
          const now = listFds(pid);
          return now.length <= base.length + ALLOWED_EXTRA ? now : undefined;
        }, 20_000)) ?? listFds(pid);
      const extra = newFds(base, after);
      assert.ok(
        after.length <= base.length + ALLOWED_EXTRA,
        `worker ${pid} holds ${after.length} fds, ${base.length} before the load (${summarizeFds(after)}); new since:\n${describeFds(extra)}`,
      );
    }
  });
});

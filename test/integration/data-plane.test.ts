// SPDX-License-Identifier: MIT
// Guards the native data plane (native/src/plane, agent/data-plane.ts) in a
// real `jfe run`: a plaintext connection's bytes reach the metrics exactly
// (an open one's too, at the scrape) and its end is logged with its reason; a worker's fds and the bypass map are back where they were
// after load (plaintext relayed natively, TLS taken over by Node); and a
// worker out of fds backs off instead of spinning, then serves again.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type net from 'node:net';
import { test } from 'node:test';
import { openSteering } from '../../src/bpf/steering';
import { connectRaw, connectTls, eventually, readN, receiveAll, waitSteered, workerPid } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { METRICS_PORT, type Sample, scrapeMetrics } from '../helpers/metrics';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNodeServices } from '../helpers/servers';
import { runSync } from '../helpers/spawn';

/** Port 9400: reads REQUEST bytes, answers RESPONSE bytes, closes. Port 9401: a banner, then echo. */
const REQUEST = 1000;
const RESPONSE = 3000;
const SERVICES = `
const net = require('net');
net.createServer((s) => {
  let n = 0;
  s.on('data', (d) => { n += d.length; if (n >= ${REQUEST}) s.end(Buffer.alloc(${RESPONSE}, 120)); });
  s.on('error', () => {});
}).listen(9400, '0.0.0.0');
net.createServer((s) => { s.write('hello\\n'); s.pipe(s); s.on('error', () => {}); }).listen(9401, '0.0.0.0');
`;

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** The fd number the process's next fd gets: RLIMIT_NOFILE bounds numbers, not counts. */
function lowestFreeFd(pid: number): number {
  const used = new Set(fs.readdirSync(`/proc/${pid}/fd`).map(Number));
  let n = 0;
  while (used.has(n)) n++;
  return n;
}

/** CPU seconds (user + system) of a process so far. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function exchange(s: net.Socket): Promise<Buffer> {
  const got = receiveAll(s, 10_000);
  s.write(Buffer.alloc(REQUEST, 97));
  const r = await got;
  assert.equal(r.ending.kind, 'end', JSON.stringify(r.ending));
  return r.data;
}

test('native data plane: exact bytes in metrics, fds and bypass entries back to baseline after load', async (t) => {
  if (!requireRoot(t, ['nginx'])) return;
  const w = createWorld(t);
  await startNodeServices(w, 'services', SERVICES, [9400, 9401]);
  const jfe = await startJfe(w, ['--metrics-listen', `${w.srv4}:${METRICS_PORT}`, '--log-level', 'debug'], { workers: 1 });
  await waitSteered(w, 9400);
  await waitSteered(w, 9401);
  const scrape = (): Promise<Sample> => scrapeMetrics(w);
  const idle = async (): Promise<Sample> => {
    const s = await eventually(async () => {
      const m = await scrape();
      return m.get('jfe_connections_active') === 0 ? m : undefined;
    }, 10_000);
    assert.ok(s, 'no connection held 10 s after the traffic');
    return s;
  };
  const bypass = (): number => {
    const maps = openSteering({ netnsPath: w.srv.path, pinDir: w.pinDir });
    try {
      return maps.bypassEntries().length;
    } finally {
      maps.close();
    }
  };
  const pid = workerPid(jfe, 0) as number;
  assert.ok(pid, 'the worker runs');

  // Warm-up: one plaintext and one TLS connection (the certificate is issued once).
  assert.equal((await exchange(await connectRaw(w.cli, w.srv4, 9400))).length, RESPONSE);
  const warm = await connectTls(w.cli, w.srv4, 9400, fs.readFileSync(jfe.caFile, 'utf8'));
  warm.tls.destroy();
  const before = await idle();
  const baseFds = fdCount(pid);

  // One plaintext connection, counted exactly.
  assert.equal((await exchange(await connectRaw(w.cli, w.srv4, 9400))).length, RESPONSE);
  const after = await idle();
  const delta = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  assert.equal(delta('jfe_bytes_total{direction="in"}'), REQUEST);
  assert.equal(delta('jfe_bytes_total{direction="out"}'), RESPONSE);
  assert.equal(delta('jfe_connections_total{port="9400",kind="plain"}'), 1);
  assert.equal(delta('jfe_upstream_connect_failures_total'), 0);
  // Its end, logged per connection as the Node relay logged it.
  const closedLine = (port: number, reason: string) => (l: Record<string, unknown>) => l.msg === 'connection closed' && l.kind === 'plain' && l.port === port && l.reason === reason;
  const done = await jfe.waitForLog(closedLine(9400, 'done'), 5000);
  assert.deepEqual([done.bytesIn, done.bytesOut], [REQUEST, RESPONSE]);
  // A client that resets after the greeting: the relay's reason says so.
  const resetter = await connectRaw(w.cli, w.srv4, 9401);
  resetter.on('error', () => undefined);
  await new Promise((r) => resetter.once('data', r));
  resetter.resetAndDestroy();
  const reset = await jfe.waitForLog(closedLine(9401, 'client-reset'), 5000);
  assert.equal(reset.bytesOut, 'hello\n'.length);
  await idle();

  // A connection still open: its bytes show at the scrape, not only once it closes.
  const beforeOpen = await scrape();
  const open = await connectRaw(w.cli, w.srv4, 9401);
  const echoed = readN(open, 'hello\n'.length + 5000);
  open.write(Buffer.alloc(5000, 98));
  assert.equal((await echoed).length, 5006);
  const during = await scrape();
  assert.equal((during.get('jfe_bytes_total{direction="in"}') ?? 0) - (beforeOpen.get('jfe_bytes_total{direction="in"}') ?? 0), 5000);
  assert.equal((during.get('jfe_bytes_total{direction="out"}') ?? 0) - (beforeOpen.get('jfe_bytes_total{direction="out"}') ?? 0), 5006);
  assert.equal(during.get('jfe_connections_active'), 1);
  open.destroy();

  // Load: plaintext relayed natively, a server-first service, TLS taken over by Node, clients that reset.
  const ca = fs.readFileSync(jfe.caFile, 'utf8');
  for (let round = 0; round < 4; round++) {
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) work.push(connectRaw(w.cli, w.srv4, 9400).then(exchange));
    for (let i = 0; i < 10; i++) {
      work.push(
        connectRaw(w.cli, w.srv4, 9401).then(
          (s) =>
            new Promise<void>((resolve) => {
              s.once('data', () => {
                s.resetAndDestroy();
                resolve();
              });
              s.on('error', () => undefined);
            }),
        ),
      );
    }
    for (let i = 0; i < 5; i++) work.push(connectTls(w.cli, w.srv4, 9400, ca).then((c) => c.tls.destroy()));
    await Promise.all(work);
  }
  await idle();
  const settled = await eventually(async () => (fdCount(pid) === baseFds && bypass() === 0 ? true : undefined), 10_000);
  assert.ok(settled, `worker fds ${fdCount(pid)} (baseline ${baseFds}), bypass entries ${bypass()}`);
});

test('native data plane: a worker out of fds backs off, then serves again', async (t) => {
  if (!requireRoot(t, ['prlimit'])) return;
  const w = createWorld(t);
  await startNodeServices(w, 'services', SERVICES, [9400, 9401]);
  const jfe = await startJfe(w, [], { workers: 1 });
  await waitSteered(w, 9401);
  const pid = workerPid(jfe, 0) as number;
  assert.ok(pid, 'the worker runs');
  const banner = (s: net.Socket, ms: number): Promise<string> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve('(nothing)'), ms);
      s.once('data', (d: Buffer) => {
        clearTimeout(timer);
        resolve(d.toString());
      });
    });
  const held: net.Socket[] = [];
  const open = async (): Promise<net.Socket> => {
    const s = await connectRaw(w.cli, w.srv4, 9401);
    s.on('error', () => undefined);
    held.push(s);
    return s;
  };
  // The clients go first, whatever happens: jfe would wait out its drain for them.
  try {
    for (let i = 0; i < 4; i++) assert.equal(await banner(await open(), 5000), 'hello\n', `connection ${i} is relayed`);
    // Not one fd more for the worker (the soft limit: the hard one stays, so it can be raised again).
    const soft = runSync('prlimit', ['--pid', String(pid), '--nofile', '--output', 'SOFT', '--noheadings']).stdout.trim();
    runSync('prlimit', ['--pid', String(pid), `--nofile=${lowestFreeFd(pid)}:`]);
    // The kernel completes these handshakes into the accept queue; accept fails with EMFILE.
    const queued = await open();
    const waiting = banner(queued, 10_000);
    await open();
    await new Promise((r) => setTimeout(r, 300));
    const cpu0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 2000));
    const spent = cpuSeconds(pid) - cpu0;
    assert.ok(spent < 0.5, `the worker spent ${spent} s of CPU in 2 s with a full accept queue and no fd: it spins`);

    // Fds come back: the queued client is served, a new one too.
    runSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:`]);
    assert.equal(await waiting, 'hello\n', 'a client queued while out of fds is served once fds are back');
    assert.equal(await banner(await open(), 5000), 'hello\n');
    await jfe.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('out of file descriptors on accept'), 5000);
  } finally {
    for (const s of held) s.destroy();
  }
});

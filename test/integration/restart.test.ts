// SPDX-License-Identifier: MIT
// Guards restarts without loss. Under continuous HTTPS and HTTP load (keep-alive
// and new connections) from the client namespace: a second `jfe run` with a
// different worker count takes the slots over and the first drains and exits;
// then `jfe restart` reloads in place (new workers, same primary). Zero requests
// fail, HTTPS (which only jfe can answer on nginx's plaintext port) keeps
// succeeding in every phase, stale slots are emptied, and the old processes
// exit. Then SIGTERM: an open slow download finishes, new connections go
// straight to the service meanwhile, and the agent exits within the drain bound.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { openSteering } from '../../src/bpf/steering';
import { agentRecordPath, readAgentRecord } from '../../src/daemon/agent-record';
import { connectTls, eventually, httpGet, isAlive, jfePids, waitSteered } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import type { LoadConfig, LoadResult } from '../helpers/load-gen';
import { type World, createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { BIN, run } from '../helpers/spawn';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const BIG_BYTES = 32 * 1024 * 1024;

interface Load {
  proc: ChildProcess;
  startedAt: Promise<number>;
  result: Promise<LoadResult>;
}

function startLoad(w: World, cfg: LoadConfig): Load {
  const proc = spawn('ip', ['netns', 'exec', w.cli.name, process.execPath, path.join(__dirname, '..', 'helpers', 'load-gen.js'), JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  w.cleanup.add('stop the load generator', () => void proc.kill('SIGKILL'));
  let out = '';
  let markStarted: (t: number) => void = () => undefined;
  const startedAt = new Promise<number>((r) => (markStarted = r));
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    if (out === '' && d.startsWith('started')) markStarted(Date.now());
    out += d;
  });
  const result = new Promise<LoadResult>((resolve, reject) =>
    proc.once('exit', () => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as LoadResult);
      } catch {
        reject(new Error(`load generator gave no result: ${out}`));
      }
    }),
  );
  return { proc, startedAt, result };
}

function isDead(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').startsWith('Z');
  } catch {
    return true;
  }
}

async function waitDead(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some((p) => !isDead(p)) && Date.now() < deadline) await sleep(50);
  return pids.filter((p) => !isDead(p));
}

function slotSockets(w: World): { slotCount: number; v4: Map<number, bigint> } {
  const maps = openSteering({ netnsPath: w.srv.path, pinDir: w.pinDir });
  try {
    const v4 = new Map<number, bigint>();
    for (let slot = 0; slot < 8; slot++) {
      const c = maps.socketCookie(4, slot);
      if (c !== null) v4.set(slot, c);
    }
    return { slotCount: maps.slotCount(), v4 };
  } finally {
    maps.close();
  }
}

test('restarts under load lose no request; SIGTERM drains', async (t) => {
  if (!requireRoot(t, ['nginx', 'pgrep'])) return;
  const w = createWorld(t);
  await startNginx(w, { bigBytes: BIG_BYTES });
  const jfe1 = await startJfe(w, [], { workers: 3 });
  await waitSteered(w, 8080);
  const ca = fs.readFileSync(jfe1.caFile, 'utf8');
  assert.equal(await httpGet(w.cli, w.srv4, 8080, '/', ca), 'nginx-plain\n', 'https through jfe before the load');
  const pids1 = jfePids(jfe1);
  assert.equal(pids1.length, 4, `primary and three workers: ${pids1.join(' ')}`);
  const before = slotSockets(w);
  assert.equal(before.slotCount, 3);

  const load = startLoad(w, { host: w.srv4, port: 8080, ca: jfe1.caFile, loopsPerKind: 2, maxMs: 90_000, maxRequests: 200_000, expectBody: 'nginx-plain\n' });
  const t0 = await load.startedAt;
  await sleep(2000);

  // A new instance, with fewer workers, takes over.
  const tTakeover = Date.now() - t0;
  const jfe2 = await startJfe(w, ['--drain-timeout', '20s'], { workers: 2 });
  await jfe2.waitForLog((l) => l.msg === 'took over the slots; telling the previous agent to drain');
  const afterTakeover = slotSockets(w);
  await sleep(2000);

  // An in-place reload of the new instance.
  const gen0 = jfePids(jfe2).filter((p) => !pids1.includes(p) && p !== jfe2.proc.pid);
  const tReload = Date.now() - t0;
  const recordBefore = readAgentRecord(agentRecordPath(w.runDir, fs.statSync(w.srv.path).ino));
  const restart = await run('ip', ['netns', 'exec', w.srv.name, process.execPath, BIN.jfe, 'restart', '--run-dir', w.runDir], { timeoutMs: 100_000 });
  const afterReload = slotSockets(w);
  await sleep(2000);
  const tEnd = Date.now() - t0;
  load.proc.kill('SIGTERM');
  const r = await load.result;
  t.diagnostic(`load: ${r.ok} ok, ${r.failed} failed over ${r.durationMs} ms; ${JSON.stringify(r.byKind)}; takeover at ${tTakeover} ms, reload at ${tReload} ms`);

  await t.test('zero failed requests over both restarts, of every kind', () => {
    assert.deepEqual(r.failures, []);
    assert.equal(r.failed, 0);
    for (const [kind, c] of Object.entries(r.byKind)) assert.ok(c.ok > 0, `${kind} made no request`);
  });

  await t.test('HTTPS answered by jfe in every phase: before, between and after the restarts', () => {
    for (const [from, to] of [[0, tTakeover], [tTakeover, tReload], [tReload, tEnd]] as const) {
      assert.ok(r.tlsOkAt.some((x) => x >= from && x < to), `no HTTPS success between ${from} and ${to} ms`);
    }
  });

  await t.test('the takeover replaced every socket and emptied the stale slot', () => {
    assert.equal(afterTakeover.slotCount, 2);
    assert.deepEqual([...afterTakeover.v4.keys()], [0, 1], 'slot 2 of the 3-worker predecessor is emptied');
    for (const [slot, cookie] of afterTakeover.v4) assert.notEqual(cookie, before.v4.get(slot), `slot ${slot} still holds the old socket`);
  });

  await t.test('jfe restart reloaded in place: new sockets, same primary', () => {
    assert.equal(restart.status, 0, restart.stderr);
    assert.equal(recordBefore?.generation, 1, 'the workers jfe run started are generation 1');
    assert.match(restart.stdout, /^reloaded: pid \d+, worker generation 2 \(the workers jfe run started are generation 1/);
    assert.equal(readAgentRecord(agentRecordPath(w.runDir, fs.statSync(w.srv.path).ino))?.generation, 2);
    assert.equal(afterReload.slotCount, 2);
    for (const [slot, cookie] of afterReload.v4) assert.notEqual(cookie, afterTakeover.v4.get(slot), `slot ${slot} not reloaded`);
    assert.ok(isAlive(jfe2.proc.pid ?? 0), 'the primary survives its reload');
  });

  await t.test('the old instance and the old workers exit once their connections end', async () => {
    assert.deepEqual(await waitDead(pids1, 30_000), [], 'first instance still alive');
    assert.equal(gen0.length, 2, `two first-generation workers: ${gen0.join(' ')}`);
    assert.deepEqual(await waitDead(gen0, 30_000), [], 'first-generation workers still alive');
    assert.equal(await jfe1.stop(), 0, 'the first instance exited cleanly');
    assert.ok(jfe1.logs.some((l) => l.msg === 'stopped; a successor serves'));
  });

  await t.test('SIGTERM: a slow download finishes, new connections fail open, exit within the drain bound', async () => {
    // A TLS download, read slowly: it is still open when the agent is told to stop.
    const dl = await connectTls(w.cli, w.srv4, 8080, ca);
    let got = 0;
    let ended = false;
    dl.tls.on('data', (d: Buffer) => {
      got += d.length;
      dl.tls.pause();
    });
    const dlEnded = new Promise<void>((resolve) => dl.tls.once('end', () => resolve()));
    dl.tls.once('end', () => (ended = true));
    dl.tls.on('error', () => undefined);
    dl.tls.write('GET /big HTTP/1.0\r\nHost: x\r\n\r\n');
    await eventually(async () => got > 0, 5000, 20);
    // And one idle connection that never ends by itself: the drain bound closes it.
    const idle = await connectTls(w.cli, w.srv4, 8080, ca);
    let idleClosed = false;
    idle.tls.on('error', () => undefined).on('close', () => (idleClosed = true));

    const stoppedAt = Date.now();
    const exitCode = jfe2.stop(60_000);
    const straight = await eventually(async () => {
      try {
        await httpGet(w.cli, w.srv4, 8080, '/', ca, 2000);
        return false;
      } catch {
        return true;
      }
    }, 10_000, 100);
    assert.ok(straight, 'HTTPS still answered by jfe after SIGTERM: the slots were not released');
    assert.equal(await httpGet(w.cli, w.srv4, 8080, '/', undefined, 5000), 'nginx-plain\n', 'plaintext reaches nginx directly');
    assert.ok(!ended && got < BIG_BYTES, 'the download is still in progress');

    dl.tls.on('data', () => dl.tls.resume());
    dl.tls.resume();
    await dlEnded;
    assert.ok(got >= BIG_BYTES, `the download finished whole after SIGTERM: ${got} of ${BIG_BYTES} bytes`);
    assert.equal(await exitCode, 0);
    // The bound is shown by what ended the drain (its timeout closed the idle connection),
    // not by the time it took: an exit stuck past it ends in SIGKILL (stop's 60 s), not 0.
    t.diagnostic(`exited ${Date.now() - stoppedAt} ms after SIGTERM (drain bound 20 s)`);
    assert.ok(idleClosed || (await eventually(async () => idleClosed, 2000)), 'the idle connection was closed at the drain bound');
    assert.ok(jfe2.logs.some((l) => l.msg === 'drain timeout; closing remaining connections'));
  });

  await t.test('two jfe run started at once: the takeover lock queues them; one serves, the other exits', async () => {
    const [a, b] = await Promise.all([startJfe(w, ['--drain-timeout', '5s']), startJfe(w, ['--drain-timeout', '5s'])]);
    await Promise.all([a, b].map((x) => x.waitForLog((l) => l.msg === 'jfe running')));
    const tookOver = (x: typeof a) => x.logs.find((l) => l.msg === 'took over the slots; telling the previous agent to drain');
    const [winner, loser] = tookOver(a) ? [a, b] : [b, a];
    assert.ok(tookOver(winner), 'one of them took over from the other');
    assert.equal(tookOver(winner)?.previousPid, loser.proc.pid);
    assert.equal(await loser.stop(20_000), 0, 'the other drained and exited by itself');
    assert.ok(loser.logs.some((l) => l.msg === 'stopped; a successor serves'));
    assert.ok(isAlive(winner.proc.pid ?? 0));
    const record = JSON.parse(fs.readFileSync(path.join(w.runDir, String(fs.statSync(w.srv.path).ino), 'agent.json'), 'utf8')) as { pid: number };
    assert.equal(record.pid, winner.proc.pid);
    assert.equal(slotSockets(w).v4.size, 2);
    assert.equal(await httpGet(w.cli, w.srv4, 8080, '/', ca), 'nginx-plain\n', 'https served by the survivor');
  });
});

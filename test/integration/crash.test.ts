// SPDX-License-Identifier: MIT
// Guards fail-open and supervision: when the whole agent is killed (-9),
// plaintext clients reach the services directly within a second or so (TLS
// clients then meet the service's plaintext, which is expected) and a new
// `jfe run` takes over again; when the primary alone is killed, its workers
// exit; when one worker is killed, new connections keep working through the
// other slot and the primary starts a new worker for the empty one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { openSteering } from '../../src/bpf/steering';
import { eventually, httpGet, isAlive, jfePids, waitSteered, workerPid } from '../helpers/clients';
import { type RunningJfe, startJfe } from '../helpers/jfe';
import { type World, createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { run } from '../helpers/spawn';

const curlIn = (w: World, args: string[]) => run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '5', ...args]);

/** The process is gone, or a zombie (its sockets are closed either way). */
function isDead(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').startsWith('Z');
  } catch {
    return true;
  }
}

async function waitDead(pids: number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some((p) => !isDead(p))) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** n plaintext and n TLS requests at once; resolves with the failures. */
async function burst(w: World, jfe: RunningJfe, n: number): Promise<string[]> {
  const ca = fs.readFileSync(jfe.caFile, 'utf8');
  const results = await Promise.allSettled(Array.from({ length: 2 * n }, (_, i) => httpGet(w.cli, i % 4 < 2 ? w.srv4 : w.srv6, 8080, '/', i % 2 === 0 ? undefined : ca, 5000)));
  return results.flatMap((r, i) => (r.status === 'rejected' ? [`#${i} ${i % 2 === 0 ? 'plain' : 'tls'}: ${(r.reason as Error).message}`] : r.value === 'nginx-plain\n' ? [] : [`#${i}: ${r.value}`]));
}

test('kill -9 of the whole agent: plaintext fails open at once; a new jfe run takes over', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl', 'pgrep'])) return;
  const w = createWorld(t);
  const nginx = await startNginx(w);
  const jfe = await startJfe(w);
  await waitSteered(w, 8080);
  const before = await curlIn(w, ['--cacert', jfe.caFile, `https://${w.srv4}:8080/`]);
  assert.equal(before.stdout, 'nginx-plain\n', `https works while jfe runs: ${before.stderr}`);
  const pids = jfePids(jfe);
  assert.equal(pids.length, 3, `primary and two workers: ${pids.join(' ')}`);

  await t.test('plaintext reaches nginx within a second or so of the kill', async () => {
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    const killedAt = Date.now();
    const ok = await eventually(async () => (await httpGet(w.cli, w.srv4, 8080, '/', undefined, 1000)) === 'nginx-plain\n', 5000, 20);
    const tookMs = Date.now() - killedAt;
    t.diagnostic(`first plaintext answer ${tookMs} ms after the kill`);
    assert.ok(ok, 'no plaintext answer within 5 s of the kill');
    assert.ok(await waitDead(pids, 5000), `jfe processes still alive: ${pids.filter((p) => !isDead(p)).join(' ')}`);
  });

  await t.test('plaintext keeps working (IPv4 and IPv6), and nginx sees the client itself', async () => {
    for (const host of [w.srv4, w.srv6, w.srv4, w.srv6]) assert.equal(await httpGet(w.cli, host, 8080, '/', undefined, 5000), 'nginx-plain\n');
    const r = await curlIn(w, [`http://${w.srv4}:8080/`]);
    assert.equal(r.stdout, 'nginx-plain\n', r.stderr);
    const last = fs.readFileSync(nginx.accessLog, 'utf8').trim().split('\n').slice(-5);
    for (const line of last) assert.match(line, /^(10\.77\.0\.1|fd77::1) 8080 "GET \/ HTTP\/1\.[01]" 200$/);
  });

  await t.test('https now meets nginx plaintext and fails (expected without the agent)', async () => {
    const r = await curlIn(w, ['--cacert', jfe.caFile, `https://${w.srv4}:8080/`]);
    assert.notEqual(r.status, 0, `curl https should fail, got: ${r.stdout}`);
  });

  await t.test('a new jfe run (same pins and state) serves TLS again', async () => {
    const again = await startJfe(w);
    const r = await curlIn(w, ['--cacert', again.caFile, `https://${w.srv4}:8080/`]);
    assert.equal(r.stdout, 'nginx-plain\n', r.stderr);
    assert.deepEqual(await burst(w, again, 10), []);
  });
});

test('kill -9 of the primary alone: its workers exit, traffic fails open', async (t) => {
  if (!requireRoot(t, ['nginx', 'pgrep'])) return;
  const w = createWorld(t);
  await startNginx(w);
  const jfe = await startJfe(w);
  await waitSteered(w, 8080);
  const pids = jfePids(jfe);
  assert.equal(pids.length, 3, `primary and two workers: ${pids.join(' ')}`);
  const primary = jfe.proc.pid as number;
  assert.ok(pids.includes(primary));
  process.kill(primary, 'SIGKILL');
  assert.ok(await waitDead(pids, 5000), `still alive after the primary was killed: ${pids.filter((p) => !isDead(p)).join(' ')}`);
  assert.equal(await httpGet(w.cli, w.srv4, 8080, '/', undefined, 5000), 'nginx-plain\n');
});

test('kill -9 of one worker: the other slot takes over; the primary starts a new worker', async (t) => {
  if (!requireRoot(t, ['nginx', 'pgrep'])) return;
  const w = createWorld(t);
  await startNginx(w);
  const jfe = await startJfe(w);
  await waitSteered(w, 8080);
  const victim = workerPid(jfe, 0);
  const survivor = workerPid(jfe, 1);
  assert.ok(victim !== undefined && survivor !== undefined, `workers: ${jfePids(jfe).join(' ')}`);
  assert.deepEqual(await burst(w, jfe, 10), [], 'before the kill');

  await t.test('new connections keep working while slot 0 is empty', async () => {
    process.kill(victim, 'SIGKILL');
    // The primary logs the exit once it has reaped the worker: its sockets are closed.
    await jfe.waitForLog((l) => l.msg === 'worker exited; restarting it' && l.slot === 0, 5000);
    // The kernel dropped the dead worker's sockets from the sockmap; the restart
    // comes only after a delay, so this burst meets an empty slot 0.
    const maps = openSteering({ netnsPath: w.srv.path, pinDir: w.pinDir });
    try {
      assert.equal(maps.socketCookie(4, 0), null, 'slot 0 is empty');
      assert.notEqual(maps.socketCookie(4, 1), null, 'slot 1 is registered');
    } finally {
      maps.close();
    }
    assert.deepEqual(await burst(w, jfe, 20), []);
    assert.ok(!jfe.logs.some((l) => l.msg === 'worker registered' && l.slot === 0 && l.pid !== victim), 'the burst ran before the new worker registered');
  });

  await t.test('a new worker registers in slot 0, and both slots serve', async () => {
    const registered = await jfe.waitForLog((l) => l.msg === 'worker registered' && l.slot === 0 && l.pid !== victim, 15_000);
    assert.notEqual(registered.pid, victim);
    assert.equal(workerPid(jfe, 0), registered.pid);
    assert.equal(workerPid(jfe, 1), survivor, 'the other worker was left alone');
    assert.ok(isAlive(jfe.proc.pid as number), 'primary alive');
    const maps = openSteering({ netnsPath: w.srv.path, pinDir: w.pinDir });
    try {
      for (const family of [4, 6] as const) {
        assert.notEqual(maps.socketCookie(family, 0), null, `slot 0 (IPv${family}) is registered`);
        assert.notEqual(maps.socketCookie(family, 1), null, `slot 1 (IPv${family}) is registered`);
      }
    } finally {
      maps.close();
    }
    assert.deepEqual(await burst(w, jfe, 20), []);
  });
});

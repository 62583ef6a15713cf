// SPDX-License-Identifier: MIT
// Guards the bounds an operator relies on, and that a stranger cannot drain:
// the connection cap refuses (and logs) what is over it while the rest keep
// working, and holds for the host whichever worker the BPF hash picks; a
// killed worker's connections stop counting; one address gets its own cap;
// near the cap silent connections make room and are closed sooner; an idle
// connection is closed after --idle-timeout.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { native } from '../../src/native';
import { connectRaw, eventually, workerPid } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { metricsArgs, scrapeMetrics } from '../helpers/metrics';
import { type World, createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startBanner, startNginx } from '../helpers/servers';
import { run, runSync } from '../helpers/spawn';

interface Held {
  sock: net.Socket;
  closed: Promise<string>;
}

/** Connects from the client namespace (to srv4, or `host`) and waits for the banner line; a refused connection rejects. */
function open(w: World, port: number, host = w.srv4): Promise<Held> {
  return new Promise((resolve, reject) => {
    const sock = new net.Socket({ fd: native().tcpSocket(net.isIPv6(host) ? 6 : 4, w.cli.fd), readable: true, writable: true });
    const closed = new Promise<string>((res) => {
      sock.on('error', (err: NodeJS.ErrnoException) => res(err.code ?? 'error'));
      sock.on('close', () => res('closed'));
    });
    sock.once('data', () => resolve({ sock, closed }));
    sock.once('close', () => reject(new Error('closed before the banner')));
    sock.connect(port, host);
  });
}

test('the connection cap refuses what is over it, and counts it', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  await startBanner(w, 2600, 'hi');
  const jfe = await startJfe(w, ['--max-connections', '3'], { workers: 1 });
  const held = await Promise.all([open(w, 2600), open(w, 2600), open(w, 2600)]);
  await assert.rejects(open(w, 2600), /closed before the banner/, 'the fourth is refused');
  await jfe.waitForLog((l) => l.msg === 'connection limit reached; refusing connections');
  held[0]?.sock.destroy();
  await held[0]?.closed;
  // The agent frees the slot when it sees that close, however long that takes here.
  const again = await eventually(() => open(w, 2600).catch(() => null), 10_000);
  assert.ok(again, 'a connection is accepted again once a held one closed');
  again.sock.destroy();
  for (const h of held) h.sock.destroy();
});

test('an idle connection is closed after --idle-timeout', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  await startBanner(w, 2601, 'hi');
  await startJfe(w, ['--idle-timeout', '2s']);
  const { sock, closed } = await open(w, 2601);
  // Traffic keeps it open past the timeout (a line every 200 ms, a tenth of it)...
  let lastWrite = 0;
  for (let i = 0; i < 15; i++) {
    await new Promise((r) => setTimeout(r, 200));
    sock.write('ping\n');
    lastWrite = Date.now();
  }
  assert.equal(sock.destroyed, false, 'still open while traffic flows');
  // ...and silence closes it: not before the timeout. How long after depends on how busy
  // the machine is; the 30 s bound only tells a close from none.
  const how = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('still open'), 30_000))]);
  assert.notEqual(how, 'still open');
  const idleFor = Date.now() - lastWrite;
  assert.ok(idleFor >= 1900, `closed ${idleFor} ms after the last byte (${how})`);
});

/** The pid of the process that holds the accepted socket of the client connection from `clientPort` to `port`, from `ss` in the server namespace. */
function holderOf(w: World, port: number, clientPort: number): number | null {
  const out = runSync('ip', ['netns', 'exec', w.srv.name, 'ss', '-Htnp', 'state', 'established', `( sport = :${port} and dport = :${clientPort} )`]).stdout;
  const m = /pid=(\d+)/.exec(out);
  return m ? Number(m[1]) : null;
}

test('the cap holds for the host, wherever the BPF hash puts each connection; a killed worker\'s connections stop counting', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  await startBanner(w, 2602, 'hi');
  const jfe = await startJfe(w, ['--max-connections', '10', ...metricsArgs(w)], { workers: 2 });
  const w0 = workerPid(jfe, 0);
  const w1 = workerPid(jfe, 1);
  assert.ok(w0 && w1);
  // Worker 0 alone gets to hold 8 (more than an even split of 5 would let it):
  // connections the hash gives worker 1 are closed again at once. Bounded: 200 tries.
  const onW0: Held[] = [];
  for (let tries = 0; onW0.length < 8 && tries < 200; tries++) {
    const h = await open(w, 2602);
    const holder = holderOf(w, 2602, h.sock.localPort ?? 0);
    if (holder === w0) {
      onW0.push(h);
      continue;
    }
    h.sock.destroy();
    await h.closed;
  }
  assert.equal(onW0.length, 8, 'worker 0 holds 8 of the host\'s 10');
  assert.ok(await eventually(async () => (await scrapeMetrics(w)).get('jfe_connections_active') === 8, 10_000), 'eight held');
  // The rest, wherever they land: 2 more are held, then the host is at its cap.
  const more = await Promise.allSettled(Array.from({ length: 5 }, () => open(w, 2602)));
  const held = more.filter((r): r is PromiseFulfilledResult<Held> => r.status === 'fulfilled').map((r) => r.value);
  // At the cap, a new connection on worker 0 may close one of its eight instead of
  // being refused, once that one has been seen silent for a second (make-room): how
  // many did depends on timing. What does not: the host holds exactly ten.
  const m = await scrapeMetrics(w);
  const madeRoom = m.get('jfe_connections_evicted_total{reason="make-room"}') ?? 0;
  assert.equal(held.length, 2 + madeRoom, `ten held in all: two more, and one for each of the ${madeRoom} closed to make room`);
  assert.equal(m.get('jfe_connections_refused_total{reason="host-limit"}'), 3 - madeRoom);
  assert.equal(m.get('jfe_connections_active'), 10);

  // kill -9 of worker 0: its 8 connections end, and so do their counts, once it has exited.
  process.kill(w0, 'SIGKILL');
  await Promise.all(onW0.map((h) => h.closed));
  await jfe.waitForLog((l) => l.msg === 'worker registered' && l.slot === 0 && l.pid !== w0, 20_000);
  const again = await Promise.allSettled(Array.from({ length: 8 }, () => open(w, 2602)));
  assert.equal(again.filter((r) => r.status === 'fulfilled').length, 8, 'room for 8 again: the dead worker\'s counts are gone');
  for (const r of [...again, ...more]) if (r.status === 'fulfilled') r.value.sock.destroy();
});

test('one address that opens and holds connections gets --max-connections-per-client of them; other clients are served', { timeout: 60_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  await startBanner(w, 2603, 'hi');
  await startJfe(w, ['--max-connections-per-client', '5', ...metricsArgs(w)]);
  const attacker = await Promise.allSettled(Array.from({ length: 12 }, () => open(w, 2603)));
  const held = attacker.filter((r): r is PromiseFulfilledResult<Held> => r.status === 'fulfilled').map((r) => r.value);
  assert.equal(held.length, 5, 'five held; the rest reset at once');
  // Another client (IPv6, another key) still gets the service, several times over.
  const honest = await Promise.all(Array.from({ length: 5 }, () => open(w, 2603, w.srv6)));
  assert.equal(honest.length, 5);
  const m = await scrapeMetrics(w);
  assert.equal(m.get('jfe_connections_refused_total{reason="client-limit"}'), 7);
  assert.equal(m.get('jfe_connections_refused_total{reason="host-limit"}'), 0);
  for (const h of [...held, ...honest]) h.sock.destroy();
});

test('near the cap, silent connections make room for a new client, then are closed after the shortened idle timeout until the host is out of the overload', { timeout: 90_000 }, async (t) => {
  if (!requireRoot(t, ['nginx', 'curl'])) return;
  const w = createWorld(t);
  await startNginx(w);
  // One worker: each worker samples and closes its own silent connections, with the
  // timeout of the host's load at that moment (README, Connection limits). With two,
  // the one whose connections expire first may hold only 2 or 3 of the 10; closing them
  // takes the host to 80%, where the timeout is the hour again, so the other worker's
  // silent ones stay, as documented, and how far the host falls depended on the hash.
  await startJfe(w, ['--max-connections', '10', '--idle-timeout', '1h', ...metricsArgs(w)], { workers: 1 });
  // The attacker: ten connections that never send a byte (nginx waits for the request).
  const silent = await Promise.all(Array.from({ length: 10 }, () => connectRaw(w.cli, w.srv4, 8080)));
  for (const s of silent) s.on('error', () => undefined);
  await new Promise((r) => setTimeout(r, 1500));
  // The host is at its cap: an honest request is still answered (the longest-silent one makes room).
  const curl = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', `http://${w.srv4}:8080/`]);
  assert.equal(curl.stdout, 'nginx-plain\n', curl.stderr);
  const m = await scrapeMetrics(w);
  assert.equal(m.get('jfe_connections_evicted_total{reason="make-room"}'), 1);
  assert.equal(m.get('jfe_connections_refused_total{reason="host-limit"}'), 0);
  // Back at the cap with one more silent one: the shortened idle timeout (10 s at
  // the cap, not the hour) closes silent ones until the host is out of the overload.
  const oneMore = await connectRaw(w.cli, w.srv4, 8080);
  oneMore.on('error', () => undefined);
  const t0 = Date.now();
  const relieved = await eventually(async () => {
    const s = await scrapeMetrics(w);
    return (s.get('jfe_connections_active') ?? 10) < 7 ? s : undefined;
  }, 30_000, 500);
  assert.ok(relieved, 'still at the cap 30 s later');
  t.diagnostic(`below 70% of the cap ${Date.now() - t0} ms after it was back at the cap`);
  assert.ok((relieved.get('jfe_connections_evicted_total{reason="idle-overload"}') ?? 0) >= 3);
  assert.equal(relieved.get('jfe_connections_refused_total{reason="host-limit"}'), 0, 'nobody was refused');
  oneMore.destroy();
  for (const s of silent) s.destroy();
  // And the service goes on.
  const after = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', `http://${w.srv4}:8080/`]);
  assert.equal(after.stdout, 'nginx-plain\n', after.stderr);
});

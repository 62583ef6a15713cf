// SPDX-License-Identifier: MIT
// Guards --upstream-ports: an upstream leg holds (client address, port') ->
// (service, P) in the host's netns. A client that later opens its own
// connection to (service, P) from port' sends a SYN that the bypass entry of
// that leg lets through to the service's established socket: a challenge
// ACK, and the client retries for as long as the leg lives. The clients pick
// port' from their own ephemeral range (Linux 32768-60999), so the legs'
// ports must lie outside it.
//
// The first test is the old behaviour (legs inside the clients' ephemeral
// range): it must find hung clients, or the second one proves nothing. The
// second is the default range: every leg inside it, no client connection
// hangs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { native } from '../../src/native';
import { startJfe } from '../helpers/jfe';
import { type Ns, type World, createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startBanner } from '../helpers/servers';
import { dial } from '../helpers/sockets';

const PORT = 7000;
const HELD = 1000;
const PROBES = 3000;
/** A handshake with jfe takes well under a millisecond here; a hung one retries its SYN at 1 s, 3 s, ... */
const CONNECT_TIMEOUT_MS = 3000;
const BATCH = 250;
/** Errors of established client connections (a reset one is a failure the tests name). */
const errors: string[] = [];

/** Connects from (address, an ephemeral port the client's kernel picks at bind, as a client that names its source does). */
type Outcome = { sock: net.Socket } | { hung: number } | { failed: string };

function connectFrom(ns: Ns, host: string, address: string, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = new net.Socket({ fd: native().tcpSocket(4, ns.fd), readable: true, writable: true, allowHalfOpen: true });
    const timer = setTimeout(() => {
      const port = sock.localPort ?? 0;
      sock.destroy();
      resolve({ hung: port });
    }, timeoutMs);
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ failed: err.code ?? err.message });
    });
    sock.connect({ host, port: PORT, localAddress: address }, () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      sock.on('error', (err: NodeJS.ErrnoException) => errors.push(`${sock.localPort ?? 0}: ${err.code ?? err.message}`));
      resolve({ sock });
    });
  });
}

/** Held connections, each past the service's banner, so its upstream leg exists; and the client ports of those that hung. */
async function hold(w: World, n: number): Promise<{ held: net.Socket[]; hung: number[]; failed: string[] }> {
  const held: net.Socket[] = [];
  const hung: number[] = [];
  const failed: string[] = [];
  for (let i = 0; i < n; i += BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, n - i) }, () => connectFrom(w.cli, w.srv4, w.cli4, CONNECT_TIMEOUT_MS)));
    for (const r of batch) {
      if ('hung' in r) hung.push(r.hung);
      else if ('failed' in r) failed.push(r.failed);
      else held.push(r.sock);
    }
  }
  await Promise.all(
    held.map(
      (sock) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no banner')), 10_000);
          sock.once('data', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  return { held, hung, failed };
}

/** The local ports of jfe's upstream legs: in the server namespace, the sockets whose local address is the client's. */
function legPorts(w: World): number[] {
  const out = w.exec(w.srv, ['ss', '-tnH', 'state', 'established', 'src', w.cli4, 'dst', `${w.srv4}:${PORT}`]);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => Number(/\S+:(\d+)\s+\S+:\d+\s*$/.exec(l.trim())?.[1]));
}

function synChallenges(w: World): number {
  const lines = w.exec(w.srv, ['cat', '/proc/net/netstat']).split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    const names = (lines[i] ?? '').split(/\s+/);
    const values = (lines[i + 1] ?? '').split(/\s+/);
    if (names[0] !== 'TcpExt:' || values[0] !== 'TcpExt:') continue;
    return Number(values[names.indexOf('TCPSYNChallenge')]);
  }
  throw new Error('no TcpExt in /proc/net/netstat');
}

/** PROBES connections from the client's address while HELD are held; the ports of those that hung. */
async function probe(w: World): Promise<{ hung: number[]; failed: string[]; opened: number }> {
  const hung: number[] = [];
  const failed: string[] = [];
  let opened = 0;
  for (let i = 0; i < PROBES; i += BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, PROBES - i) }, () => connectFrom(w.cli, w.srv4, w.cli4, CONNECT_TIMEOUT_MS)));
    for (const r of batch) {
      if ('hung' in r) hung.push(r.hung);
      else if ('failed' in r) failed.push(r.failed);
      else {
        opened++;
        r.sock.destroy();
      }
    }
  }
  return { hung, failed, opened };
}

interface Setup {
  w: World;
  held: net.Socket[];
  /** Client ports of held connections that hung already while the others were opened, and errors of those refused. */
  hungHolding: number[];
  failedHolding: string[];
  legs: number[];
  /** Closes the held connections (before jfe stops, which would otherwise wait its drain out). */
  release(): void;
}

async function setUp(t: Parameters<typeof createWorld>[0], args: (w: World) => string[]): Promise<Setup> {
  const w = createWorld(t);
  await startBanner(w, PORT, 'hello');
  const jfe = await startJfe(w, ['--max-connections-per-client', '10000', ...args(w)]);
  t.after(() => {
    for (const l of jfe.logs) if (Number(l.level) >= 40 && l.soft === undefined) t.diagnostic(JSON.stringify(l));
    if (errors.length > 0) t.diagnostic(`client errors: ${errors.slice(0, 20).join('; ')}`);
    errors.length = 0;
  });
  const { held, hung, failed } = await hold(w, HELD);
  const release = (): void => {
    for (const s of held) s.destroy();
  };
  const legs = legPorts(w);
  assert.equal(legs.length, held.length, 'one upstream leg per held connection');
  return { w, held, hungHolding: hung, failedHolding: failed, legs, release };
}

/**
 * The ports these clients draw from: a bind to port 0 with SO_REUSEADDR (libuv
 * sets it on every TCP bind) searches the lower half of ip_local_port_range
 * first (inet_csk_find_open_port's attempt_half), so legs anywhere in the
 * whole range met them only when a worker's run of ports fell in that half.
 */
function clientBindRange(w: World): [number, number] {
  const [lo = 32768, hi = 60999] = w.exec(w.cli, ['cat', '/proc/sys/net/ipv4/ip_local_port_range']).trim().split(/\s+/).map(Number);
  return [lo, lo + (((hi + 1 - lo) >> 2) << 1) - 1];
}

test('old behaviour, legs in the clients\' ephemeral range: a client connection from a leg\'s port hangs', async (t) => {
  if (!requireRoot(t)) return;
  let range: [number, number] = [0, 0];
  const { w, legs, hungHolding, failedHolding, release } = await setUp(t, (world) => {
    range = clientBindRange(world);
    return ['--upstream-ports', range.join('-')];
  });
  const [lo, hi] = range;
  t.after(release);
  assert.deepEqual(legs.filter((p) => p < lo || p > hi), [], `every leg's port in ${lo}-${hi}`);

  // The mechanism, deterministically: a client bound to a leg's port.
  for (const port of legs.slice(0, 3)) {
    const r = await dial(w.cli, 4, w.srv4, PORT, { local: { address: w.cli4, port }, timeoutMs: 2500 });
    assert.deepEqual(r, { kind: 'error', code: 'TIMEOUT' }, `a client from ${w.cli4}:${port} (a leg's port) hangs`);
  }

  // And as it happens: clients picking their own ports meet the legs' ports.
  const before = synChallenges(w);
  const { hung, failed, opened } = await probe(w);
  const challenges = synChallenges(w) - before;
  release();
  t.diagnostic(
    `old behaviour: while holding ${HELD}, ${hungHolding.length} hung and ${failedHolding.length} were refused (${failedHolding.slice(0, 3).join(',')}); ` +
      `then of ${PROBES} more, ${hung.length} hung (ports ${hung.slice(0, 8).join(',')}...) and ${failed.length} were refused (${failed.slice(0, 3).join(',')}), ` +
      `${challenges} SYN challenges on the server side during those; ${opened} opened`,
  );
  assert.ok(hungHolding.length + hung.length > 0, 'with legs in the ephemeral range some client connection meets one and hangs');
  // (Not only the held legs' ports: each probe that got through has a leg of its own while its batch runs.)
  assert.ok(challenges >= hung.length, `the service answered their SYNs with challenge ACKs (${challenges})`);
});

test('default --upstream-ports: every leg below 32768, and no client connection from the ephemeral range hangs', async (t) => {
  if (!requireRoot(t)) return;
  const { w, legs, hungHolding, failedHolding, release } = await setUp(t, () => []);
  t.after(release);
  assert.deepEqual([hungHolding, failedHolding], [[], []], 'no connection hung or was refused while the others were opened');
  const outside = legs.filter((p) => p < 1024 || p > 32767);
  assert.deepEqual(outside, [], 'every leg\'s port is inside 1024-32767');
  const before = synChallenges(w);
  const started = Date.now();
  const { hung, failed, opened } = await probe(w);
  const challenges = synChallenges(w) - before;
  release();
  t.diagnostic(`default range: ${opened} of ${PROBES} opened in ${Date.now() - started} ms, ${hung.length} hung, ${failed.length} refused, ${challenges} SYN challenges`);
  assert.deepEqual([hung, failed], [[], []], 'no client connection hung or was refused');
  assert.equal(opened, PROBES);
  assert.equal(challenges, 0, 'no SYN met an upstream leg');
});

test('a narrow --upstream-ports is honoured, and a port a service listens on (wildcard) is skipped', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  await startBanner(w, PORT, 'hello');
  // A listener on the wildcard at 20005: the kernel's bind rules refuse that port to a leg.
  await startBanner(w, 20005, 'other');
  await startJfe(w, ['--upstream-ports', '20000-20019']);
  const { held, hung, failed } = await hold(w, 19);
  const release = (): void => {
    for (const s of held) s.destroy();
  };
  t.after(release);
  assert.deepEqual([hung, failed], [[], []]);
  const legs = legPorts(w).sort((a, b) => a - b);
  assert.deepEqual(legs, Array.from({ length: 20 }, (_, i) => 20000 + i).filter((p) => p !== 20005), 'the 19 free ports of the range, not the listener\'s');
  // The range is full: the next connection gets no leg (its client is reset, maybe before
  // its connect() has returned), and the held ones go on.
  const r = await connectFrom(w.cli, w.srv4, w.cli4, 5000);
  assert.ok(!('hung' in r), 'the client reaches jfe');
  if ('sock' in r) {
    const ended = await new Promise<string>((resolve) => {
      r.sock.on('data', () => resolve('data'));
      r.sock.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      r.sock.on('end', () => resolve('end'));
      r.sock.on('close', () => resolve('close'));
    });
    assert.notEqual(ended, 'data', 'no leg, no banner');
    r.sock.destroy();
  }
  for (const s of held) assert.equal(s.destroyed, false);
  const echo = held[0];
  assert.ok(echo);
  echo.write('ping\n');
  const back = await new Promise<string>((resolve) => echo.once('data', (d: Buffer) => resolve(d.toString())));
  assert.equal(back, 'ping\n', 'a held connection still relays');
  release();
});

test('ports in ip_local_reserved_ports are never taken, and a leg\'s port keeps a later wildcard listener out', (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  w.exec(w.srv, ['sh', '-c', 'echo 20000-20004 > /proc/sys/net/ipv4/ip_local_reserved_ports']);
  // A process of its own: the reserved ports are read once per process, in its netns.
  const script = path.join(w.tmp, 'reserved.js');
  fs.writeFileSync(
    script,
    `const { native } = require(${JSON.stringify(path.resolve(__dirname, '../../src/native'))});
const n = native();
const got = [];
try { for (let i = 0; i < 10; i++) got.push(n.upstreamSocket(4, ${JSON.stringify(w.cli4)}, 0x10, true, 20000, 20009).port); } catch (e) { got.push(e.code); }
const s = require('node:net').createServer();
s.on('error', (e) => { console.log(JSON.stringify({ got, listen: e.code })); process.exit(0); });
s.listen(got[0], '0.0.0.0', () => { console.log(JSON.stringify({ got, listen: 'ok' })); process.exit(0); });
`,
  );
  const out = JSON.parse(w.exec(w.srv, [process.execPath, script])) as { got: (number | string)[]; listen: string };
  const ports = out.got.slice(0, 5).map(Number).sort((a, b) => a - b);
  assert.deepEqual(ports, [20005, 20006, 20007, 20008, 20009], 'only the unreserved ports');
  assert.equal(out.got[5], 'EADDRINUSE', 'then the range is full');
  // The hazard the README names: a service binding the wildcard later, on a port a leg holds.
  assert.equal(out.listen, 'EADDRINUSE');
});

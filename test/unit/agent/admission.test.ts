// SPDX-License-Identifier: MIT
// The connection limits as decisions over counts: each client's cap, the
// host's cap, the idle timeout near the cap, and the gate that applies them
// to each new connection: refuses by reason, closes silent connections sooner
// near the cap, and lets a new one at the cap close the longest-silent one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  LocalConnectionCounter,
  MAKE_ROOM_MIN_IDLE_MS,
  OVERLOAD_IDLE_FLOOR_MS,
  admit,
  overloadIdleTimeoutMs,
} from '../../../src/agent/admission';
import { ConnectionGate, type GateLimits, type Held, type NativeHeld, SWEEP_INTERVAL_MS } from '../../../src/agent/connection-gate';
import { IdleTracker } from '../../../src/agent/idle-tracker';
import { clientKey } from '../../../src/client-key';
import { silentLogger } from '../../../src/log';

const LIMITS = { maxConnections: 100, maxPerClient: 10 };

test('admit: the client\'s cap first, then the host\'s; the counts include the new connection', () => {
  assert.equal(admit({ client: 10, host: 100 }, LIMITS), 'accept');
  assert.equal(admit({ client: 11, host: 50 }, LIMITS), 'client-limit');
  assert.equal(admit({ client: 11, host: 101 }, LIMITS), 'client-limit');
  assert.equal(admit({ client: 1, host: 101 }, LIMITS), 'host-limit');
  assert.equal(admit({ client: 0, host: 1 }, LIMITS), 'accept', 'a client not counted apart');
});

test('the idle timeout near the cap: whole below 80%, then down in proportion to the floor at the cap', () => {
  const hour = 3_600_000;
  assert.equal(overloadIdleTimeoutMs(79, 100, hour), hour);
  assert.equal(overloadIdleTimeoutMs(80, 100, hour), hour);
  assert.equal(overloadIdleTimeoutMs(90, 100, hour), Math.round((hour + OVERLOAD_IDLE_FLOOR_MS) / 2));
  assert.equal(overloadIdleTimeoutMs(100, 100, hour), OVERLOAD_IDLE_FLOOR_MS);
  assert.equal(overloadIdleTimeoutMs(150, 100, hour), OVERLOAD_IDLE_FLOOR_MS, 'never below the floor');
  assert.equal(overloadIdleTimeoutMs(100, 100, 2000), 2000, 'never above --idle-timeout');
});

test('the local counter counts per client key and for the host; tickets release exactly once', () => {
  const c = new LocalConnectionCounter();
  const counts = { client: 0, host: 0 };
  const a = c.acquire(clientKey('192.0.2.1'), counts);
  c.acquire(clientKey('192.0.2.1'), counts);
  assert.deepEqual(counts, { client: 2, host: 2 });
  c.acquire(clientKey('2001:db8::1'), counts);
  c.acquire(clientKey('2001:db8::2'), counts);
  assert.deepEqual(counts, { client: 2, host: 4 }, 'one /64');
  c.release(a);
  c.release(a);
  assert.equal(c.hostTotal(), 3);
});

/** A connection for the tracker and the gate: its activity is set by the test. */
class FakeConn implements Held {
  bytes = 0;
  destroyed = 0;
  constructor(
    readonly openedAt: number,
    private readonly onDestroy: (c: FakeConn) => void = () => undefined,
  ) {}
  activity(): number {
    return this.bytes;
  }
  destroy(): void {
    this.destroyed++;
    this.onDestroy(this);
  }
}

test('idle tracker: silent since it opened if it never moved a byte; since the last change otherwise; longest silent first', () => {
  const t = new IdleTracker<FakeConn>();
  const quiet = new FakeConn(0);
  const busy = new FakeConn(0);
  busy.bytes = 5;
  const late = new FakeConn(4_000);
  t.sample([quiet, busy, late], 5_000);
  assert.deepEqual(t.silentFor(3_000, 5_000), [quiet], 'busy: silent since the first sample at most');
  busy.bytes = 6;
  t.sample([quiet, busy, late], 9_000);
  assert.deepEqual(t.silentFor(4_000, 9_000), [quiet, late]);
  assert.equal(t.takeLongestSilent(1_000, 9_000), quiet);
  late.bytes = 1; // moved since the sample: not taken
  assert.equal(t.takeLongestSilent(1_000, 9_000), null);
  t.sample([busy], 10_000);
  assert.equal(t.size, 1, 'connections that are gone are forgotten');
});

/** A gate over a local counter and a set of fake connections (the worker's). */
function gate(limits: GateLimits, clock: { now: number }) {
  const held = new Set<FakeConn>();
  const counter = new LocalConnectionCounter();
  const refused: string[] = [];
  const evicted: string[] = [];
  const g = new ConnectionGate(counter, limits, held, { refused: (r) => refused.push(r), evicted: (r) => evicted.push(r) }, silentLogger, () => clock.now);
  /** A new connection from `addr`: held (and counted until destroyed) if the gate admits it. */
  const open = (addr: string): FakeConn | null => {
    const ticket = g.enter(addr);
    if (ticket === null) return null;
    const c = new FakeConn(clock.now, (x) => {
      if (held.delete(x)) g.leave(ticket);
    });
    held.add(c);
    return c;
  };
  return { g, held, counter, refused, evicted, open };
}

test('gate: one client at its cap is refused (client-limit), others are not', (t) => {
  const clock = { now: 1_000_000 };
  const x = gate({ maxConnections: 100, maxConnectionsPerClient: 3, idleTimeoutMs: 3_600_000 }, clock);
  t.after(() => x.g.stop());
  for (let i = 0; i < 3; i++) assert.ok(x.open('198.51.100.1'));
  assert.equal(x.open('198.51.100.1'), null);
  for (let i = 0; i < 3; i++) assert.ok(x.open(`2001:db8:1:1::${i + 1}`));
  assert.equal(x.open('2001:db8:1:1:ffff::9'), null, 'the same /64: one client');
  assert.ok(x.open('2001:db8:1:2::1'), 'the next /64');
  assert.ok(x.open('203.0.113.1'), 'another client');
  assert.deepEqual(x.refused, ['client-limit', 'client-limit']);
  assert.equal(x.counter.hostTotal(), x.held.size, 'a refused connection is not counted');
});

test('gate: at the host\'s cap a new connection closes the longest-silent one (make-room); with none silent, it is refused (host-limit)', (t) => {
  const clock = { now: 1_000_000 };
  const x = gate({ maxConnections: 10, maxConnectionsPerClient: 10, idleTimeoutMs: 3_600_000 }, clock);
  t.after(() => x.g.stop());
  const conns: FakeConn[] = [];
  for (let i = 0; i < 10; i++) {
    conns.push(x.open(`192.0.2.${i + 1}`) as FakeConn);
    clock.now += 100;
  }
  // All busy a moment ago: nobody silent long enough to make room.
  for (const c of conns) c.bytes++;
  clock.now += 10;
  for (const c of conns) c.bytes++;
  assert.equal(x.open('203.0.113.50'), null);
  assert.deepEqual(x.refused, ['host-limit']);
  // The sweep samples them; then one goes quiet while the others keep moving.
  clock.now += MAKE_ROOM_MIN_IDLE_MS;
  (x.g as unknown as { sweep(): void }).sweep();
  clock.now += MAKE_ROOM_MIN_IDLE_MS;
  for (const c of conns) if (c !== conns[4]) c.bytes++;
  (x.g as unknown as { sweep(): void }).sweep();
  clock.now += MAKE_ROOM_MIN_IDLE_MS;
  const newcomer = x.open('203.0.113.51');
  assert.ok(newcomer, 'admitted: room was made');
  assert.equal(conns[4]?.destroyed, 1, 'the silent one was closed');
  assert.ok(conns.every((c, i) => i === 4 || c.destroyed === 0), 'the busy ones were not');
  assert.deepEqual(x.evicted, ['make-room']);
  assert.equal(x.counter.hostTotal(), 10);
});

test('gate: near the cap silent connections are closed after the shortened idle timeout, busy ones stay; below 70% the sweeps stop', (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const clock = { now: 1_000_000 };
  const x = gate({ maxConnections: 10, maxConnectionsPerClient: 10, idleTimeoutMs: 3_600_000 }, clock);
  t.after(() => x.g.stop());
  const conns = Array.from({ length: 10 }, (_, i) => x.open(`192.0.2.${i + 1}`) as FakeConn);
  const tick = (ms: number): void => {
    for (let done = 0; done < ms; done += SWEEP_INTERVAL_MS) {
      clock.now += SWEEP_INTERVAL_MS;
      for (const c of conns.slice(5)) c.bytes++; // the last five keep talking
      t.mock.timers.tick(SWEEP_INTERVAL_MS);
    }
  };
  tick(OVERLOAD_IDLE_FLOOR_MS - 2 * SWEEP_INTERVAL_MS);
  assert.deepEqual(x.evicted, [], 'not yet silent for the floor');
  tick(3 * SWEEP_INTERVAL_MS);
  assert.equal(x.evicted.filter((e) => e === 'idle-overload').length, 5, 'the five silent ones, at the cap: after the floor (10 s), not the hour');
  assert.ok(conns.slice(5).every((c) => c.destroyed === 0));
  assert.ok(conns.slice(0, 5).every((c) => c.destroyed === 1));
  // 5 of 10: below 70%, the overload is over; the busy ones live on, whatever they do.
  tick(3_600_000 / 100);
  assert.equal(x.evicted.length, 5);
});

test('gate: the native core\'s connections are admitted by client key, make room at the cap and are closed by the sweep near it', (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const clock = { now: 1_000_000 };
  const x = gate({ maxConnections: 10, maxConnectionsPerClient: 3, idleTimeoutMs: 3_600_000 }, clock);
  t.after(() => x.g.stop());
  // The core's connections, silent, oldest first: it closes what it is asked to, and each close gives its ticket back.
  const tickets: number[] = [];
  const asked: string[] = [];
  const core: NativeHeld = {
    closeLongestIdle(minIdleMs) {
      asked.push(`longest ${minIdleMs}`);
      const ticket = tickets.shift();
      if (ticket === undefined) return false;
      x.g.leave(ticket);
      return true;
    },
    closeIdle(idleMs) {
      asked.push(`idle ${idleMs}`);
      const closed = tickets.splice(0);
      for (const ticket of closed) x.g.leave(ticket);
      return closed.length;
    },
  };
  x.g.attachNative(core);
  const enter = (addr: string): number | null => x.g.enterKey(clientKey(addr), () => addr);
  for (let i = 0; i < 3; i++) tickets.push(enter('2001:db8:7:7::1') as number);
  assert.equal(enter('2001:db8:7:7:ffff::2'), null, 'the same /64, by key: at its cap');
  assert.deepEqual(x.refused, ['client-limit']);
  for (let i = 0; i < 7; i++) tickets.push(enter(`192.0.2.${i + 1}`) as number);
  assert.equal(x.counter.hostTotal(), 10);
  assert.deepEqual(asked, [], 'below the cap, and at 80% the idle timeout is still whole: nothing asked');
  // At the cap: the core's longest-silent connection makes room.
  const newcomer = enter('203.0.113.9');
  assert.notEqual(newcomer, null);
  tickets.push(newcomer as number);
  assert.deepEqual(asked, [`longest ${MAKE_ROOM_MIN_IDLE_MS}`]);
  assert.deepEqual(x.evicted, ['make-room']);
  // The next sweep, at the cap: the core closes what was silent for the floor.
  clock.now += SWEEP_INTERVAL_MS;
  t.mock.timers.tick(SWEEP_INTERVAL_MS);
  assert.deepEqual(asked.slice(1), [`idle ${OVERLOAD_IDLE_FLOOR_MS}`]);
  assert.equal(x.evicted.filter((e) => e === 'idle-overload').length, 10);
  assert.equal(x.counter.hostTotal(), 0);
});

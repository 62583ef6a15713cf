// SPDX-License-Identifier: MIT
// The one log throttle: a share of lines per interval at their level, the
// rest at debug, and a summary with their count when the interval ends,
// whether or not the flood goes on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LogThrottle } from '../../src/log-throttle';
import { bufferLogger } from './certs/temp-state';

function throttle(perInterval: number) {
  const log = bufferLogger();
  const clock = { now: 1_000 };
  const t = new LogThrottle(log, { level: 'warn', msg: 'event', summaryMsg: 'summary', perInterval, intervalMs: 10_000, now: () => clock.now });
  const at = (level: string, msg: string) => log.lines.filter((l) => l.level === level && l.msg === msg);
  return { log, clock, t, at };
}

test('within an interval: perInterval lines at the level, the rest at debug, none lost', () => {
  const { t, at } = throttle(3);
  for (let i = 0; i < 10; i++) t.note({ i });
  assert.deepEqual(at('warn', 'event').map((l) => l.obj.i), [0, 1, 2]);
  assert.deepEqual(at('debug', 'event').map((l) => l.obj.i), [3, 4, 5, 6, 7, 8, 9]);
  assert.equal(at('warn', 'summary').length, 0, 'no summary before the interval ends');
  t.flush();
});

test('the next interval starts with a summary of the held lines, then a fresh share', () => {
  const { t, at, clock } = throttle(1);
  for (let i = 0; i < 5; i++) t.note({ i });
  clock.now += 10_000;
  t.note({ i: 5 });
  assert.deepEqual(at('warn', 'summary').map((l) => l.obj), [{ count: 4, perInterval: 1, intervalMs: 10_000 }]);
  assert.deepEqual(at('warn', 'event').map((l) => l.obj.i), [0, 5]);
  t.flush();
});

test('a flood that stops still gets its summary when the interval ends (timer)', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { t: th, at, clock } = throttle(2);
  for (let i = 0; i < 7; i++) th.note({ i });
  clock.now += 4_000;
  t.mock.timers.tick(4_000);
  assert.equal(at('warn', 'summary').length, 0);
  t.mock.timers.tick(6_000);
  assert.deepEqual(at('warn', 'summary').map((l) => l.obj.count), [5]);
  // Nothing held: no second summary.
  th.flush();
  assert.equal(at('warn', 'summary').length, 1);
});

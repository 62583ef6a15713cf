// SPDX-License-Identifier: MIT
// Concurrent callers with one key share one run, and its failure; the next
// caller after it settles runs anew.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SingleFlight } from '../../../src/certs/single-flight';

test('concurrent runs for one key share one call; other keys run apart', async () => {
  const sf = new SingleFlight<string>();
  let calls = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const fn = async (): Promise<string> => {
    calls++;
    await gate;
    return `answer${calls}`;
  };
  const same = Array.from({ length: 50 }, () => sf.run('k', fn));
  const other = sf.run('other', fn);
  assert.equal(sf.size, 2);
  release();
  assert.deepEqual(new Set(await Promise.all(same)).size, 1);
  await other;
  assert.equal(calls, 2);
  assert.equal(sf.size, 0, 'nothing kept once settled');
  await sf.run('k', fn);
  assert.equal(calls, 3, 'a later call runs again');
});

test('a failure is shared and then forgotten', async () => {
  const sf = new SingleFlight<number>();
  let calls = 0;
  const failing = async (): Promise<number> => {
    calls++;
    await new Promise((r) => setImmediate(r));
    throw new Error('boom');
  };
  const results = await Promise.allSettled([sf.run('k', failing), sf.run('k', failing)]);
  assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
  assert.equal(calls, 1);
  assert.equal(await sf.run('k', async () => 7), 7);
});

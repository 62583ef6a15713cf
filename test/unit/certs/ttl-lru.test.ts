// SPDX-License-Identifier: MIT
// The negative cache's map: entries expire, and the least recently used go
// first when it is full (its keys are names chosen by attackers).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TtlLru } from '../../../src/certs/ttl-lru';

test('an entry lives for its TTL', () => {
  const c = new TtlLru<string>(10);
  c.set('a', 'x', 1000, 0);
  assert.equal(c.get('a', 999), 'x');
  assert.equal(c.get('a', 1000), undefined);
  assert.equal(c.size, 0, 'an expired entry is dropped when seen');
  c.set('b', 'y', 0, 0);
  assert.equal(c.get('b', 0), undefined, 'TTL 0 keeps nothing');
});

test('bounded: a flood of keys keeps at most maxEntries, evicting the least recently used', () => {
  const c = new TtlLru<number>(3);
  c.set('a', 1, 1000, 0);
  c.set('b', 2, 1000, 0);
  c.set('c', 3, 1000, 0);
  assert.equal(c.get('a', 1), 1, 'a is now the most recently used');
  c.set('d', 4, 1000, 1);
  assert.equal(c.get('b', 2), undefined, 'b was the least recently used');
  assert.equal(c.get('a', 2), 1);
  for (let i = 0; i < 100_000; i++) c.set(`flood${i}`, i, 1000, 3);
  assert.equal(c.size, 3);
  assert.equal(c.get('flood99999', 4), 99_999);
});

// SPDX-License-Identifier: MIT
// The per-destination verdict cache: "does this service speak TLS itself?"
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TlsServiceCache } from '../../../src/agent/tls-services';

test('verdicts expire after the TTL and are revalidated', () => {
  let now = 1000;
  const c = new TlsServiceCache({ ttlMs: 500, now: () => now });
  assert.equal(c.get('10.0.0.2', 443), undefined);
  c.set('10.0.0.2', 443, 'tls');
  c.set('10.0.0.2', 80, 'plain');
  assert.equal(c.get('10.0.0.2', 443), 'tls');
  assert.equal(c.get('10.0.0.2', 80), 'plain');
  assert.equal(c.get('10.0.0.3', 443), undefined, 'per address');
  now += 499;
  assert.equal(c.get('10.0.0.2', 443), 'tls');
  now += 1;
  assert.equal(c.get('10.0.0.2', 443), undefined);
});

test('the cache is bounded: the oldest verdict goes first', () => {
  const c = new TlsServiceCache({ ttlMs: 60_000, maxEntries: 2 });
  c.set('a', 1, 'tls');
  c.set('b', 1, 'tls');
  c.set('c', 1, 'plain');
  assert.equal(c.get('a', 1), undefined);
  assert.equal(c.get('b', 1), 'tls');
  assert.equal(c.get('c', 1), 'plain');
});

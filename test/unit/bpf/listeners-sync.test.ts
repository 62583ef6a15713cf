// SPDX-License-Identifier: MIT
// Which listening sockets become listeners-map entries.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listenerEntries } from '../../../src/bpf/listeners-sync';

test('wildcards, specific addresses, dual-stack and loopback', () => {
  const entries = listenerEntries(
    [
      { addr: '0.0.0.0', port: 80 },
      { addr: '10.0.0.2', port: 5432 },
      { addr: '127.0.0.1', port: 6379 },
      { addr: '127.0.0.53', port: 53 },
    ],
    [
      { addr: '::', port: 443, v6only: false },
      { addr: '::', port: 8443, v6only: true },
      { addr: 'fd00::2', port: 5432, v6only: true },
      { addr: '::1', port: 6379, v6only: true },
      { addr: '::ffff:10.0.0.3', port: 25, v6only: false },
    ],
  );
  const keys = entries.map((e) => `${e.family}|${e.addr ?? '*'}|${e.port}`).sort();
  assert.deepEqual(keys, [
    '4|*|443', // dual-stack [::]:443 also accepts IPv4
    '4|*|80',
    '4|10.0.0.2|5432',
    '4|10.0.0.3|25', // a v4-mapped bind is an IPv4 listener
    '6|*|443',
    '6|*|8443', // v6only: no IPv4 entry
    '6|fd00::2|5432',
  ]);
});

test('duplicates collapse', () => {
  const entries = listenerEntries([{ addr: '0.0.0.0', port: 80 }, { addr: '0.0.0.0', port: 80 }], [{ addr: '::', port: 80, v6only: false }]);
  assert.equal(entries.length, 2);
});

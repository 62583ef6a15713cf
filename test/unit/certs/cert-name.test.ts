// SPDX-License-Identifier: MIT
// Guards name normalisation: SNI is attacker input, and the result becomes a
// certificate name and a directory name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalIp, fileSafeName, nameFromFileSafe, normaliseServername } from '../../../src/certs/cert-name';

test('normaliseServername: valid names, lower-cased, trailing dot dropped', () => {
  const table: [string, string][] = [
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['localhost', 'localhost'],
    ['a-b.c0', 'a-b.c0'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['1.2.3.4', '1.2.3.4'],
    [`${'a'.repeat(63)}.example`, `${'a'.repeat(63)}.example`],
  ];
  for (const [input, want] of table) assert.equal(normaliseServername(input), want, input);
});

test('normaliseServername: invalid names are null', () => {
  const long = `${'a'.repeat(60)}.`.repeat(5).slice(0, 300);
  const table = ['bad name!', 'a..b', long, '', '.', '-a.com', 'a-.com', 'a_b.com', '*.example.com', `${'a'.repeat(64)}.com`, '1.2.3.999', '[::1]', 'exa\u0000mple.com', 'ex\u00e4mple.com'];
  for (const input of table) assert.equal(normaliseServername(input), null, JSON.stringify(input));
});

test('normaliseServername: 253 characters is the limit', () => {
  const label = 'a'.repeat(49);
  const name253 = `${[label, label, label, label, label].join('.')}.abc`;
  assert.equal(name253.length, 253);
  assert.equal(normaliseServername(name253), name253);
  assert.equal(normaliseServername(`${name253}.`), name253);
  assert.equal(normaliseServername(`x${name253}`), null);
});

test('canonicalIp: canonical text for v4 and v6; zone dropped; v4-mapped as v4', () => {
  const table: [string, string | null][] = [
    ['127.0.0.1', '127.0.0.1'],
    ['::1', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['example.com', null],
    ['1.2.3', null],
  ];
  for (const [input, want] of table) assert.equal(canonicalIp(input), want, input);
});

test('fileSafeName round-trips; foreign directory names are rejected', () => {
  for (const name of ['example.com', '127.0.0.1', '2001:db8::1', '::1']) {
    const base = fileSafeName(name);
    assert.ok(!base.includes(':') && !base.includes('/'), base);
    assert.equal(nameFromFileSafe(base), name);
  }
  assert.equal(fileSafeName('2001:db8::1'), '2001_db8__1');
  for (const base of ['Example.com', '..', 'a b', '2001_DB8__1', '2001_0db8__1']) assert.equal(nameFromFileSafe(base), null, base);
});

// SPDX-License-Identifier: MIT
// The port-set grammar: what parses, what it means, and the exact errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PortSet, parsePortSet, resolvePortSet } from '../../../src/config/ports';

test('valid specs parse to canonical ranges', () => {
  const cases: [string, string][] = [
    ['23-65535', '23-65535'],
    ['80', '80'],
    ['80,443', '80,443'],
    [' 443 , 80 ', '80,443'],
    ['8000-8999,80,81,82', '80-82,8000-8999'],
    ['1-10,5-20', '1-20'],
    ['10-20,21-30', '10-30'],
    ['1-65535', '1-65535'],
    ['8080-8080', '8080'],
  ];
  for (const [spec, want] of cases) assert.equal(parsePortSet(spec).toString(), want, spec);
});

test('invalid specs are rejected with a message that says why', () => {
  const cases: [string, RegExp][] = [
    ['', /empty port set/],
    ['0', /port 0 out of range in "0": ports are 1 to 65535/],
    ['65536', /port 65536 out of range/],
    ['70000-80000', /port 70000 out of range/],
    ['9000-8000', /range "9000-8000" in "9000-8000" runs backwards: write 8000-9000/],
    ['80,,443', /empty item in port set "80,,443"/],
    ['http', /invalid port "http" in "http": expected a number from 1 to 65535/],
    ['-5', /invalid port "" in "-5"/],
    ['1-2-3', /invalid port "2-3"/],
    ['123456', /invalid port "123456"/],
    ['8o', /invalid port "8o"/],
  ];
  for (const [spec, msg] of cases) {
    assert.throws(() => parsePortSet(spec), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'JFE_ERR_PORTS_INVALID');
      assert.match(err.message, msg);
      return true;
    }, spec);
  }
});

test('exclusions are subtracted; an empty result is an error', () => {
  assert.equal(resolvePortSet('23-65535', '25,8080').toString(), '23-24,26-8079,8081-65535');
  assert.equal(resolvePortSet('80-90', '80-85,90').toString(), '86-89');
  assert.equal(resolvePortSet('80', '').toString(), '80');
  assert.throws(() => resolvePortSet('80-81', '80,81'), /leaves no port to steer/);
});

test('the bitmap round-trips and has the bits the BPF program reads', () => {
  const set = parsePortSet('23-65535').minus(parsePortSet('25,8080'));
  const bitmap = set.toBitmap();
  assert.equal(bitmap.length, 8192);
  const bit = (p: number): number => {
    const words = new BigUint64Array(Uint8Array.from(bitmap).buffer);
    return Number(((words[p >> 6] ?? 0n) >> BigInt(p & 63)) & 1n);
  };
  assert.deepEqual([22, 23, 24, 25, 26, 8079, 8080, 8081, 65535].map(bit), [0, 1, 1, 0, 1, 1, 0, 1, 1]);
  assert.ok(PortSet.fromBitmap(bitmap).equals(set));
  assert.equal(set.size, 65535 - 22 - 2);
  assert.equal(set.has(8080), false);
  assert.equal(set.has(443), true);
});

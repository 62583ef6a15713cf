// SPDX-License-Identifier: MIT
// Address text to map-key bytes and back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesToIp, ipToBytes } from '../../../src/bpf/ip-bytes';

test('IPv4 and IPv6 addresses become network-order bytes', () => {
  const cases: [string, 4 | 6, string][] = [
    ['10.77.0.2', 4, '0a4d0002'],
    ['0.0.0.0', 4, '00000000'],
    ['255.255.255.255', 4, 'ffffffff'],
    ['::', 6, '00000000000000000000000000000000'],
    ['::1', 6, '00000000000000000000000000000001'],
    ['fd77::2', 6, 'fd770000000000000000000000000002'],
    ['2001:db8:0:0:1:0:0:1', 6, '20010db8000000000001000000000001'],
    ['2001:db8::1:0:0:1', 6, '20010db8000000000001000000000001'],
    ['::ffff:192.0.2.1', 6, '00000000000000000000ffffc0000201'],
    ['64:ff9b::192.0.2.1', 6, '0064ff9b0000000000000000c0000201'],
    ['::192.0.2.1', 6, '000000000000000000000000c0000201'],
    ['fe80::1%eth0', 6, 'fe800000000000000000000000000001'],
    ['1:2:3:4:5:6:7:8', 6, '00010002000300040005000600070008'],
  ];
  for (const [text, family, hex] of cases) {
    const r = ipToBytes(text);
    assert.ok(r, text);
    assert.equal(r.family, family, text);
    assert.equal(r.bytes.toString('hex'), hex, text);
  }
});

test('non-addresses are null', () => {
  for (const bad of ['', 'localhost', '1.2.3', '1.2.3.256', ':::', '1::2::3', '12345::']) assert.equal(ipToBytes(bad), null, bad);
});

test('bytes print as Node prints addresses', () => {
  for (const text of ['10.77.0.2', '::', '::1', 'fd77::2', '2001:db8::1:0:0:1', '1:2:3:4:5:6:7:8', 'fe80::']) {
    const r = ipToBytes(text);
    assert.ok(r);
    assert.equal(bytesToIp(r.family, r.bytes), text);
  }
});

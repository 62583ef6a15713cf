// SPDX-License-Identifier: MIT
// What counts as one client for the shared limits: an IPv4 address, or an
// IPv6 /64, from any text form Node prints; junk is no key at all.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientKey, clientKeyText } from '../../src/client-key';

const text = (a: string): string | null => {
  const k = clientKey(a);
  return k === null ? null : clientKeyText(k);
};

test('IPv4: the address itself; a v4-mapped IPv6 address is that IPv4 client', () => {
  assert.equal(text('192.0.2.7'), '192.0.2.7');
  assert.equal(text('255.255.255.255'), '255.255.255.255');
  assert.equal(text('0.0.0.0'), '0.0.0.0');
  assert.equal(text('::ffff:198.51.100.1'), '198.51.100.1');
  assert.deepEqual(clientKey('10.1.2.3'), { family: 4, hi: 0x0a010203, lo: 0 });
});

test('IPv6: every address of a /64 is one client, whatever its text form', () => {
  const same = ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0db8:0001:0002:0:0:0:9', '2001:DB8:1:2::a%eth0', '2001:db8:1:2:3:4:192.0.2.1'];
  for (const a of same) assert.equal(text(a), '2001:db8:1:2::/64', a);
  assert.equal(text('2001:db8:1:3::1'), '2001:db8:1:3::/64', 'the next /64 is another client');
  assert.equal(text('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(text('::1'), '0:0:0:0::/64');
  assert.equal(text('1:2:3:4:5:6:7::'), '1:2:3:4::/64');
  assert.equal(text('::2:3:4:5:6:7:8'), '0:2:3:4::/64');
  assert.equal(text('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
  assert.deepEqual(clientKey('2001:db8:abcd:12::1'), { family: 6, hi: 0x20010db8, lo: 0xabcd0012 });
});

test('not an address: no key', () => {
  for (const a of ['', 'example.com', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '1:2', '1::2::3', '1:2:3:4:5:6:7:8:9', 'g::1', '12345::1', '::1.2.3.999', '1:2:3:4:5:6:7:8::']) {
    assert.equal(clientKey(a), null, a);
  }
});

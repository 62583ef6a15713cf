// SPDX-License-Identifier: MIT
// What data-plane.ts reads from the core's records without a string per
// connection: the admission key of a client address (as client-key.ts makes it
// from the text), and the text of an address (as Node prints it).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { addressText, keyOfAddress } from '../../../src/agent/data-plane';
import { clientKey } from '../../../src/client-key';

/** Addresses with runs of zero groups (where the text form compresses) and random ones. */
function v6Samples(): Buffer[] {
  const out: Buffer[] = [Buffer.alloc(16), Buffer.from('20010db8000000000001000000000001', 'hex'), Buffer.from('00000000000000000000ffff01020304', 'hex'), Buffer.from('fe800000000000000000000000000001', 'hex'), Buffer.from('000000000000000000000000eb4c1962', 'hex'), Buffer.from('00000000000000000000ffff00000000', 'hex'), Buffer.from('00000000000000000000000000000100', 'hex')];
  for (let i = 0; i < 500; i++) {
    const b = randomBytes(16);
    // Zero a random run of groups.
    const at = (b[0] as number) % 8;
    const len = (b[1] as number) % (9 - at);
    b.fill(0, at * 2, (at + len) * 2);
    out.push(b);
  }
  return out;
}

test('addressText: IPv4 dotted, IPv6 as Node prints it (RFC 5952)', () => {
  for (let i = 0; i < 200; i++) {
    const b = randomBytes(16);
    assert.equal(addressText(4, b), new net.SocketAddress({ address: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`, family: 'ipv4' }).address);
  }
  for (const b of v6Samples()) {
    const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':');
    assert.equal(addressText(6, b), new net.SocketAddress({ address: groups, family: 'ipv6' }).address, b.toString('hex'));
  }
});

test('keyOfAddress: the key clientKey() makes from the same address\'s text (IPv4 address, IPv6 /64)', () => {
  const out = { family: 4 as 4 | 6, hi: 0, lo: 0 };
  for (let i = 0; i < 200; i++) {
    const b = randomBytes(16);
    const view = new DataView(b.buffer, b.byteOffset, 16);
    assert.deepEqual({ ...keyOfAddress(4, view, 0, out) }, clientKey(addressText(4, b)));
  }
  for (const b of v6Samples()) {
    if (b.subarray(0, 12).equals(Buffer.from('00000000000000000000ffff', 'hex'))) continue; // a v6-only listener never sees a mapped address
    const view = new DataView(b.buffer, b.byteOffset, 16);
    assert.deepEqual({ ...keyOfAddress(6, view, 0, out) }, clientKey(addressText(6, b)), b.toString('hex'));
  }
});

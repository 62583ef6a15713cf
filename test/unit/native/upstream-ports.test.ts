// SPDX-License-Identifier: MIT
// The upstream socket's source port from a range (native/src/tcp.cc
// OpenUpstream): every port inside it, none twice while held, a listener's
// port skipped, a full range an EADDRINUSE after a bounded search, explicit
// binds inside the ephemeral range too.
import assert from 'node:assert/strict';
import { closeSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { native } from '../../../src/native';

const n = native();

function ephemeral(): [number, number] {
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  return [lo ?? 32768, hi ?? 60999];
}

function reserved(port: number): boolean {
  const spec = readFileSync('/proc/sys/net/ipv4/ip_local_reserved_ports', 'utf8').trim();
  return spec !== '' && spec.split(',').some((r) => {
    const [a, b] = r.split('-').map(Number);
    return port >= (a ?? 0) && port <= (b ?? a ?? 0);
  });
}

/** A range of 10 ports outside the ephemeral range, none reserved, none bound on 127.0.0.1 (probed). */
function freeRange(below: number): number {
  for (let lo = below - 10; lo > 1024; lo -= 10) {
    let free = true;
    for (let p = lo; p < lo + 10 && free; p++) free = !reserved(p);
    if (!free) continue;
    const fds: number[] = [];
    try {
      for (let p = lo; p < lo + 10; p++) fds.push(n.upstreamSocket(4, '127.0.0.1', 0, false, p, p).fd);
      return lo;
    } catch {
      // taken: another 10
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  }
  throw new Error('no 10 free ports');
}

test('every port inside the range, none twice, then EADDRINUSE; found by explicit binds outside the ephemeral range', () => {
  const [eph] = ephemeral();
  const lo = freeRange(eph);
  const fds: number[] = [];
  try {
    const ports = new Set<number>();
    for (let i = 0; i < 10; i++) {
      const s = n.upstreamSocket(4, '127.0.0.1', 0, false, lo, lo + 9);
      fds.push(s.fd);
      ports.add(s.port);
    }
    assert.deepEqual([...ports].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => lo + i));
    assert.throws(() => n.upstreamSocket(4, '127.0.0.1', 0, false, lo, lo + 9), { code: 'EADDRINUSE' });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
});

test('a port something listens on (wildcard) is skipped by the kernel\'s bind rules', async () => {
  const [eph] = ephemeral();
  const lo = freeRange(eph);
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(lo + 4, '0.0.0.0', resolve));
  const fds: number[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < 9; i++) {
      const s = n.upstreamSocket(4, '127.0.0.1', 0, false, lo, lo + 9);
      fds.push(s.fd);
      ports.push(s.port);
    }
    assert.ok(!ports.includes(lo + 4));
    assert.throws(() => n.upstreamSocket(4, '127.0.0.1', 0, false, lo, lo + 9), { code: 'EADDRINUSE' });
  } finally {
    for (const fd of fds) closeSync(fd);
    server.close();
  }
});

test('inside the ephemeral range too, explicit binds (the kernel\'s choice never takes a port held only by a TIME_WAIT)', () => {
  const [eph, ephHi] = ephemeral();
  const lo = eph + 1000 <= ephHi ? eph + 1000 : eph;
  const hi = Math.min(lo + 999, ephHi);
  const fds: number[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < 20; i++) {
      const s = n.upstreamSocket(4, '127.0.0.1', 0, false, lo, hi);
      fds.push(s.fd);
      assert.ok(s.port >= lo && s.port <= hi, `${s.port} in ${lo}-${hi}`);
      ports.push(s.port);
    }
    assert.equal(new Set(ports).size, 20, 'none twice while held');
  } finally {
    for (const fd of fds) closeSync(fd);
  }
});

test('IPv6 too, and no range: the kernel\'s ephemeral choice as before', () => {
  const [eph, ephHi] = ephemeral();
  const s6 = n.upstreamSocket(6, '::1', 0, false, 20000, 20999);
  const any = n.upstreamSocket(4, '127.0.0.1', 0, false);
  try {
    assert.ok(s6.port >= 20000 && s6.port <= 20999);
    assert.ok(any.port >= eph && any.port <= ephHi);
  } finally {
    closeSync(s6.fd);
    closeSync(any.fd);
  }
});

test('a range that is not one is refused at the boundary', () => {
  assert.throws(() => n.upstreamSocket(4, '127.0.0.1', 0, false, 3000, 2000), RangeError);
  assert.throws(() => n.upstreamSocket(4, '127.0.0.1', 0, false, 0, 2000), RangeError);
});

// SPDX-License-Identifier: MIT
// The connection counts the workers share (native/src/conn_table.cc through
// daemon/conn-table.ts): counts add up over workers (columns) per client and
// for the host; a worker that is killed while it holds connections stops
// counting once the primary zeroes its column; a client that finds no slot
// is still counted in the host's total.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { test } from 'node:test';
import type { ConnectionCounts } from '../../../src/agent/admission';
import { clientKey } from '../../../src/client-key';
import { CONN_COLUMN_ENV, CONN_TABLE_FD_ENV, HostConnectionTable, WORKER_TABLE_FD, type WorkerShare, openWorkerCounter, tableColumns, tableEntries } from '../../../src/daemon/conn-table';
import { native } from '../../../src/native';
import fs from 'node:fs';

const key = (a: string) => clientKey(a);

/** A worker's counter in this process, over a column of `host` (as a forked worker would open it). */
function workerIn(host: HostConnectionTable) {
  const share = host.forWorker();
  assert.ok(share);
  return { counter: counterFor(share), share };
}

function counterFor(share: WorkerShare) {
  const counter = openWorkerCounter({ ...share.env, [CONN_TABLE_FD_ENV]: String(dupFd(share.fd)) });
  assert.ok(counter);
  return counter;
}

/** A copy of the block's fd (openWorkerCounter closes the one it is given, as a worker does). */
function dupFd(fd: number): number {
  return fs.openSync(`/proc/self/fd/${fd}`, 'r+');
}

test('sizes: entries a power of two at least twice the cap (bounded), columns for two generations twice over', () => {
  assert.equal(tableEntries(1), 1024);
  assert.equal(tableEntries(20_000), 65_536);
  assert.equal(tableEntries(10_000_000), 1 << 22);
  assert.equal(tableColumns(2), 8);
  assert.equal(tableColumns(16), 64);
  assert.equal(tableColumns(64), 256);
});

test('counts add up over workers: per client (an IPv4 address, an IPv6 /64) and for the host', () => {
  const host = HostConnectionTable.create(1000, 2);
  const a = workerIn(host);
  const b = workerIn(host);
  const c: ConnectionCounts = { client: 0, host: 0 };
  const t1 = a.counter.acquire(key('192.0.2.1'), c);
  assert.deepEqual(c, { client: 1, host: 1 });
  const t2 = b.counter.acquire(key('192.0.2.1'), c);
  assert.deepEqual(c, { client: 2, host: 2 }, 'the same client on another worker');
  b.counter.acquire(key('192.0.2.2'), c);
  assert.deepEqual(c, { client: 1, host: 3 }, 'another client');
  a.counter.acquire(key('2001:db8:1:2::1'), c);
  b.counter.acquire(key('2001:db8:1:2::ffff'), c);
  assert.deepEqual(c, { client: 2, host: 5 }, 'one /64, two workers');
  a.counter.release(t1);
  b.counter.release(t2);
  assert.equal(host.hostTotal(), 3);
  a.counter.acquire(key('192.0.2.1'), c);
  assert.deepEqual(c, { client: 1, host: 4 });
});

test('a worker killed while it holds connections: its counts go when the primary zeroes its column', async (t) => {
  const host = HostConnectionTable.create(1000, 1);
  const me = workerIn(host);
  const share = host.forWorker();
  assert.ok(share);
  const modulePath = path.join(__dirname, '..', '..', '..', 'src', 'daemon', 'conn-table.js');
  const keyPath = path.join(__dirname, '..', '..', '..', 'src', 'client-key.js');
  const code = `
    const { openWorkerCounter } = require(${JSON.stringify(modulePath)});
    const { clientKey } = require(${JSON.stringify(keyPath)});
    const counter = openWorkerCounter(process.env);
    const c = { client: 0, host: 0 };
    for (let i = 0; i < 7; i++) counter.acquire(clientKey('198.51.100.7'), c);
    process.send(c);
    setInterval(() => undefined, 1000);`;
  const child: ChildProcess = spawn(process.execPath, ['-e', code], {
    env: { ...process.env, ...share.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc', share.fd],
  });
  t.after(() => child.kill('SIGKILL'));
  assert.equal(share.env[CONN_TABLE_FD_ENV], String(WORKER_TABLE_FD));
  assert.ok(share.env[CONN_COLUMN_ENV] !== undefined);
  const [fromChild] = (await once(child, 'message')) as [ConnectionCounts];
  assert.deepEqual(fromChild, { client: 7, host: 7 });
  const c: ConnectionCounts = { client: 0, host: 0 };
  const mine = me.counter.acquire(key('198.51.100.7'), c);
  assert.deepEqual(c, { client: 8, host: 8 }, 'the other process\'s connections count here');
  me.counter.release(mine);
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal(host.hostTotal(), 7, 'a dead worker still counts until its column is zeroed');
  share.exited();
  assert.equal(host.hostTotal(), 0);
  me.counter.acquire(key('198.51.100.7'), c);
  assert.deepEqual(c, { client: 1, host: 1 }, 'nothing of the dead worker left');
});

test('columns run out: null (the pool then lets the worker count alone); a freed column is given again, zeroed', () => {
  const host = HostConnectionTable.create(100, 1);
  const shares = Array.from({ length: tableColumns(1) }, () => host.forWorker());
  assert.ok(shares.every((s) => s !== null));
  assert.equal(host.forWorker(), null);
  const dead = shares[3] as WorkerShare;
  const c: ConnectionCounts = { client: 0, host: 0 };
  for (let i = 0; i < 5; i++) counterFor(dead).acquire(key('192.0.2.9'), c);
  assert.equal(host.hostTotal(), 5);
  dead.exited();
  dead.exited(); // twice: no double free
  const again = host.forWorker();
  assert.ok(again);
  assert.equal(again.env[CONN_COLUMN_ENV], dead.env[CONN_COLUMN_ENV], 'the freed column');
  assert.equal(host.hostTotal(), 0, 'given again with nothing of its last worker');
  counterFor(again).acquire(key('192.0.2.9'), c);
  assert.deepEqual(c, { client: 1, host: 1 });
  assert.equal(host.forWorker(), null);
});

test('clients that find no free slot near their place are still counted for the host, and released exactly', () => {
  const host = HostConnectionTable.create(1, 1); // 1024 entries per column
  const w = workerIn(host);
  const c: ConnectionCounts = { client: 0, host: 0 };
  const tickets: number[] = [];
  for (let i = 0; i < 3000; i++) tickets.push(w.counter.acquire(key(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`), c));
  assert.equal(c.host, 3000);
  assert.ok(tickets.some((t) => t === -1), 'some clients were not counted apart');
  assert.ok(tickets.filter((t) => t >= 0).length >= 1000, 'most slots were used');
  for (const t of tickets) w.counter.release(t);
  assert.equal(host.hostTotal(), 0);
  w.counter.acquire(key('10.0.0.1'), c);
  assert.deepEqual(c, { client: 1, host: 1 });
});

test('bad arguments are refused before anything is mapped', () => {
  const n = native();
  assert.throws(() => n.connTableCreate(0, 1024), RangeError);
  assert.throws(() => n.connTableCreate(4, 1000), RangeError);
  assert.throws(() => new n.ConnTable(0, 0, new Uint32Array(2)), /connection table|fstat/);
  const fd = n.connTableCreate(2, 1024);
  assert.throws(() => new n.ConnTable(fd, 2, new Uint32Array(2)), RangeError);
  assert.throws(() => new n.ConnTable(fd, 0, new Uint32Array(1)), TypeError);
  const view = new n.ConnTable(fd, -1, new Uint32Array(2));
  assert.throws(() => view.acquire(4, 1, 0), /the primary holds no connections/);
  const w = new n.ConnTable(fd, 1, new Uint32Array(2));
  assert.throws(() => w.release(1 << 20), RangeError);
  w.close();
  assert.throws(() => w.hostTotal(), /closed/);
  fs.closeSync(fd);
});

// SPDX-License-Identifier: MIT
// The host-wide disk cap's lock and count: claims up to the cap and not one
// more, a lock or a claim left by a process that died does not block for
// ever, and a full directory is counted again after a while.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DiskSlots, FULL_RECHECK_MS } from '../../../src/certs/disk-slots';
import { TEMP_MARKER } from '../../../src/certs/state-dir';
import { tempDir } from './temp-state';

test('claims up to the cap, counted on disk; a name already there is "exists", not a new slot', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'old.example'));
  const slots = new DiskSlots(3);
  assert.equal(await slots.claim(dir, path.join(dir, 'a.example')), 'claimed');
  assert.equal(await slots.claim(dir, path.join(dir, 'old.example')), 'exists');
  assert.equal(await slots.claim(dir, path.join(dir, 'b.example')), 'claimed');
  assert.equal(await slots.claim(dir, path.join(dir, 'c.example')), 'full');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['a.example', 'b.example', 'old.example'], 'no lock left behind');
});

test('many claimers at once (other processes count the same way): never past the cap', async (t) => {
  const dir = tempDir(t);
  const claimers = Array.from({ length: 4 }, () => new DiskSlots(10));
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => claimers[i % 4]!.claim(dir, path.join(dir, `n${i}.example`))));
  assert.equal(results.filter((r) => r === 'claimed').length, 10);
  assert.equal(fs.readdirSync(dir).length, 10);
});

test('a released claim frees its slot', async (t) => {
  const dir = tempDir(t);
  const slots = new DiskSlots(1);
  const a = path.join(dir, 'a.example');
  assert.equal(await slots.claim(dir, a), 'claimed');
  await slots.release(a);
  assert.equal(await new DiskSlots(1).claim(dir, path.join(dir, 'b.example')), 'claimed');
});

test('a lock left by a process that died is broken after a while; a fresh one is waited for', async (t) => {
  const dir = tempDir(t);
  const lock = path.join(dir, `.claim${TEMP_MARKER}lock`);
  fs.mkdirSync(lock);
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(lock, old, old);
  assert.equal(await new DiskSlots(5).claim(dir, path.join(dir, 'a.example')), 'claimed');
  // A live holder: the claim waits for its release.
  fs.mkdirSync(lock);
  setTimeout(() => fs.rmdirSync(lock), 50);
  assert.equal(await new DiskSlots(5).claim(dir, path.join(dir, 'b.example')), 'claimed');
});

test('a full directory is not counted again for a while, then is (an operator removed leaves)', async (t) => {
  const dir = tempDir(t);
  const clock = { now: 0 };
  const slots = new DiskSlots(1, () => clock.now);
  assert.equal(await slots.claim(dir, path.join(dir, 'a.example')), 'claimed');
  assert.equal(await slots.claim(dir, path.join(dir, 'b.example')), 'full');
  fs.rmdirSync(path.join(dir, 'a.example'));
  assert.equal(await slots.claim(dir, path.join(dir, 'b.example')), 'full', 'still remembered as full');
  clock.now += FULL_RECHECK_MS;
  assert.equal(await slots.claim(dir, path.join(dir, 'b.example')), 'claimed');
});

// SPDX-License-Identifier: MIT
// Runs the root integration tests one file at a time, then checks that each
// file left nothing behind (namespaces, bpffs mounts, temp dirs), removing
// and failing on any leak.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TEST_PREFIX, leakedNetns } from '../test/helpers/netns';

const DIR = path.resolve(__dirname, '..', 'test', 'integration');

// Everything a test process creates is named jfe-t-<its pid>-…, so runs side by side are told apart.
function leakedMounts(prefix: string): string[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.includes(`/${prefix}`))
    .reverse();
}

function leakedDirs(prefix: string): string[] {
  return fs.readdirSync('/run').filter((f) => f.startsWith(prefix)).map((f) => path.join('/run', f));
}

function checkLeaks(file: string, pid: number): string[] {
  const prefix = `${TEST_PREFIX}${pid}-`;
  const netns = leakedNetns().filter((n) => n.startsWith(prefix));
  const leaks = [...netns.map((n) => `netns ${n}`), ...leakedMounts(prefix).map((m) => `mount ${m}`), ...leakedDirs(prefix).map((d) => `dir ${d}`)];
  // Clean up so that one leak does not fail every later file too.
  for (const m of leakedMounts(prefix)) spawnSync('umount', ['-l', m]);
  for (const n of netns) spawnSync('ip', ['netns', 'del', n]);
  for (const d of leakedDirs(prefix)) fs.rmSync(d, { recursive: true, force: true });
  return leaks.map((l) => `${path.basename(file)} leaked ${l}`);
}

function main(): number {
  const only = process.argv.slice(2);
  const files = fs
    .readdirSync(DIR)
    .filter((f) => f.endsWith('.test.js'))
    .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
    .sort()
    .map((f) => path.join(DIR, f));
  const failed: string[] = [];
  const leaks: string[] = [];
  const root = process.getuid?.() === 0;
  for (const file of files) {
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=900000', file], { stdio: 'inherit' });
    if (r.status !== 0) failed.push(path.basename(file));
    if (root && r.pid !== undefined) leaks.push(...checkLeaks(file, r.pid));
  }
  for (const l of leaks) process.stderr.write(`LEAK: ${l}\n`);
  if (failed.length > 0) process.stderr.write(`FAILED: ${failed.join(', ')}\n`);
  process.stdout.write(`integration: ${files.length - failed.length}/${files.length} files passed, ${leaks.length} leaks\n`);
  return failed.length > 0 || leaks.length > 0 ? 1 : 0;
}

process.exitCode = main();

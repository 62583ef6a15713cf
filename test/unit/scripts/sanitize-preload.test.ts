// SPDX-License-Identifier: MIT
// npm run test:sanitize's hook (test/helpers/sanitize-preload.ts, loaded into
// every Node process through NODE_OPTIONS) passes the preloaded runtime on to
// children that run Node, directly or through a wrapper, asynchronously or
// not, and to no other program. A harmless library stands in for libasan.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { run } from '../../helpers/spawn';

const HOOK = path.resolve(__dirname, '..', '..', 'helpers', 'sanitize-preload.js');
const LIB = '/lib/x86_64-linux-gnu/libc.so.6';

// Runs in a process with the hook; prints what each child had in its environment at exec.
const PARENT = `
const cp = require('child_process');
const atExec = "require('fs').readFileSync('/proc/self/environ','latin1').split('\\\\0').find((v) => v.startsWith('LD_PRELOAD=')) ?? 'none'";
const out = {};
out.self = process.env.LD_PRELOAD ?? 'none';
out.shSync = cp.spawnSync('sh', ['-c', 'echo "\${LD_PRELOAD:-none}"'], { encoding: 'utf8' }).stdout.trim();
out.nodeSync = cp.spawnSync(process.execPath, ['-p', atExec], { encoding: 'utf8' }).stdout.trim();
out.wrappedSync = cp.spawnSync('env', [process.execPath, '-p', atExec], { encoding: 'utf8' }).stdout.trim();
const a = cp.spawn(process.execPath, ['-p', atExec]);
let s = '';
a.stdout.on('data', (d) => (s += d));
a.on('close', () => {
  out.nodeAsync = s.trim();
  const b = cp.fork('-', [], { execArgv: ['-p', atExec], stdio: ['pipe', 'pipe', 'inherit', 'ipc'] });
  let f = '';
  b.stdout.on('data', (d) => (f += d));
  b.stdin.end();
  b.on('close', () => {
    out.fork = f.trim();
    const c = cp.spawn('sh', ['-c', 'echo "\${LD_PRELOAD:-none}"']);
    let g = '';
    c.stdout.on('data', (d) => (g += d));
    c.on('close', () => { out.shAsync = g.trim(); console.log(JSON.stringify(out)); });
  });
});
`;

test('the preloaded library reaches Node children (spawn, fork, spawnSync, through a wrapper) and no other program', async () => {
  const r = await run(process.execPath, ['-e', PARENT], { env: { LD_PRELOAD: LIB, JFESANITIZE_PRELOAD: LIB, NODE_OPTIONS: `--require ${HOOK}` } });
  assert.equal(r.status, 0, r.stderr);
  const want = `LD_PRELOAD=${LIB}`;
  assert.deepEqual(JSON.parse(r.stdout), { self: 'none', shSync: 'none', nodeSync: want, wrappedSync: want, nodeAsync: want, fork: want, shAsync: 'none' });
});

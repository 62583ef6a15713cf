// SPDX-License-Identifier: MIT
// Serializes jfe-bpf runs on one namespace: attach, detach and the agent's
// startup take an exclusive flock on <run-dir>/<netns-inode>/lock.
import fs from 'node:fs';
import path from 'node:path';
import { JfeError } from '../errors';
import { native } from '../native';

const WAIT_MS = 10_000;
const POLL_MS = 50;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function runDirFor(runDir: string, netnsIno: number): string {
  return path.join(runDir, String(netnsIno));
}

export function withLock<T>(runDir: string, netnsIno: number, fn: () => T): T {
  const dir = runDirFor(runDir, netnsIno);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lockPath = path.join(dir, 'lock');
  const fd = fs.openSync(lockPath, 'a', 0o600);
  try {
    const deadline = Date.now() + WAIT_MS;
    while (!native().flock(fd)) {
      if (Date.now() > deadline) {
        throw new JfeError('JFE_ERR_BPF_LOCKED', `another jfe-bpf holds ${lockPath} for more than ${WAIT_MS / 1000} s`);
      }
      sleepSync(POLL_MS);
    }
    return fn();
  } finally {
    fs.closeSync(fd);
  }
}

// SPDX-License-Identifier: MIT
// Serializes takeovers in a namespace: a starting `jfe run` and an in-place
// reload hold an exclusive flock on <run-dir>/<netns-inode>/takeover.lock from
// before they read who is running until they have told the old agent to
// drain, so two simultaneous starts queue up (the later one then takes over
// from the earlier) instead of interleaving their sockets in the slots.
import fs from 'node:fs';
import path from 'node:path';
import { runDirFor } from '../bpf/lock';
import { JfeError } from '../errors';
import { native } from '../native';

const POLL_MS = 50;

export async function acquireTakeoverLock(runDir: string, netnsIno: number, waitMs: number): Promise<() => void> {
  const dir = runDirFor(runDir, netnsIno);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lockPath = path.join(dir, 'takeover.lock');
  const fd = fs.openSync(lockPath, 'a', 0o600);
  const deadline = Date.now() + waitMs;
  try {
    while (!native().flock(fd)) {
      if (Date.now() > deadline) {
        throw new JfeError('JFE_ERR_TAKEOVER', `another jfe is starting or reloading (it holds ${lockPath}) for more than ${waitMs / 1000} s`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  let held = true;
  return () => {
    if (held) fs.closeSync(fd);
    held = false;
  };
}

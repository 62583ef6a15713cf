// SPDX-License-Identifier: MIT
// bpffs under the pin directory: detect it, and mount it when missing (it is
// not mounted by default on the machines we run on; see DESIGN.md).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { JfeError } from '../errors';
import type { Logger } from '../log';

const BPF_FS_MAGIC = 0xcafe4a11;
const SYS_FS_BPF = '/sys/fs/bpf';

function nearestExisting(p: string): string {
  let cur = path.resolve(p);
  while (!fs.existsSync(cur)) cur = path.dirname(cur);
  return cur;
}

export function isBpffs(p: string): boolean {
  return fs.statfsSync(nearestExisting(p)).type === BPF_FS_MAGIC;
}

/**
 * Makes pinDir a directory on bpffs. Mounts bpffs at /sys/fs/bpf for pin
 * directories below it, else at the pin directory itself.
 */
export function ensureBpffs(pinDir: string, log: Logger): void {
  const dir = path.resolve(pinDir);
  if (!isBpffs(dir)) {
    const target = dir === SYS_FS_BPF || dir.startsWith(SYS_FS_BPF + '/') ? SYS_FS_BPF : dir;
    fs.mkdirSync(target, { recursive: true, mode: 0o700 });
    const r = spawnSync('mount', ['-t', 'bpf', 'bpf', target], { encoding: 'utf8' });
    if (r.error || r.status !== 0) {
      const why = r.error?.message ?? r.stderr.trim();
      throw new JfeError('JFE_ERR_BPFFS', `bpffs not mounted at ${target} and mounting it failed (${why}): run as root, or "mount -t bpf bpf ${target}"`);
    }
    log.info({ target }, 'mounted bpffs');
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
}

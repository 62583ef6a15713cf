// SPDX-License-Identifier: MIT
// Network namespaces by path: open one, read its inode (pins are keyed by
// it), and run a command inside it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { JfeError, isSystemError } from '../errors';

const NSFS_MAGIC = 0x6e736673;
export const CURRENT_NETNS = '/proc/self/ns/net';

export interface Netns {
  path: string;
  fd: number;
  ino: number;
  /** True when this is the namespace jfe itself runs in. */
  current: boolean;
}

export function openNetns(nsPath: string | undefined): Netns {
  const p = nsPath ?? CURRENT_NETNS;
  let fd: number;
  try {
    fd = fs.openSync(p, 'r');
  } catch (cause) {
    if (isSystemError(cause, 'ENOENT')) {
      throw new JfeError('JFE_ERR_NETNS_NOT_FOUND', `no network namespace at ${p}`, { cause });
    }
    throw new JfeError('JFE_ERR_NETNS_NOT_FOUND', `cannot open network namespace ${p}: ${(cause as Error).message}`, { cause });
  }
  if (fs.statfsSync(p).type !== NSFS_MAGIC) {
    fs.closeSync(fd);
    throw new JfeError('JFE_ERR_NETNS_NOT_FOUND', `${p} is not a network namespace (expected a file like /proc/<pid>/ns/net or /run/netns/<name>)`);
  }
  const ino = fs.fstatSync(fd).ino;
  const current = ino === fs.statSync(CURRENT_NETNS).ino;
  return { path: p, fd, ino, current };
}

export function closeNetns(ns: Netns): void {
  fs.closeSync(ns.fd);
}

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs argv inside the namespace (through nsenter unless it is our own). */
export function runInNetns(ns: Pick<Netns, 'path' | 'current'>, argv: string[]): CommandResult {
  const [cmd, args] = ns.current ? [argv[0] ?? '', argv.slice(1)] : ['nsenter', [`--net=${ns.path}`, ...argv]];
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) {
    throw new JfeError('JFE_ERR_ROUTING', `cannot run ${cmd}: ${r.error.message}`, { cause: r.error });
  }
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr.trim() };
}

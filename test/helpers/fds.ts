// SPDX-License-Identifier: MIT
// A process's open file descriptors, from /proc/<pid>/fd: how many, and what
// each one is (readlink), for a failure message that says which ones leaked.
import fs from 'node:fs';

export interface OpenFd {
  fd: number;
  /** The link's target: a path, "socket:[inode]", "pipe:[inode]", "anon_inode:[eventpoll]"… ("?" if it closed meanwhile). */
  target: string;
}

/** Every open fd of `pid`, in order. */
export function listFds(pid: number): OpenFd[] {
  const dir = `/proc/${pid}/fd`;
  return fs
    .readdirSync(dir)
    .map(Number)
    .sort((a, b) => a - b)
    .map((fd) => {
      try {
        return { fd, target: fs.readlinkSync(`${dir}/${fd}`) };
      } catch {
        return { fd, target: '?' };
      }
    });
}

export function countFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** "socket" for "socket:[123]", "anon_inode:[eventpoll]" kept whole, a path kept whole. */
function kind(target: string): string {
  return target.replace(/^(socket|pipe):\[\d+\]$/, '$1');
}

/** Counts by kind, e.g. "12 socket, 3 pipe, 1 anon_inode:[eventpoll], 1 /dev/null". */
export function summarizeFds(fds: readonly OpenFd[]): string {
  const by = new Map<string, number>();
  for (const f of fds) by.set(kind(f.target), (by.get(kind(f.target)) ?? 0) + 1);
  return [...by].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${k}`).join(', ');
}

/** The fds of `after` that `before` did not have (same number and target), for a message. */
export function newFds(before: readonly OpenFd[], after: readonly OpenFd[]): OpenFd[] {
  const had = new Set(before.map((f) => `${f.fd} ${f.target}`));
  return after.filter((f) => !had.has(`${f.fd} ${f.target}`));
}

export function describeFds(fds: readonly OpenFd[], max = 40): string {
  const shown = fds.slice(0, max).map((f) => `${f.fd} → ${f.target}`);
  return shown.join('\n') + (fds.length > max ? `\n… and ${fds.length - max} more (${summarizeFds(fds)})` : '');
}

// SPDX-License-Identifier: MIT
// Native errors (errno name + syscall) turned into text a person can act on.
// Pure, so every hint is tested without root.
import type { SystemError } from '../errors';

export interface HintContext {
  /** The kernel release, as os.release() gives it. */
  kernelRelease: string;
  /** The pin directory the command was using, for bpffs hints. */
  pinDir?: string;
}

const BPF_SYSCALLS = new Set([
  'bpf_prog_load',
  'bpf_link_create',
  'bpf_link_detach',
  'bpf_obj_get',
  'bpf_obj_pin',
  'bpf_obj_get_info_by_fd',
  'bpf_map_lookup_elem',
  'bpf_map_update_elem',
  'bpf_map_delete_elem',
  'bpf_map_get_next_key',
]);

/** Is `release` ("6.1.0-18-amd64") at least major.minor? */
export function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return true;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

function lastLines(log: string | undefined, n: number): string {
  if (!log) return '';
  const lines = log.trim().split('\n');
  return lines.slice(-n).join('\n');
}

/** The hint for a native error, or null when the raw message is the best we have. */
export function errnoHint(err: SystemError, ctx: HintContext): string | null {
  const { code, syscall } = err;
  if (syscall === undefined || code === undefined) return null;

  if ((code === 'EPERM' || code === 'EACCES') && syscall === 'bpf_obj_pin') {
    return `bpffs not mounted at ${ctx.pinDir ?? 'the pin directory'}: mount it with "mount -t bpf bpf ${ctx.pinDir ?? '/sys/fs/bpf'}", or run as root so jfe-bpf mounts it`;
  }
  if ((code === 'EPERM' || code === 'EACCES') && BPF_SYSCALLS.has(syscall)) {
    return 'run as root: needs CAP_BPF and CAP_NET_ADMIN';
  }
  if (code === 'EPERM' && syscall === 'setns') {
    return 'run as root: entering another network namespace needs CAP_SYS_ADMIN';
  }
  if ((code === 'EPERM' || code === 'EACCES') && syscall === 'setsockopt') {
    return 'run as root: transparent sockets and SO_MARK need CAP_NET_ADMIN';
  }
  if ((code === 'EINVAL' || code === 'E2BIG' || code === 'EOPNOTSUPP') && (syscall === 'bpf_prog_load' || syscall === 'bpf_link_create')) {
    if (!kernelAtLeast(ctx.kernelRelease, 5, 9)) {
      return `kernel lacks sk_lookup: needs ≥ 5.9 (this kernel is ${ctx.kernelRelease})`;
    }
    const log = lastLines(err.log, 8);
    return `the kernel refused the sk_lookup program (needs CONFIG_BPF_SYSCALL and sk_lookup, ≥ 5.9)${log ? `; libbpf said:\n${log}` : ''}`;
  }
  if (code === 'ENOSYS' && BPF_SYSCALLS.has(syscall)) {
    return 'kernel lacks the bpf() system call (CONFIG_BPF_SYSCALL)';
  }
  if (code === 'ENOENT' && syscall === 'bpf_obj_get') {
    return 'not attached: run "jfe-bpf attach" first';
  }
  return null;
}

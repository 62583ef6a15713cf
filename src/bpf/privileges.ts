// SPDX-License-Identifier: MIT
// Checks the capabilities steering needs before touching anything, so a
// missing privilege is one clear line, not an errno from the middle of attach.
import fs from 'node:fs';
import { JfeError } from '../errors';

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_BPF = 39;

/** The effective capability set from /proc/<pid>/status text. */
export function effectiveCaps(statusText: string): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(statusText);
  return m?.[1] ? BigInt(`0x${m[1]}`) : 0n;
}

const has = (caps: bigint, cap: number): boolean => ((caps >> BigInt(cap)) & 1n) === 1n;

/** Throws unless CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN) are effective. */
export function requireSteeringCaps(statusText = fs.readFileSync('/proc/self/status', 'utf8')): void {
  const caps = effectiveCaps(statusText);
  if (!has(caps, CAP_NET_ADMIN) || !(has(caps, CAP_BPF) || has(caps, CAP_SYS_ADMIN))) {
    throw new JfeError('JFE_ERR_NOT_ROOT', 'run as root: needs CAP_BPF and CAP_NET_ADMIN');
  }
}

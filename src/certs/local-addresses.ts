// SPDX-License-Identifier: MIT
// This host's own addresses, from the kernel (getifaddrs through
// os.networkInterfaces), never from an outside "what is my IP" service,
// whose answer an attacker on the path could choose.
import os from 'node:os';
import { canonicalIp } from './cert-name';

/** Addresses other hosts can reach this one at: every interface's, except loopback's. */
export function readLocalAddresses(): Set<string> {
  const out = new Set<string>();
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      const ip = canonicalIp(a.address);
      if (ip !== null) out.add(ip);
    }
  }
  return out;
}

/**
 * Answers "is this one of my addresses?", reading the kernel at most once per
 * `maxAgeMs` for a hit and re-reading at once on a miss that may be an address
 * added since (at most once per `minRereadMs`, so a flood of misses costs no
 * syscall storm).
 */
export class LocalAddresses {
  private addrs = new Set<string>();
  private readAt = -Infinity;

  constructor(
    private readonly read: () => Set<string> = readLocalAddresses,
    private readonly now: () => number = Date.now,
    private readonly minRereadMs = 1000,
  ) {}

  has(canonical: string): boolean {
    if (this.addrs.has(canonical)) return true;
    const t = this.now();
    if (t - this.readAt < this.minRereadMs) return false;
    this.addrs = this.read();
    this.readAt = t;
    return this.addrs.has(canonical);
  }
}

// SPDX-License-Identifier: MIT
// Which destinations terminate TLS themselves. Learnt from how a service
// answers a real ClientHello, cached per destination, and revalidated: jfe
// must never terminate TLS in front of a service that does it itself.

export type ServiceTls = 'tls' | 'plain';

interface Entry {
  kind: ServiceTls;
  expiresAt: number;
}

export interface TlsServiceCacheOptions {
  /** How long a verdict holds before the next TLS client probes again. */
  ttlMs: number;
  maxEntries?: number;
  now?: () => number;
}

export class TlsServiceCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(opts: TlsServiceCacheOptions) {
    this.ttlMs = opts.ttlMs;
    this.maxEntries = opts.maxEntries ?? 4096;
    this.now = opts.now ?? Date.now;
  }

  get(address: string, port: number): ServiceTls | undefined {
    const k = `${address}|${port}`;
    const e = this.entries.get(k);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(k);
      return undefined;
    }
    return e.kind;
  }

  set(address: string, port: number, kind: ServiceTls): void {
    const k = `${address}|${port}`;
    this.entries.delete(k);
    if (this.entries.size >= this.maxEntries) {
      // Maps iterate in insertion order: drop the oldest verdict.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(k, { kind, expiresAt: this.now() + this.ttlMs });
  }
}

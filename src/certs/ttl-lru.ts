// SPDX-License-Identifier: MIT
// A bounded map whose entries expire: least recently used evicted first, so
// keys chosen by an attacker (names from SNI) cannot grow it without bound.

export class TtlLru<V> {
  /** A Map iterates in insertion order: re-inserting on a hit moves an entry to the end. */
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(private readonly maxEntries: number) {
    if (!(maxEntries >= 1)) throw new RangeError('maxEntries must be at least 1');
  }

  get size(): number {
    return this.entries.size;
  }

  /** The live value for `key` (and marks it recently used); an expired entry is dropped. */
  get(key: string, now: number): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    if (e.expiresAt <= now) return undefined;
    this.entries.set(key, e);
    return e.value;
  }

  set(key: string, value: V, ttlMs: number, now: number): void {
    if (ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: now + ttlMs });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }
}

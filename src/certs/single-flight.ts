// SPDX-License-Identifier: MIT
// Concurrent callers asking the same question share one answer: a flood of
// handshakes for one new name costs one DNS query and one ask request.

export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  /** Runs `fn` for `key` unless a run for `key` is under way, whose result is then shared. */
  run(key: string, fn: () => Promise<T>): Promise<T> {
    const pending = this.inFlight.get(key);
    if (pending !== undefined) return pending;
    const p = (async () => {
      try {
        return await fn();
      } finally {
        this.inFlight.delete(key);
      }
    })();
    this.inFlight.set(key, p);
    return p;
  }

  /** Runs under way (bounded by the distinct keys asked at once). */
  get size(): number {
    return this.inFlight.size;
  }
}

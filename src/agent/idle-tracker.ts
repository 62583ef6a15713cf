// SPDX-License-Identifier: MIT
// Which connections have been silent, and since when, sampled while the host
// is near its connection cap (once a second: a sample reads one number per
// connection, so it costs nothing when the host is not under load, and little
// when it is). The relay's own idle timeout needs no samples: this is for the
// overload, where idle connections are closed sooner and the longest-idle
// make room for new ones.

/** A connection as the tracker sees it. */
export interface Tracked {
  /** Grows whenever a byte moves either way (any monotonic count of bytes). */
  activity(): number;
  /** When it was accepted (ms): a connection that never moved a byte is silent since then. */
  readonly openedAt: number;
}

interface State {
  last: number;
  since: number;
  seen: number;
}

export class IdleTracker<T extends Tracked> {
  private readonly states = new Map<T, State>();
  private epoch = 0;
  /** Every connection at the last sample, longest silent first; taken from `head` on. */
  private candidates: T[] = [];
  private head = 0;

  /** Samples every connection; forgets those that are gone. */
  sample(conns: Iterable<T>, now: number): void {
    const epoch = ++this.epoch;
    for (const c of conns) {
      const a = c.activity();
      const s = this.states.get(c);
      if (s === undefined) {
        // Never seen: silent since it opened if it never moved a byte; else assume it just did.
        this.states.set(c, { last: a, since: a === 0 ? c.openedAt : now, seen: epoch });
        continue;
      }
      s.seen = epoch;
      if (a !== s.last) {
        s.last = a;
        s.since = now;
      }
    }
    for (const [c, s] of this.states) if (s.seen !== epoch) this.states.delete(c);
    this.candidates = [...this.states.entries()].sort((x, y) => x[1].since - y[1].since).map(([c]) => c);
    this.head = 0;
  }

  /** The connections silent for at least `ms` at the last sample. */
  silentFor(ms: number, now: number): T[] {
    const out: T[] = [];
    for (let i = this.head; i < this.candidates.length; i++) {
      const c = this.candidates[i] as T;
      const s = this.states.get(c);
      if (s === undefined) continue;
      if (now - s.since < ms) break;
      out.push(c);
    }
    return out;
  }

  /**
   * The longest-silent connection, silent for at least `minMs` and still
   * silent now (its activity unchanged since the last sample), or null. It is
   * forgotten: the caller closes it.
   */
  takeLongestSilent(minMs: number, now: number): T | null {
    // Bounded: each pass takes one candidate out, or returns.
    while (this.head < this.candidates.length) {
      const c = this.candidates[this.head] as T;
      const s = this.states.get(c);
      if (s === undefined || c.activity() !== s.last) {
        this.head++;
        continue;
      }
      if (now - s.since < minMs) return null;
      this.head++;
      this.states.delete(c);
      return c;
    }
    return null;
  }

  /** Forgets everything (the overload is over). */
  clear(): void {
    this.states.clear();
    this.candidates = [];
    this.head = 0;
  }

  get size(): number {
    return this.states.size;
  }
}

// SPDX-License-Identifier: MIT
// A worker gives memory back to the kernel once a flood of names is over:
// when to do it (a decision, here), and how (V8 and glibc, below).
//
// What a flood leaves behind, measured on Node 26.12 (sni-flood.test.ts, 1,500
// names, 2 workers) with the former sweep (a plain gc() and malloc_trim at each
// sweep that dropped contexts): RSS 124/126 MB before, 158/160 MB after. Every
// dropped context had been collected (a FinalizationRegistry counted 784 and 719
// made, 0 alive), and glibc's arenas held 28/32 MB, mostly free and trimmed (9 MB
// resident in the main arena). What stayed was V8's heap: 84 MB committed for
// 26 MB used (47 MB before the flood), the young generation grown from ~16 to
// ~57 MB by the flood's allocation rate. A plain collection keeps the young
// generation at its size while the recent allocation rate looks high, as it
// does right after a flood, and an idle worker then allocates too little to
// collect again, so it never shrank (on Node 20 the young generation stops at
// 32 MB, on Node 26 at 64 MB; the test passed on Node 20). A memory-reducing ("last resort") collection shrinks it whatever the
// rate and unmaps the freed pages: 52.5 MB down to 1.8 MB, RSS 188 down to
// 111 MB. It costs two or more full collections (30 ms of CPU with a 25 MB
// heap; 100-700 ms of wall time on a loaded 2-core host), hence once after the
// flood rather than at each sweep during it.
//
// A context's OpenSSL memory is freed only when V8 collects its object, which
// an idle worker may not do for hours (V8 does not see that memory): that is
// the other half of what the collection is for.
import { native } from '../native';

/**
 * Sweeps at which a worker should reclaim memory: the first sweep that drops
 * no context after some were dropped (the flood is over, so the collection
 * is not repeated throughout it and the young generation is not shrunk only
 * to grow again), or, while contexts keep being dropped (a slow trickle of
 * names), every `maxSweepsBetween` sweeps.
 */
export class ReclaimSchedule {
  private droppedSince = 0;
  private sweepsSince = 0;

  constructor(private readonly maxSweepsBetween: number) {
    if (!(maxSweepsBetween >= 1)) throw new RangeError('maxSweepsBetween must be at least 1');
  }

  /** `dropped`: contexts the sweep just dropped. True when the worker should reclaim now. */
  afterSweep(dropped: number): boolean {
    this.droppedSince += dropped;
    if (this.droppedSince === 0) return false;
    this.sweepsSince++;
    if (dropped > 0 && this.sweepsSince < this.maxSweepsBetween) return false;
    this.droppedSince = 0;
    this.sweepsSince = 0;
    return true;
  }
}

/**
 * Collects with V8's memory-reducing flavour (young generation shrunk, freed
 * pages unmapped, phantom callbacks run, so the contexts' SSL_CTXs are freed
 * before the trim), then trims glibc's arenas. Only a worker started with
 * --expose-gc collects (worker-pool.ts); without it only the trim runs.
 */
export function reclaimMemory(): void {
  // Node 20's V8 ignores `flavor` (a plain collection then); Node 26's honours it.
  globalThis.gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  native().mallocTrim();
}

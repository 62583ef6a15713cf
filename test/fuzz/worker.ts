// SPDX-License-Identifier: MIT
// Runs one fuzz target inside a worker thread (run.ts starts it with a heap
// limit and watches its heartbeat): first every corpus seed as it is, then
// `runs` generated inputs through fast-check, which shrinks a failing input
// to a small one before reporting it.
import { AssertionError } from 'node:assert';
import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { tallies } from './tally';
import { loadCorpus } from './target';
import { TARGETS } from './targets';

export interface WorkerJob {
  target: string;
  runs: number;
  seed: number;
  /** fast-check's replay path of one failing input (from an earlier report), or undefined. */
  path: string | undefined;
  /** [0]: inputs started (seeds, then generated); [1]: the number of seeds + 1, once they are done. */
  heartbeat: SharedArrayBuffer;
}

export type WorkerReport =
  | { ok: true; seeds: number; runs: number; tallies: Record<string, number> }
  | { ok: false; seeds: number; runs: number; input: string; error: string; path: string | null; shrinks: number };

/** A broken property says which in its message; anything else thrown is a crash, and its stack says where. */
/** How long a failing input is shrunk before it is reported as it is then. */
const SHRINK_MS = 20_000;

function describeError(e: unknown): string {
  if (e instanceof AssertionError) return e.message;
  return e instanceof Error ? (e.stack ?? e.message) : String(e);
}

async function main(job: WorkerJob): Promise<WorkerReport> {
  const target = TARGETS.find((t) => t.name === job.target);
  if (target === undefined) throw new Error(`no fuzz target ${job.target}`);
  const beat = new Int32Array(job.heartbeat);
  const corpus = loadCorpus(target.corpusDirs);
  const seeds = target.seeds(corpus);

  if (job.path === undefined) {
    for (const seed of seeds) {
      Atomics.add(beat, 0, 1);
      try {
        await target.check(seed);
      } catch (e) {
        return { ok: false, seeds: seeds.length, runs: 0, input: fc.stringify(seed), error: describeError(e), path: null, shrinks: 0 };
      }
    }
  }
  Atomics.store(beat, 1, seeds.length + 1);

  const arb = target.input(corpus);
  const property = target.async
    ? fc.asyncProperty(arb, async (x) => {
        Atomics.add(beat, 0, 1);
        await target.check(x);
      })
    : fc.property(arb, (x) => {
        Atomics.add(beat, 0, 1);
        target.check(x);
      });
  const check = (params: fc.Parameters<[unknown]>): Promise<fc.RunDetails<[unknown]>> =>
    Promise.resolve(fc.check(property as fc.IRawProperty<[unknown]>, { ...params, numRuns: job.runs, seed: job.seed }));
  // Find a failure without shrinking, then shrink it for a bounded time:
  // fast-check shrinks large inputs for minutes otherwise.
  const found = await check(job.path === undefined ? { endOnFailure: true } : { path: job.path, endOnFailure: true });
  const failedAt = found.failed ? found.counterexamplePath : null;
  const details = failedAt === null ? found : await check({ path: failedAt, interruptAfterTimeLimit: SHRINK_MS, markInterruptAsFailure: false });
  if (!details.failed) return { ok: true, seeds: seeds.length, runs: details.numRuns, tallies: tallies() };
  return {
    ok: false,
    seeds: seeds.length,
    runs: details.numRuns,
    input: details.counterexample === null ? '(none)' : fc.stringify(details.counterexample[0]),
    error: describeError(details.errorInstance),
    path: details.counterexamplePath,
    shrinks: details.numShrinks,
  };
}

main(workerData as WorkerJob).then(
  (report) => parentPort?.postMessage(report),
  (e: unknown) => {
    throw e;
  },
);

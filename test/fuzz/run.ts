// SPDX-License-Identifier: MIT
// npm run fuzz / fuzz:smoke: runs each fuzz target (targets/) in a worker
// thread of its own, one after the other. A worker's heap is capped, so an
// input that makes a parser allocate without bound fails the target; a
// watchdog fails it when one input runs longer than --timeout-ms (a parser
// that loops). Prints per target the inputs run, the time and the rate, and
// for a failure the shrunk input and the command that replays it.
//
// Usage: node dist/test/fuzz/run.js [--smoke] [--runs N] [--seed N] [--path P]
//          [--timeout-ms N] [--memory-mb N] [--stats] [--list] [target …]
// JFE_FUZZ_RUNS and JFE_FUZZ_SEED set --runs and --seed.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { TARGETS } from './targets';
import type { WorkerJob, WorkerReport } from './worker';

const DEFAULT_RUNS = 1_000_000;

interface Options {
  smoke: boolean;
  runs: number;
  seed: number;
  path: string | undefined;
  timeoutMs: number;
  memoryMb: number;
  targets: string[];
  list: boolean;
  stats: boolean;
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: run.js [--smoke] [--runs N] [--seed N] [--path P] [--timeout-ms N] [--memory-mb N] [--stats] [--list] [target …]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const number = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || v === '' || !Number.isSafeInteger(n) || n < 0) usage(`${name} needs a whole number, not ${JSON.stringify(v)}`);
    return n;
  };
  const o: Options = {
    smoke: false,
    runs: process.env.JFE_FUZZ_RUNS ? number('JFE_FUZZ_RUNS', process.env.JFE_FUZZ_RUNS) : DEFAULT_RUNS,
    seed: process.env.JFE_FUZZ_SEED ? number('JFE_FUZZ_SEED', process.env.JFE_FUZZ_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0,
    path: undefined,
    timeoutMs: 5000,
    memoryMb: 512,
    targets: [],
    list: false,
    stats: false,
  };
  let runsGiven = process.env.JFE_FUZZ_RUNS !== undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--smoke') o.smoke = true;
    else if (a === '--list') o.list = true;
    else if (a === '--stats') o.stats = true;
    else if (a === '--runs') {
      o.runs = number(a, argv[++i]);
      runsGiven = true;
    } else if (a === '--seed') o.seed = number(a, argv[++i]);
    else if (a === '--path') o.path = argv[++i] ?? usage('--path needs a value');
    else if (a === '--timeout-ms') o.timeoutMs = number(a, argv[++i]);
    else if (a === '--memory-mb') o.memoryMb = number(a, argv[++i]);
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else o.targets.push(a);
  }
  // --smoke takes each target's own budget unless a count is given.
  if (o.smoke && !runsGiven) o.runs = -1;
  const names = TARGETS.map((t) => t.name);
  for (const t of o.targets) if (!names.includes(t)) usage(`no fuzz target ${t}; there are ${names.join(', ')}`);
  return o;
}

interface Outcome {
  target: string;
  inputs: number;
  ms: number;
  failure: string | null;
  tallies: Record<string, number>;
}

function runTarget(name: string, runs: number, o: Options): Promise<Outcome> {
  const heartbeat = new SharedArrayBuffer(8);
  const beat = new Int32Array(heartbeat);
  const job: WorkerJob = { target: name, runs, seed: o.seed, path: o.path, heartbeat };
  const started = Date.now();
  const worker = new Worker(path.join(__dirname, 'worker.js'), {
    workerData: job,
    resourceLimits: { maxOldGenerationSizeMb: o.memoryMb },
  });
  return new Promise((resolve) => {
    let last = -1;
    let lastChange = Date.now();
    let lastPrint = Date.now();
    let settled = false;
    const replay = (at: number): string => {
      // Inputs are counted from 1, seeds first; fast-check's path counts generated inputs from 0.
      const seeds = Atomics.load(beat, 1) - 1;
      if (o.path !== undefined) return `replay: npm run fuzz -- ${name} --seed ${o.seed} --path ${o.path}`;
      return seeds < 0 ? `corpus seed #${at}` : `replay: npm run fuzz -- ${name} --seed ${o.seed} --path ${at - 1 - seeds}`;
    };
    const finish = (failure: string | null, tallies: Record<string, number> = {}): void => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      resolve({ target: name, inputs: Atomics.load(beat, 0), ms: Date.now() - started, failure, tallies });
    };
    const watch = setInterval(() => {
      const now = Date.now();
      const n = Atomics.load(beat, 0);
      if (n !== last) {
        last = n;
        lastChange = now;
      } else if (now - lastChange > o.timeoutMs) {
        void worker.terminate();
        finish(`one input ran longer than ${o.timeoutMs} ms (input #${n}; ${replay(n)})`);
      }
      if (now - lastPrint >= 30_000) {
        lastPrint = now;
        process.stdout.write(`  ${name}: ${n} inputs, ${Math.round((now - started) / 1000)} s\n`);
      }
    }, 100);
    worker.on('message', (r: WorkerReport) => {
      if (r.ok) return finish(null, r.tallies);
      const where = r.path === null ? 'a corpus seed, as it is' : `replay: npm run fuzz -- ${name} --seed ${o.seed} --path ${r.path}`;
      finish(`${r.error}\n  input (after ${r.shrinks} shrinks): ${r.input}\n  ${where}`);
    });
    worker.on('error', (e: Error & { code?: string }) => {
      const n = Atomics.load(beat, 0);
      const what = e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `the heap outgrew ${o.memoryMb} MB` : (e.stack ?? String(e));
      finish(`${what} (input #${n}; ${replay(n)})`);
    });
    worker.on('exit', (code) => finish(code === 0 ? 'the worker exited without a report' : `the worker exited with code ${code}`));
  });
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const targets = TARGETS.filter((t) => o.targets.length === 0 || o.targets.includes(t.name));
  if (o.list) {
    for (const t of targets) process.stdout.write(`${t.name}\t${t.smokeRuns} smoke runs\t${t.corpusDirs.join(' ')}\n`);
    return 0;
  }
  process.stdout.write(`fuzzing ${targets.length} target(s), seed ${o.seed}${o.smoke ? ' (smoke)' : ''}\n`);
  const outcomes: Outcome[] = [];
  for (const t of targets) {
    const runs = o.runs < 0 ? t.smokeRuns : o.runs;
    const r = await runTarget(t.name, runs, o);
    outcomes.push(r);
    const rate = r.ms > 0 ? Math.round((r.inputs * 1000) / r.ms) : r.inputs;
    process.stdout.write(`${r.failure === null ? 'ok  ' : 'FAIL'} ${t.name}: ${r.inputs} inputs in ${(r.ms / 1000).toFixed(1)} s (${rate}/s)\n`);
    if (r.failure !== null) process.stdout.write(`  ${r.failure.replace(/\n/g, '\n  ')}\n`);
    if (o.stats) for (const [label, n] of Object.entries(r.tallies)) process.stdout.write(`  ${label}: ${n}\n`);
  }
  const failed = outcomes.filter((r) => r.failure !== null).length;
  const total = outcomes.reduce((s, r) => s + r.ms, 0);
  process.stdout.write(`fuzz: ${outcomes.length - failed} passed, ${failed} failed, ${(total / 1000).toFixed(1)} s, seed ${o.seed}\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);

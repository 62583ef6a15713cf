// SPDX-License-Identifier: MIT
// What a fuzz target is: an input generator seeded by its corpus, and a check
// that throws when one of its properties breaks. The runner (run.ts) runs
// each target in a worker of its own, bounded in memory and in time per input.
import fs from 'node:fs';
import path from 'node:path';
import type fc from 'fast-check';
import { REPO_ROOT } from '../helpers/spawn';

export const CORPUS_ROOT = path.join(REPO_ROOT, 'test', 'fuzz', 'corpus');

/** A corpus: file name → bytes, from the target's directories (README.md files excluded). */
export type Corpus = ReadonlyMap<string, Buffer>;

export interface FuzzTarget<T> {
  readonly name: string;
  /** Directories of seeds, relative to the repository root (README.md files are not seeds). */
  readonly corpusDirs: readonly string[];
  /** Inputs for `npm run fuzz:smoke`: a few seconds on a 2-core machine. */
  readonly smokeRuns: number;
  /** The seeds as inputs: each is checked unmutated before any generated input. */
  seeds(corpus: Corpus): T[];
  input(corpus: Corpus): fc.Arbitrary<T>;
  /** Whether `check` returns a promise (the dialogues, which run on streams). */
  readonly async: boolean;
  /** Throws (an AssertionError saying which property) when a property breaks. */
  check(input: T): void | Promise<void>;
}

export function loadCorpus(dirs: readonly string[]): Corpus {
  const files = new Map<string, Buffer>();
  for (const dir of dirs) {
    const abs = path.join(REPO_ROOT, dir);
    for (const f of fs.readdirSync(abs).sort()) {
      if (f === 'README.md' || f.endsWith('.js')) continue;
      files.set(f, fs.readFileSync(path.join(abs, f)));
    }
  }
  return files;
}

/** The corpus's files whose names end in `suffix`. */
export function filesEnding(corpus: Corpus, suffix: string): Buffer[] {
  return [...corpus].filter(([name]) => name.endsWith(suffix)).map(([, b]) => b);
}

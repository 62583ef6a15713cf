// SPDX-License-Identifier: MIT
// One check of `jfe doctor`: a name, a verdict, what was seen, and for a
// failure the fix an operator can apply.
import type { SteeringOptions } from '../bpf/steering';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do about a failure. */
  fix?: string;
}

export interface Check {
  name: string;
  run(opts: SteeringOptions): CheckResult | Promise<CheckResult>;
}

/** Runs every check independently: one that throws fails alone, with its error as the detail. */
export async function runChecks(checks: Check[], opts: SteeringOptions): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const c of checks) {
    try {
      out.push(await c.run(opts));
    } catch (err) {
      out.push({ name: c.name, ok: false, detail: `check could not run: ${(err as Error).message}`, fix: 'run jfe doctor as root (it needs the same privileges as jfe run)' });
    }
  }
  return out;
}

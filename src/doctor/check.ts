// SPDX-License-Identifier: MIT
// One check of `jfe doctor`: a name, a verdict, what was seen, and for a
// failure the fix an operator can apply.
import type { SteeringOptions } from '../bpf/steering';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do about a failure, or a warning. */
  fix?: string;
  /** Passes, but needs attention: shown as "warn", with its fix; does not fail jfe doctor. */
  warn?: boolean;
}

/** The steering's settings, and those of jfe run that a check compares with the host. */
export interface DoctorOptions extends SteeringOptions {
  maxConnections: number;
}

export interface Check {
  name: string;
  run(opts: DoctorOptions): CheckResult | Promise<CheckResult>;
}

/** Runs every check independently: one that throws fails alone, with its error as the detail. */
export async function runChecks(checks: Check[], opts: DoctorOptions): Promise<CheckResult[]> {
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

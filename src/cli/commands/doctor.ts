// SPDX-License-Identifier: MIT
// jfe doctor: checks what jfe needs, prints the fix for each failure. Exit 0
// only when every check passes.
import type { CommandModule } from 'yargs';
import { loadSettings } from '../../config/load';
import { DOCTOR_CHECKS, type CheckResult, runChecks } from '../../doctor/doctor';
import { EXIT, setExitCode } from '../main';
import { withOptions } from '../options';
import { renderJson } from '../render';
import { STEERING_OPTION_NAMES, steeringOptions } from './steering-settings';

/** jfe run's --max-connections too: the open-files check compares the limit with it. */
const DOCTOR_OPTION_NAMES = [...STEERING_OPTION_NAMES, 'maxConnections'] as const;

export function renderDoctor(results: CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${r.ok ? (r.warn ? 'warn' : 'ok  ') : 'FAIL'} ${r.name}: ${r.detail}`);
    if ((!r.ok || r.warn) && r.fix) lines.push(`     fix: ${r.fix}`);
  }
  const failed = results.filter((r) => !r.ok).length;
  lines.push(failed === 0 ? 'all checks passed' : `${failed} of ${results.length} checks failed`);
  return lines.join('\n');
}

export const doctorCommand: CommandModule = {
  command: 'doctor',
  describe: 'check what jfe needs (kernel, privileges, bpffs, routing, sysctls, steering, sockets) and test a connection end to end; prints the fix for each failure (exit 0 only when all pass)',
  builder: (y) => withOptions(y, DOCTOR_OPTION_NAMES),
  handler: async (argv) => {
    const s = loadSettings(argv, DOCTOR_OPTION_NAMES);
    const results = await runChecks(DOCTOR_CHECKS, { ...steeringOptions(s), maxConnections: s.maxConnections });
    const ok = results.every((r) => r.ok);
    process.stdout.write((s.json ? renderJson({ ok, checks: results }) : renderDoctor(results)) + '\n');
    setExitCode(ok ? EXIT.ok : EXIT.error);
  },
};

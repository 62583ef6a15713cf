// SPDX-License-Identifier: MIT
// The open-files limit (RLIMIT_NOFILE) against --max-connections. jfe run
// raises its soft limit to the hard one at start (primary and workers), so the
// hard limit is what counts. This is jfe doctor's own limit: run it as jfe run
// is run (same user, same unit limits) for the answer to hold.
import { OPEN_FILES_MARGIN, openFilesNeeded } from '../config/open-files';
import { native } from '../native';
import type { Check, CheckResult } from './check';

const NAME = 'open files limit';

/** The verdict for limits `l` (this process's) and the --max-connections the agent runs with. */
export function openFilesResult(l: { soft: number; hard: number }, maxConnections: number): CheckResult {
  const need = openFilesNeeded(maxConnections);
  const seen = `soft ${l.soft}, hard ${l.hard} (jfe run raises the soft limit to the hard one)`;
  if (l.hard >= need) return { name: NAME, ok: true, detail: `${seen}; --max-connections ${maxConnections} needs ${need} (2 per connection + ${OPEN_FILES_MARGIN})` };
  return {
    name: NAME,
    ok: true,
    warn: true,
    detail: `${seen}: below the ${need} that --max-connections ${maxConnections} needs (2 per connection + ${OPEN_FILES_MARGIN}); a worker that reaches the limit fails to accept or to dial`,
    fix: `raise the hard limit of jfe run to ${need} or more (systemd: LimitNOFILE=${need} in the unit; a shell: ulimit -Hn ${need} as root), or lower --max-connections to ${Math.max(1, Math.floor((l.hard - OPEN_FILES_MARGIN) / 2))}`,
  };
}

export const openFilesCheck: Check = {
  name: NAME,
  run(opts) {
    return openFilesResult(native().nofileLimit(), opts.maxConnections);
  },
};

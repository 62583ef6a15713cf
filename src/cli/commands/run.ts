// SPDX-License-Identifier: MIT
// jfe run: attach the steering when needed and serve until stopped.
import type { CommandModule } from 'yargs';
import { loadSettings } from '../../config/load';
import { RUN_OPTION_NAMES, logLevelOf, runDaemon, workerSettings } from '../../daemon';
import { createLogger } from '../../log';
import { setExitCode } from '../main';
import { withOptions } from '../options';

export const runCommand: CommandModule = {
  command: 'run',
  describe: 'run the agent: every TCP service of this host (its network namespace) answers TLS; started while another runs, it takes over with no lost connection',
  builder: (y) => withOptions(y, RUN_OPTION_NAMES),
  handler: async (argv) => {
    // SIGHUP reads the file again, with the environment and flags of the start.
    const env = { ...process.env };
    const reload = () => loadSettings(argv, RUN_OPTION_NAMES, { env });
    const s = workerSettings() ?? reload();
    const log = createLogger(logLevelOf(s), 1);
    const code = await runDaemon(s, log, reload);
    setExitCode(code);
    // The daemon is done: background timers (renewals, retries) and the IPC
    // channel of a worker must not keep the process alive.
    process.exit(code);
  },
};

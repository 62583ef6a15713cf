// SPDX-License-Identifier: MIT
// jfe ca export: print the internal CA's root certificate, so clients can trust it.
import type { CommandModule } from 'yargs';
import { loadSettings } from '../../config/load';
import { exportCaRoot } from '../../daemon';
import { createLogger } from '../../log';
import { EXIT, setExitCode } from '../main';
import { type CommandSettings, withOptions } from '../options';

const NAMES = ['stateDir', 'logLevel'] as const;
const DEFAULTS = { logLevel: 'warn' } as const;
export const CA_EXPORT_SETTINGS: CommandSettings = { names: NAMES, defaults: DEFAULTS };

const exportCommand: CommandModule = {
  command: 'export',
  describe: 'print the root certificate (PEM) of the internal CA; created on first use',
  builder: (y) => withOptions(y, NAMES, DEFAULTS),
  handler: async (argv) => {
    const s = loadSettings(argv, NAMES, { defaults: DEFAULTS });
    process.stdout.write(await exportCaRoot(s.stateDir, createLogger(s.logLevel, 2)));
    setExitCode(EXIT.ok);
  },
};

export const caCommand: CommandModule = {
  command: 'ca <command>',
  describe: 'the internal certificate authority',
  builder: (y) => y.command(exportCommand).demandCommand(1, 'give a command: export'),
  handler: () => undefined,
};

// SPDX-License-Identifier: MIT
// jfe-bpf detach: remove the program, its pins and the routing attach added.
import type { CommandModule } from 'yargs';
import { detach } from '../../bpf/steering';
import { requireSteeringCaps } from '../../bpf/privileges';
import { loadSettings } from '../../config/load';
import { createLogger } from '../../log';
import { EXIT, setExitCode } from '../main';
import { type CommandSettings, withOptions } from '../options';
import { renderDetach, renderJson } from '../render';
import { STEERING_OPTION_NAMES, steeringOptions } from './steering-settings';

const DEFAULTS = { logLevel: 'warn' } as const;
export const DETACH_SETTINGS: CommandSettings = { names: STEERING_OPTION_NAMES, defaults: DEFAULTS };

export const detachCommand: CommandModule = {
  command: 'detach',
  describe: 'detach the steering: traffic goes straight to the services (idempotent)',
  builder: (y) => withOptions(y, STEERING_OPTION_NAMES, DEFAULTS),
  handler: (argv) => {
    const s = loadSettings(argv, STEERING_OPTION_NAMES, { defaults: DEFAULTS });
    requireSteeringCaps();
    const r = detach(steeringOptions(s), createLogger(s.logLevel, 2));
    process.stdout.write((s.json ? renderJson(r) : renderDetach(r)) + '\n');
    setExitCode(EXIT.ok);
  },
};

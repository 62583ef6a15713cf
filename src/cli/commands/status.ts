// SPDX-License-Identifier: MIT
// jfe-bpf status: what is attached. Exit 0 when attached, 3 when not.
import type { CommandModule } from 'yargs';
import { status } from '../../bpf/steering';
import { requireSteeringCaps } from '../../bpf/privileges';
import { loadSettings } from '../../config/load';
import { EXIT, setExitCode } from '../main';
import { type CommandSettings, withOptions } from '../options';
import { renderJson, renderStatus } from '../render';
import { STEERING_OPTION_NAMES, steeringOptions } from './steering-settings';

export const STATUS_SETTINGS: CommandSettings = { names: STEERING_OPTION_NAMES };

export const statusCommand: CommandModule = {
  command: 'status',
  describe: 'show whether the steering is attached, its ports, sockets, counters and routing (exit 0 attached, 3 not)',
  builder: (y) => withOptions(y, STEERING_OPTION_NAMES),
  handler: (argv) => {
    const s = loadSettings(argv, STEERING_OPTION_NAMES);
    requireSteeringCaps();
    const r = status(steeringOptions(s));
    process.stdout.write((s.json ? renderJson(r) : renderStatus(r)) + '\n');
    setExitCode(r.attached ? EXIT.ok : EXIT.notAttached);
  },
};

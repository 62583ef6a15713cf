// SPDX-License-Identifier: MIT
// jfe-bpf attach: load, attach, pin, and set up routing. Idempotent.
import type { CommandModule } from 'yargs';
import { attach } from '../../bpf/steering';
import { requireSteeringCaps } from '../../bpf/privileges';
import { loadSettings } from '../../config/load';
import { resolvePortSet } from '../../config/ports';
import { createLogger } from '../../log';
import { EXIT, setExitCode } from '../main';
import { type CommandSettings, withOptions } from '../options';
import { renderAttach, renderJson } from '../render';
import { STEERING_OPTION_NAMES, steeringOptions } from './steering-settings';

const NAMES = [...STEERING_OPTION_NAMES, 'ports', 'excludePorts'] as const;
const DEFAULTS = { logLevel: 'warn' } as const;
export const ATTACH_SETTINGS: CommandSettings = { names: NAMES, defaults: DEFAULTS };

export const attachCommand: CommandModule = {
  command: 'attach',
  describe: 'attach the steering to a network namespace (idempotent; a changed port set is applied in place)',
  builder: (y) => withOptions(y, NAMES, DEFAULTS),
  handler: (argv) => {
    const s = loadSettings(argv, NAMES, { defaults: DEFAULTS });
    const ports = resolvePortSet(s.ports, s.excludePorts);
    requireSteeringCaps();
    const r = attach({ ...steeringOptions(s), ports }, createLogger(s.logLevel, 2));
    process.stdout.write((s.json ? renderJson(r) : renderAttach(r)) + '\n');
    setExitCode(EXIT.ok);
  },
};

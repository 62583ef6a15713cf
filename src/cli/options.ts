// SPDX-License-Identifier: MIT
// yargs options built from the one table in config/options.ts, so --help
// shows every setting a command reads, its JFE_ variable and the default it
// really gets (the command's own where it has one).
import type { Argv, Options } from 'yargs';
import { OPTIONS, type OptionName, envName, flagName } from '../config/options';

export const SETTINGS_EPILOGUE =
  'Every option is also a JFE_ environment variable (shown) and a key of the --config file (YAML or JSON; ' +
  'the option\'s name in camelCase, e.g. exclude-ports → excludePorts). ' +
  'Precedence: flag > environment > config file > default.';

/** The settings a command reads, and the defaults it uses instead of the table's. */
export interface CommandSettings<N extends OptionName = OptionName> {
  names: readonly N[];
  defaults?: Partial<Record<N, string | number | boolean>>;
}

export function withOptions<T>(y: Argv<T>, names: readonly OptionName[], defaults: Partial<Record<OptionName, string | number | boolean>> = {}): Argv<T> {
  const opts: Record<string, Options> = {};
  const main: string[] = [];
  const advanced: string[] = [];
  for (const name of ['config' as const, ...names.filter((n) => n !== 'config')]) {
    const d = OPTIONS[name];
    const o: Options = { type: d.type, describe: `${d.describe} [env ${envName(name)}]` };
    // Defaults are applied by config/load.ts, after the environment and the file: here they are only shown.
    const shown = defaults[name] ?? ('default' in d ? d.default : undefined);
    if (shown !== undefined) o.defaultDescription = JSON.stringify(shown);
    if ('alias' in d && d.alias !== undefined) o.alias = d.alias;
    ('hidden' in d && d.hidden === true ? advanced : main).push(flagName(name));
    opts[flagName(name)] = o;
  }
  let out = y.options(opts).group(main, 'Options:');
  if (advanced.length > 0) out = out.group(advanced, 'Advanced options (tuning, tests):');
  return out.epilogue(SETTINGS_EPILOGUE) as unknown as Argv<T>;
}

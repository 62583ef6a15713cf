// SPDX-License-Identifier: MIT
// yargs options built from the one table in config/options.ts.
import type { Argv, Options } from 'yargs';
import { OPTIONS, type OptionName, envName, flagName } from '../config/options';

export function withOptions<T>(y: Argv<T>, names: readonly OptionName[]): Argv<T> {
  const opts: Record<string, Options> = {};
  for (const name of names) {
    const d = OPTIONS[name];
    const o: Options = {
      type: d.type,
      describe: `${d.describe} [env ${envName(name)}]`,
      hidden: 'hidden' in d ? Boolean(d.hidden) : false,
    };
    // Defaults are applied by config/load.ts, after the environment: here they are only shown.
    if ('default' in d && d.default !== undefined) o.defaultDescription = JSON.stringify(d.default);
    if ('alias' in d && d.alias !== undefined) o.alias = d.alias;
    opts[flagName(name)] = o;
  }
  return y.options(opts) as unknown as Argv<T>;
}

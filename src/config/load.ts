// SPDX-License-Identifier: MIT
// Validates the options a command uses, once, into a frozen object; errors
// name the setting by flag and environment variable.
import { JfeError } from '../errors';
import { OPTIONS, type OptionName, type OptionValue, envName, flagName } from './options';

export type Settings<N extends OptionName> = { readonly [K in N]: OptionValue<K> };

/** Validates `names` from parsed argv (flags and JFE_ env already merged by yargs). */
export function loadSettings<N extends OptionName>(argv: Record<string, unknown>, names: readonly N[]): Settings<N> {
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const r = OPTIONS[name].schema.safeParse(argv[name]);
    if (!r.success) {
      const why = r.error.issues[0]?.message ?? 'invalid value';
      throw new JfeError('JFE_ERR_CONFIG_INVALID', `invalid --${flagName(name)} (${envName(name)}): ${why}`);
    }
    out[name] = r.data;
  }
  return Object.freeze(out) as Settings<N>;
}

// SPDX-License-Identifier: MIT
// Validates the options a command uses, once, into a frozen object; errors
// name the setting by flag and environment variable.
import { JfeError } from '../errors';
import { OPTIONS, type OptionName, type OptionValue, envName, flagName } from './options';

function fromEnv(type: 'string' | 'number' | 'boolean', v: string | undefined): unknown {
  if (v === undefined) return undefined;
  if (type !== 'boolean') return v;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off|)$/i.test(v)) return false;
  return v;
}

export type Settings<N extends OptionName> = { readonly [K in N]: OptionValue<K> };

/**
 * Validates `names`. Each value comes from the first source that has it: the
 * command-line flag, the JFE_ environment variable, the command's own
 * default, the default of the option table.
 */
export function loadSettings<N extends OptionName>(
  argv: Record<string, unknown>,
  names: readonly N[],
  opts: { defaults?: Partial<Record<N, unknown>>; env?: NodeJS.ProcessEnv } = {},
): Settings<N> {
  const env = opts.env ?? process.env;
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const def = OPTIONS[name];
    const raw = argv[name] ?? fromEnv(def.type, env[envName(name)]) ?? opts.defaults?.[name] ?? ('default' in def ? def.default : undefined);
    const r = def.schema.safeParse(raw);
    if (!r.success) {
      const why = r.error.issues[0]?.message ?? 'invalid value';
      throw new JfeError('JFE_ERR_CONFIG_INVALID', `invalid --${flagName(name)} (${envName(name)}): ${why}`);
    }
    out[name] = r.data;
  }
  return Object.freeze(out) as Settings<N>;
}

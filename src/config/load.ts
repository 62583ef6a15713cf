// SPDX-License-Identifier: MIT
// Validates the options a command uses, once, into a frozen object. Each value
// comes from the first source that has it: flag, JFE_ variable, --config file,
// the command's default, the table's default. Every source goes through the
// same schema; an error names the setting as that source spells it, and where
// it came from (file:line for the file).
import { JfeError } from '../errors';
import { type ConfigFile, readConfigFile } from './file';
import { OPTIONS, type OptionName, type OptionValue, envName, flagName } from './options';

function toBoolean(v: string): unknown {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off|)$/i.test(v)) return false;
  return v;
}

/** A string from the environment or the file, typed as a flag of the same option would be. */
function fromText(type: 'string' | 'number' | 'boolean', v: string | undefined): unknown {
  if (v === undefined) return undefined;
  return type === 'boolean' ? toBoolean(v) : v;
}

export type Settings<N extends OptionName> = { readonly [K in N]: OptionValue<K> };

export type SettingSource = { kind: 'flag' } | { kind: 'env' } | { kind: 'file'; path: string; line: number } | { kind: 'default' };

/** "invalid --ports (command line)", "invalid JFE_PORTS (environment)", "invalid ports (/etc/jfe/jfe.yaml:3)". */
export function describeSource(name: OptionName, src: SettingSource): string {
  switch (src.kind) {
    case 'flag':
      return `--${flagName(name)} (command line)`;
    case 'env':
      return `${envName(name)} (environment)`;
    case 'file':
      return `${name} (${src.path}:${src.line})`;
    case 'default':
      return `default of --${flagName(name)}`;
  }
}

function check(name: OptionName, raw: unknown, src: SettingSource): unknown {
  const r = OPTIONS[name].schema.safeParse(raw);
  if (r.success) return r.data;
  const why = r.error.issues[0]?.message ?? 'invalid value';
  throw new JfeError('JFE_ERR_CONFIG_INVALID', `invalid ${describeSource(name, src)}: ${why}`);
}

/** The config file named by --config or JFE_CONFIG, read and checked whole (every key, not only this command's). */
export function configFileOf(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): ConfigFile | null {
  const fromFlag = argv.config;
  const p = fromFlag ?? env[envName('config')];
  if (p === undefined) return null;
  const file = readConfigFile(check('config', p, fromFlag !== undefined ? { kind: 'flag' } : { kind: 'env' }) as string);
  for (const [name, v] of file.values) check(name, fromText(OPTIONS[name].type, v.raw), { kind: 'file', path: file.path, line: v.line });
  return file;
}

export interface LoadOptions<N extends OptionName> {
  defaults?: Partial<Record<N, unknown>>;
  env?: NodeJS.ProcessEnv;
}

/**
 * Validates `names` from flag > JFE_ environment > --config file > command
 * default > table default. Throws JFE_ERR_CONFIG_INVALID before anything is
 * touched.
 */
export function loadSettings<N extends OptionName>(argv: Record<string, unknown>, names: readonly N[], opts: LoadOptions<N> = {}): Settings<N> {
  const env = opts.env ?? process.env;
  const file = configFileOf(argv, env);
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const def = OPTIONS[name];
    const fileValue = file?.values.get(name);
    let raw: unknown;
    let src: SettingSource;
    if (argv[name] !== undefined) [raw, src] = [argv[name], { kind: 'flag' }];
    else if (env[envName(name)] !== undefined) [raw, src] = [fromText(def.type, env[envName(name)]), { kind: 'env' }];
    else if (file && fileValue) [raw, src] = [fromText(def.type, fileValue.raw), { kind: 'file', path: file.path, line: fileValue.line }];
    else [raw, src] = [opts.defaults?.[name] ?? ('default' in def ? def.default : undefined), { kind: 'default' }];
    out[name] = check(name, raw, src);
  }
  return Object.freeze(out) as Settings<N>;
}

// SPDX-License-Identifier: MIT
// Every setting of jfe, once: its flag, JFE_ environment variable and config
// key (both derived from the name), default, help text and validation.
import { z } from 'zod';
import { parsePortSet } from './ports';

export interface OptionDef<T> {
  type: 'string' | 'number' | 'boolean';
  describe: string;
  default?: string | number | boolean;
  /** Test-only knobs: real options, kept out of --help. */
  hidden?: boolean;
  alias?: string;
  schema: z.ZodType<T>;
}

function def<T>(d: OptionDef<T>): OptionDef<T> {
  return d;
}

const u32 = (what: string) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^0x[0-9a-f]+$/i.test(v.trim()) ? parseInt(v, 16) : /^\d+$/.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) {
      ctx.addIssue({ code: 'custom', message: `${what} must be an integer from 1 to 4294967295 (decimal or 0x hex), got "${v}"` });
      return z.NEVER;
    }
    return n;
  });

const portSpec = (allowEmpty: boolean) =>
  z.string().transform((v, ctx) => {
    try {
      parsePortSet(v, allowEmpty);
      return v;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const absPath = z.string().refine((v) => v.startsWith('/'), { message: 'must be an absolute path' });

export const OPTIONS = {
  netns: def({
    type: 'string',
    describe: 'network namespace to act on, as a file (/run/netns/NAME, /proc/PID/ns/net); default: the current one',
    schema: absPath.optional(),
  }),
  pinDir: def({
    type: 'string',
    describe: 'bpffs directory for pinned objects (mounted when missing)',
    default: '/sys/fs/bpf/jfe',
    schema: absPath,
  }),
  runDir: def({
    type: 'string',
    describe: 'directory for the lock and the record of routing changes',
    default: '/run/jfe',
    schema: absPath,
  }),
  ports: def({
    type: 'string',
    describe: 'TCP ports to steer: ranges and ports, e.g. "23-65535" or "80,443,8000-8999"',
    default: '23-65535',
    schema: portSpec(false),
  }),
  excludePorts: def({
    type: 'string',
    describe: 'ports never to steer, e.g. "25,8080"',
    default: '',
    schema: portSpec(true),
  }),
  mark: def({
    type: 'string',
    describe: 'firewall mark of upstream connections and their replies',
    default: '0x4a4645',
    schema: u32('mark'),
  }),
  table: def({
    type: 'string',
    describe: 'routing table that delivers marked replies locally',
    default: '4645',
    schema: u32('table'),
  }),
  rulePriority: def({
    type: 'string',
    describe: 'priority of the fwmark routing rule (before main, 32766)',
    default: '4645',
    schema: u32('rule priority').refine((n) => n < 32766, { message: 'rule priority must be below 32766 (the main table)' }),
  }),
  json: def({
    type: 'boolean',
    describe: 'machine-readable output',
    default: false,
    schema: z.boolean(),
  }),
  logLevel: def({
    type: 'string',
    describe: 'log level: debug, info, warn, error, silent',
    default: 'info',
    schema: z.enum(['debug', 'info', 'warn', 'error', 'silent']),
  }),
} as const;

export type OptionName = keyof typeof OPTIONS;
export type OptionValue<N extends OptionName> = z.output<(typeof OPTIONS)[N]['schema']>;

export function flagName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function envName(name: string): string {
  return `JFE_${flagName(name).replace(/-/g, '_').toUpperCase()}`;
}

// SPDX-License-Identifier: MIT
// The routing that original-source upstream needs, per namespace: replies
// marked M are delivered locally through table T (DESIGN.md, "Kernel facts").
// Every change is recorded before it is applied, so detach removes exactly
// what attach added and nothing an operator set up.
import fs from 'node:fs';
import path from 'node:path';
import { JfeError } from '../errors';
import type { Logger } from '../log';
import type { CommandResult } from './netns';

export interface RoutingOptions {
  mark: number;
  table: number;
  priority: number;
}

export type RoutingChange =
  | { kind: 'rule'; family: 4 | 6; mark: number; table: number; priority: number }
  | { kind: 'route'; family: 4 | 6; table: number }
  | { kind: 'sysctl'; key: SysctlKey; previous: string };

/**
 * tcp_fwmark_accept: the service's socket inherits the mark of our SYN, so
 * its replies are marked. fwmark_reflect: so are the kernel's own replies
 * with no socket (the RST of a closed port, ICMP errors); without it the RST
 * for a service that just stopped goes out to the real client and our
 * upstream connect hangs instead of being refused.
 * tcp_tw_reuse=1 (IPv4 and IPv6 alike; the default, 2, is for loopback
 * addresses only): an upstream connection whose client closed first leaves
 * its TIME_WAIT on the agent's side, on (client address, source port), and a
 * client that opens connections fast used up every source port that way
 * (EADDRINUSE, the client reset). With it, and SO_REUSEADDR on the upstream
 * socket, such a port is taken again when TCP timestamps show the new
 * connection apart from the old one, as for any outgoing connection.
 */
const SYSCTLS = ['net.ipv4.tcp_fwmark_accept', 'net.ipv4.fwmark_reflect', 'net.ipv6.fwmark_reflect', 'net.ipv4.tcp_tw_reuse'] as const;
type SysctlKey = (typeof SYSCTLS)[number];

const sysctlPath = (key: SysctlKey): string => `/proc/sys/${key.replace(/\./g, '/')}`;

/** Runs a command (`ip …`, `sh -c …`) in the target namespace. */
export type Run = (argv: string[]) => CommandResult;

function describe(c: RoutingChange): string {
  switch (c.kind) {
    case 'rule':
      return `ip -${c.family} rule fwmark 0x${c.mark.toString(16)} lookup ${c.table} pref ${c.priority}`;
    case 'route':
      return `ip -${c.family} route local ${c.family === 4 ? '0.0.0.0/0' : '::/0'} dev lo table ${c.table}`;
    case 'sysctl':
      return `sysctl ${c.key}=1`;
  }
}

function mustRun(run: Run, argv: string[], what: string): CommandResult {
  const r = run(argv);
  if (r.status !== 0) throw new JfeError('JFE_ERR_ROUTING', `${what}: ${argv.join(' ')} failed: ${r.stderr || `exit ${r.status}`}`);
  return r;
}

function parseJson(r: CommandResult): unknown[] {
  if (r.status !== 0 || r.stdout.trim() === '') return [];
  const v: unknown = JSON.parse(r.stdout);
  return Array.isArray(v) ? v : [];
}

function isPresent(run: Run, c: RoutingChange): boolean {
  switch (c.kind) {
    case 'rule':
      return parseJson(run(['ip', '-j', `-${c.family}`, 'rule', 'show'])).some((x) => {
        const r = x as { priority?: number; fwmark?: string; table?: string };
        return r.priority === c.priority && r.fwmark !== undefined && Number(r.fwmark) === c.mark && r.table === String(c.table);
      });
    case 'route':
      // A missing table is an error to `ip`, and means: not present.
      return parseJson(run(['ip', '-j', `-${c.family}`, 'route', 'show', 'table', String(c.table)])).some((x) => {
        const r = x as { type?: string; dst?: string; dev?: string };
        return r.type === 'local' && r.dst === 'default' && r.dev === 'lo';
      });
    case 'sysctl':
      return readSysctl(run, c.key) === '1';
  }
}

function readSysctl(run: Run, key: SysctlKey): string {
  return mustRun(run, ['cat', sysctlPath(key)], `read ${key}`).stdout.trim();
}

function apply(run: Run, c: RoutingChange): void {
  switch (c.kind) {
    case 'rule':
      mustRun(run, ['ip', `-${c.family}`, 'rule', 'add', 'fwmark', String(c.mark), 'lookup', String(c.table), 'pref', String(c.priority)], 'add routing rule');
      return;
    case 'route':
      mustRun(run, ['ip', `-${c.family}`, 'route', 'add', 'local', c.family === 4 ? '0.0.0.0/0' : '::/0', 'dev', 'lo', 'table', String(c.table)], 'add local route');
      return;
    case 'sysctl':
      mustRun(run, ['sh', '-c', `echo 1 > ${sysctlPath(c.key)}`], `set ${c.key}`);
      return;
  }
}

function revert(run: Run, c: RoutingChange): void {
  switch (c.kind) {
    case 'rule':
      mustRun(run, ['ip', `-${c.family}`, 'rule', 'del', 'fwmark', String(c.mark), 'lookup', String(c.table), 'pref', String(c.priority)], 'remove routing rule');
      return;
    case 'route':
      mustRun(run, ['ip', `-${c.family}`, 'route', 'del', 'local', c.family === 4 ? '0.0.0.0/0' : '::/0', 'dev', 'lo', 'table', String(c.table)], 'remove local route');
      return;
    case 'sysctl':
      mustRun(run, ['sh', '-c', `echo ${Number(c.previous) || 0} > ${sysctlPath(c.key)}`], `restore ${c.key}`);
      return;
  }
}

export function readRecord(recordPath: string): RoutingChange[] {
  try {
    return JSON.parse(fs.readFileSync(recordPath, 'utf8')) as RoutingChange[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new JfeError('JFE_ERR_ROUTING', `routing record ${recordPath} unreadable: ${(err as Error).message}`, { cause: err });
  }
}

function writeRecord(recordPath: string, changes: RoutingChange[]): void {
  fs.mkdirSync(path.dirname(recordPath), { recursive: true, mode: 0o700 });
  const tmp = `${recordPath}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(changes, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, recordPath);
}

export function wantedChanges(opts: RoutingOptions, ipv6: boolean): RoutingChange[] {
  const families: (4 | 6)[] = ipv6 ? [4, 6] : [4];
  return [
    ...SYSCTLS.filter((key) => ipv6 || !key.startsWith('net.ipv6.')).map((key): RoutingChange => ({ kind: 'sysctl', key, previous: '' })),
    ...families.flatMap((family): RoutingChange[] => [
      { kind: 'rule', family, mark: opts.mark, table: opts.table, priority: opts.priority },
      { kind: 'route', family, table: opts.table },
    ]),
  ];
}

function sameChange(a: RoutingChange, b: RoutingChange): boolean {
  return describe(a) === describe(b);
}

/**
 * Adds what is missing. A change that is already in place and not in our
 * record was made by someone else: it is used and left alone at detach.
 * Returns the changes applied now.
 */
export function ensureRouting(run: Run, opts: RoutingOptions, recordPath: string, ipv6: boolean, log: Logger): string[] {
  const record = readRecord(recordPath);
  const applied: string[] = [];
  for (const want of wantedChanges(opts, ipv6)) {
    if (isPresent(run, want)) continue;
    const change = want.kind === 'sysctl' ? { ...want, previous: readSysctl(run, want.key) } : want;
    if (!record.some((r) => sameChange(r, change))) {
      record.push(change);
      writeRecord(recordPath, record);
    }
    apply(run, change);
    applied.push(describe(change));
    log.info({ change: describe(change) }, 'routing added');
  }
  return applied;
}

/** Reverts what the record lists, newest first, and removes the record. */
export function removeRouting(run: Run, recordPath: string, log: Logger): string[] {
  const record = readRecord(recordPath);
  const removed: string[] = [];
  for (const change of [...record].reverse()) {
    if (!isPresent(run, change)) continue;
    revert(run, change);
    removed.push(describe(change));
    log.info({ change: describe(change) }, 'routing removed');
  }
  fs.rmSync(recordPath, { force: true });
  return removed;
}

/** What of the wanted routing is in place now, for status. */
export function routingState(run: Run, opts: RoutingOptions, ipv6: boolean): { change: string; present: boolean }[] {
  return wantedChanges(opts, ipv6).map((c) => ({ change: describe(c), present: isPresent(run, c) }));
}

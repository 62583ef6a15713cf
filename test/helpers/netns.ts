// SPDX-License-Identifier: MIT
// A throwaway test world: a client and a server network namespace joined by a
// veth pair (IPv4 and IPv6), a bpffs mounted in a temp dir (pins made under
// /sys/fs/bpf do not survive `ip netns exec`, DESIGN.md), its own pin and run
// dirs, and its own fwmark/table. Everything is removed in reverse order.
import fs from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { Cleanup } from './cleanup';
import { mustRun, runSync } from './spawn';

export const TEST_PREFIX = 'jfe-t-';

export interface Ns {
  name: string;
  path: string;
  fd: number;
}

export interface World {
  id: string;
  cli: Ns;
  srv: Ns;
  cli4: string;
  srv4: string;
  cli6: string;
  srv6: string;
  tmp: string;
  pinDir: string;
  runDir: string;
  mark: number;
  table: number;
  priority: number;
  /** The flags that point jfe-bpf and jfe run at this world's server namespace. */
  steeringArgs: string[];
  cleanup: Cleanup;
  /** Runs a command inside a namespace of this world. */
  exec(ns: Ns, argv: string[]): string;
}

let seq = 0;

function ip(args: string[]): void {
  mustRun('ip', args);
}

function addNetns(name: string, cleanup: Cleanup): Ns {
  ip(['netns', 'add', name]);
  cleanup.add(`delete netns ${name}`, () => ip(['netns', 'del', name]));
  const p = `/run/netns/${name}`;
  const fd = fs.openSync(p, 'r');
  cleanup.add(`close ${p}`, () => fs.closeSync(fd));
  ip(['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, path: p, fd };
}

/** Builds a world and registers its teardown with the test, which runs even on failure. */
export function createWorld(t: TestContext): World {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const n = ++seq;
  const id = `${TEST_PREFIX}${process.pid}-${n}`;
  const cli = addNetns(`${id}-c`, cleanup);
  const srv = addNetns(`${id}-s`, cleanup);

  // veth names are at most 15 characters.
  const tag = `${process.pid.toString(36)}${n.toString(36)}`.slice(-9);
  const [vc, vs] = [`jtc${tag}`, `jts${tag}`];
  ip(['link', 'add', vc, 'netns', cli.name, 'type', 'veth', 'peer', 'name', vs, 'netns', srv.name]);
  const [cli4, srv4, cli6, srv6] = ['10.77.0.1', '10.77.0.2', 'fd77::1', 'fd77::2'];
  for (const [ns, dev, a4, a6] of [
    [cli, vc, cli4, cli6],
    [srv, vs, srv4, srv6],
  ] as const) {
    ip(['-n', ns.name, 'addr', 'add', `${a4}/24`, 'dev', dev]);
    ip(['-n', ns.name, '-6', 'addr', 'add', `${a6}/64`, 'dev', dev, 'nodad']);
    ip(['-n', ns.name, 'link', 'set', dev, 'up']);
  }

  const tmp = fs.mkdtempSync(path.join('/run', `${id}-`));
  cleanup.add(`remove ${tmp}`, () => fs.rmSync(tmp, { recursive: true, force: true }));
  const pinDir = path.join(tmp, 'bpffs');
  fs.mkdirSync(pinDir);
  mustRun('mount', ['-t', 'bpf', 'bpf', pinDir]);
  cleanup.add(`unmount ${pinDir}`, () => mustRun('umount', [pinDir]));
  const runDir = path.join(tmp, 'run');

  const mark = 0x4a460000 + ((process.pid * 64 + n) & 0xffff);
  const table = 10000 + ((process.pid * 64 + n) % 20000);
  const priority = 1000 + n;
  const steeringArgs = [
    '--netns', srv.path, '--pin-dir', pinDir, '--run-dir', runDir,
    '--mark', `0x${mark.toString(16)}`, '--table', String(table), '--rule-priority', String(priority),
  ];
  return {
    id, cli, srv, cli4, srv4, cli6, srv6, tmp, pinDir, runDir, mark, table, priority, steeringArgs, cleanup,
    exec(ns, argv) {
      return mustRun('ip', ['netns', 'exec', ns.name, ...argv]);
    },
  };
}

/** Test namespaces left behind by any run (the leak check). */
export function leakedNetns(): string[] {
  const r = runSync('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(TEST_PREFIX));
}

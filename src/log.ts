// SPDX-License-Identifier: MIT
// The logger shape every module receives, and the one root logger (pino,
// JSON lines, no transports or worker threads inside the privileged agent).
import pino from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

type LogFn = (obj: object, msg?: string) => void;

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: object): Logger;
  isLevelEnabled(level: string): boolean;
}

/** JSON lines to `fd` (1 for the agent, which journald collects; 2 for CLIs). */
export function createLogger(level: LogLevel, fd: 1 | 2 = 1): Logger {
  // pino children copy the level when made: keep them, so setLogLevel (SIGHUP) reaches all.
  const children: WeakRef<pino.Logger>[] = [];
  const root = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      onChild: (child) => {
        children.push(new WeakRef(child));
        if (children.length % 256 === 0) prune(children);
      },
    },
    pino.destination({ fd, sync: true }),
  );
  families.set(root, children);
  return root;
}

const families = new WeakMap<object, WeakRef<pino.Logger>[]>();

function prune(refs: WeakRef<pino.Logger>[]): void {
  const alive = refs.filter((r) => r.deref() !== undefined);
  refs.splice(0, refs.length, ...alive);
}

/** Changes the level of a logger made by createLogger and of every child made from it. */
export function setLogLevel(root: Logger, level: LogLevel): void {
  (root as pino.Logger).level = level;
  for (const ref of families.get(root) ?? []) {
    const child = ref.deref();
    if (child) child.level = level;
  }
}

/** A logger that keeps nothing, for code paths and tests that need none. */
export const silentLogger: Logger = pino({ level: 'silent' });

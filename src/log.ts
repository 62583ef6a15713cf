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
  return pino(
    { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd, sync: true }),
  );
}

/** A logger that keeps nothing, for code paths and tests that need none. */
export const silentLogger: Logger = pino({ level: 'silent' });

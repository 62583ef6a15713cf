// SPDX-License-Identifier: MIT
// Shared by the certs tests: a throwaway state directory per test, removed
// after it, and a logger that keeps lines for assertions.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { Logger } from '../../../src/log';

/** A fresh directory under os.tmpdir(), removed when the test ends. */
export function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-certs-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

export interface BufferLogger extends Logger {
  lines: LogLine[];
}

/** Keeps every line (child bindings merged), like tubular's log.Buffer. */
export function bufferLogger(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): BufferLogger {
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj: { ...bindings, ...obj }, msg });
    };
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more: object) => bufferLogger(lines, { ...bindings, ...more }),
    isLevelEnabled: () => true,
  };
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function modeOf(p: string): number {
  return fs.statSync(p).mode & 0o777;
}

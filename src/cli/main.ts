// SPDX-License-Identifier: MIT
// The top of both bins: runs a yargs parser, prints "Error: …" exactly once,
// and maps outcomes to exit codes (0 ok, 1 error, 2 usage, 3 not attached).
import type { Argv } from 'yargs';
import { isJfeError } from '../errors';

export const EXIT = { ok: 0, error: 1, usage: 2, notAttached: 3 } as const;

/** Set by a command handler; yargs itself only knows success or failure. */
let exitCode: number = EXIT.ok;
export function setExitCode(code: number): void {
  exitCode = code;
}

/** yargs' own validation failure; thrown so that no handler runs after it. */
class UsageError extends Error {}

export async function main(parser: Argv, argv: string[]): Promise<number> {
  parser
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  try {
    await parser.parseAsync(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`Error: ${err.message}\nRun with --help for usage.\n`);
      return EXIT.usage;
    }
    if (isJfeError(err, 'JFE_ERR_CONFIG_INVALID') || isJfeError(err, 'JFE_ERR_PORTS_INVALID')) {
      process.stderr.write(`Error: ${err.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`Error: ${err instanceof Error ? err.message : String(err)}\n`);
    if (!isJfeError(err) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return EXIT.error;
  }
  return exitCode;
}

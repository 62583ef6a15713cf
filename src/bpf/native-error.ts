// SPDX-License-Identifier: MIT
// Wraps a native (errno) failure once, at the bpf/ boundary, into a JfeError
// whose message says what failed and what to do about it.
import os from 'node:os';
import { JfeError, type JfeErrorCode, isSystemError } from '../errors';
import { errnoHint } from './errno-hints';

export function wrapNative(err: unknown, code: JfeErrorCode, what: string, pinDir?: string): JfeError {
  if (err instanceof JfeError) return err;
  if (!isSystemError(err)) return new JfeError(code, `${what}: ${String(err)}`, { cause: err });
  const hint = errnoHint(err, { kernelRelease: os.release(), ...(pinDir !== undefined ? { pinDir } : {}) });
  const wrapped = new JfeError(hint?.startsWith('run as root') ? 'JFE_ERR_NOT_ROOT' : code, `${what}: ${hint ?? err.message}`, { cause: err });
  return wrapped;
}

/** Calls a native function; its error becomes a JfeError with a hint. */
export function callNative<T>(code: JfeErrorCode, what: string, fn: () => T, pinDir?: string): T {
  try {
    return fn();
  } catch (err) {
    throw wrapNative(err, code, what, pinDir);
  }
}

// SPDX-License-Identifier: MIT
// The one error type of jfe: a stable code that callers and tests branch on,
// and the cause it wraps. Printed as "Error: …" only at the CLI top.

export type JfeErrorCode =
  | 'JFE_ERR_CONFIG_INVALID'
  | 'JFE_ERR_PORTS_INVALID'
  | 'JFE_ERR_NOT_ROOT'
  | 'JFE_ERR_NATIVE_MISSING'
  | 'JFE_ERR_NETNS_NOT_FOUND'
  | 'JFE_ERR_BPFFS'
  | 'JFE_ERR_BPF_LOAD'
  | 'JFE_ERR_BPF_ATTACH'
  | 'JFE_ERR_BPF_DETACH'
  | 'JFE_ERR_BPF_NOT_ATTACHED'
  | 'JFE_ERR_BPF_MAP'
  | 'JFE_ERR_BPF_MAP_MISMATCH'
  | 'JFE_ERR_BPF_LOCKED'
  | 'JFE_ERR_ROUTING'
  | 'JFE_ERR_LISTEN'
  | 'JFE_ERR_UPSTREAM'
  | 'JFE_ERR_HELLO_TOO_LARGE'
  | 'JFE_ERR_CERT'
  | 'JFE_ERR_STATE'
  | 'JFE_ERR_TAKEOVER'
  | 'JFE_ERR_NOT_RUNNING'
  | 'JFE_ERR_METRICS_LISTEN';

export class JfeError extends Error {
  readonly code: JfeErrorCode;

  constructor(code: JfeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JfeError';
    this.code = code;
  }
}

export function isJfeError(err: unknown, code?: JfeErrorCode): err is JfeError {
  return err instanceof JfeError && (code === undefined || err.code === code);
}

/** An error as raised by Node or by the native addon: errno name in `code`. */
export interface SystemError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
  /** libbpf and verifier output captured by the addon. */
  log?: string;
}

export function isSystemError(err: unknown, code?: string): err is SystemError {
  return err instanceof Error && (code === undefined || (err as SystemError).code === code);
}

// SPDX-License-Identifier: MIT
// What the agent asks of an ACME challenge responder (implemented in certs/),
// and the pure matcher for an http-01 validation request on port 80.
import type { SecureContext } from 'node:tls';

export interface ChallengeResponder {
  /** The key authorization for a pending http-01 token, or null (then the request goes to the service). */
  http01(token: string): string | null;
  /** The RFC 8737 challenge certificate for a pending tls-alpn-01 name, or null. */
  tlsAlpn01(servername: string): SecureContext | null;
}

export const ACME_TLS_ALPN = 'acme-tls/1';
export const HTTP01_PORT = 80;
export const TLS_ALPN01_PORT = 443;

/** Every validation request starts so; a first read that is no prefix of it, and does not start with it, is not one. */
export const HTTP01_REQUEST_PREFIX: Buffer = Buffer.from('GET /.well-known/acme-challenge/', 'latin1');
const PREFIX = HTTP01_REQUEST_PREFIX;
/** Tokens are base64url (RFC 8555 §8.3: at least 128 bits); anything longer or odder is not ours. */
const TOKEN_RE = /^[A-Za-z0-9_-]{1,128}$/;
export const MAX_REQUEST_LINE = PREFIX.length + 128 + ' HTTP/1.1\r\n'.length;

export type Http01Match = { kind: 'need-more' } | { kind: 'no' } | { kind: 'token'; token: string };

/**
 * Is `data` (the first bytes a client sent on port 80) an http-01 validation
 * request? Only the request line is read: "GET /.well-known/acme-challenge/
 * <token> HTTP/1.x". Anything else is 'no', and the bytes go to the service
 * untouched.
 */
export function matchHttp01(data: Buffer): Http01Match {
  const n = Math.min(data.length, PREFIX.length);
  if (data.subarray(0, n).compare(PREFIX.subarray(0, n)) !== 0) return { kind: 'no' };
  const eol = data.indexOf(0x0a, PREFIX.length);
  if (eol < 0) return data.length < MAX_REQUEST_LINE ? { kind: 'need-more' } : { kind: 'no' };
  const line = data.subarray(PREFIX.length, eol).toString('latin1').replace(/\r$/, '');
  const m = /^(\S+) HTTP\/1\.[01]$/.exec(line);
  if (!m || m[1] === undefined || !TOKEN_RE.test(m[1])) return { kind: 'no' };
  return { kind: 'token', token: m[1] };
}

/** The whole answer to a validation request: the key authorization, then close. */
export function http01Response(keyAuthorization: string): Buffer {
  const body = Buffer.from(keyAuthorization, 'latin1');
  const head = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

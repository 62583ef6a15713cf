// SPDX-License-Identifier: MIT
// Does a service's first answer say it speaks TLS? A pure, bounded check over
// the bytes a service sent back after it was sent a ClientHello (the probe) or
// a client's first plaintext (the re-check after termination), with the same
// three outcomes as the ClientHello parser. No I/O; the caller keeps the bytes.
//
// Only what a TLS server sends first is TLS: a ServerHello (HelloRetryRequest
// included) or an alert. Anything else, and anything that repeats what was sent
// (an echo service sends a ClientHello back), is not.

export type TlsAnswer =
  | 'need-more' // a prefix of something that may still be a TLS server's first answer
  | 'tls' // a complete ServerHello, or an alert record
  | 'not-tls'; // can never become one, or repeats the bytes sent

/**
 * Bound on the input read for one answer, to the end of its ServerHello: 16 KiB,
 * one full record. A ServerHello is 90 B to about 1.3 KB (an X25519MLKEM768 key
 * share is 1,120 B; HelloRetryRequest cookies and TLS 1.2's SCT lists are a few
 * hundred bytes in deployed servers), so the bound only cuts off answers that are
 * not TLS, and keeps a probe's buffering at a small, fixed cost.
 */
export const MAX_ANSWER_BYTES = 16 * 1024;

/**
 * Bound on the records a ServerHello may span: 32. Servers fragment at 512 bytes
 * at the least (max_fragment_length's smallest, OpenSSL's smallest
 * max_send_fragment), so 32 records hold MAX_ANSWER_BYTES; the bound keeps each
 * call's walk short however finely a hostile service cuts its records.
 */
export const MAX_ANSWER_RECORDS = 32;

/**
 * Of the bytes sent, only this many at the start are compared with the answer:
 * a caller may keep just this prefix. A TLS server's first answer differs from a
 * ClientHello within 6 bytes (the record type, or the handshake type), and an echo
 * repeats everything, so 64 bytes tell the two apart with room to spare.
 */
export const SENT_PREFIX_BYTES = 64;

const CONTENT_TYPE_ALERT = 21;
const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_SERVER_HELLO = 2;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
/** legacy_record_version and legacy_version: 0x0300 (SSL 3.0) to 0x0304; servers send 0x0301..0x0303. */
const MAX_MINOR_VERSION = 4;
/** RFC 8446 5.1: plaintext records (a server's first records are) carry at most 2^14 bytes. */
const MAX_PLAINTEXT_RECORD_BYTES = 16384;
const ALERT_BYTES = 2;
const ALERT_WARNING = 1;
const ALERT_FATAL = 2;
/** legacy_version, random, an empty session id, cipher_suite, compression method. */
const MIN_SERVER_HELLO_BODY = 2 + 32 + 1 + 2 + 1;
const MAX_SESSION_ID = 32;

/*
 * Wire format (RFC 8446 sections 4, 4.1.3, 5.1 and 6; RFC 5246 sections 6.2.1,
 * 7.2 and 7.4.1.3). All integers big-endian. "<a..b>" is a vector whose length
 * prefix is as wide as b needs.
 *
 * TLSPlaintext record:
 *   +0  content_type           1   22 = handshake, 21 = alert; anything else: not TLS
 *   +1  legacy_record_version  2   major 0x03, minor 0x00..0x04; else: not TLS
 *   +3  length                 2   handshake: 1 .. 2^14; alert: exactly 2
 *   +5  fragment               length bytes
 *
 * Alert (the whole answer; a server refuses a hello, e.g. an unknown SNI, with one):
 *   level                      1   1 = warning, 2 = fatal; else: not TLS
 *   description                1   any (the registry grows)
 *
 * Handshake stream (fragments of consecutive handshake records concatenated; a
 * server may split its first message over several records):
 *   +0  msg_type               1   2 = server_hello; a HelloRetryRequest is a
 *                                  server_hello whose random is SHA-256("HelloRetryRequest")
 *                                  and is accepted like any other; else: not TLS
 *   +1  length                 3   38 .. (what fits in MAX_ANSWER_BYTES and MAX_ANSWER_RECORDS)
 *   +4  ServerHello body:
 *         legacy_version              2   major 0x03, minor 0x00..0x04
 *         random                      32
 *         legacy_session_id_echo      <0..32>      1-byte length
 *         cipher_suite                2
 *         legacy_compression_method   1
 *         extensions                  <0..2^16-1>  2-byte length; may be absent entirely
 *                                                  (TLS <= 1.2), else fills the body
 *                                                  exactly, each one
 *                                                  extension_type 2 | extension_data <0..2^16-1>
 *
 * Decisions: the first three bytes are checked as they arrive, so plaintext is
 * "not TLS" at once; "need more" is returned for every prefix that can still
 * become a complete ServerHello or alert, so a reply that TCP split, or that
 * stops short of a whole ServerHello (a service that sends a truncated record
 * and closes), is never taken for TLS. Bytes after the ServerHello (the rest of
 * the server's flight) are not looked at. An answer whose bytes up to the end
 * of that ServerHello or alert equal what was sent (to the shorter length of
 * the two, at most SENT_PREFIX_BYTES) is an echo, never TLS: a TLS server's
 * first answer differs from a ClientHello at byte 5 at the latest, and a client
 * whose plaintext looks like an alert, sent to a service that echoes, must not
 * make that service look like a TLS server.
 */

/**
 * Classify the bytes a service answered so far. `sent`: what was sent to it
 * before it answered (the ClientHello, or the client's first plaintext; empty
 * when nothing was); only its first SENT_PREFIX_BYTES are read. Call again with
 * the longer buffer after each read while it returns need-more. Never throws and
 * never reads past `answer.length`; allocates only when the ServerHello spans
 * several records.
 */
export function tlsAnswer(answer: Buffer, sent: Buffer): TlsAnswer {
  const first = recordLength(answer, 0);
  if (typeof first === 'string') return first;
  if (answer[0] === CONTENT_TYPE_ALERT) {
    if (first !== ALERT_BYTES) return 'not-tls';
    if (answer.length <= RECORD_HEADER_BYTES) return 'need-more';
    const level = answer[RECORD_HEADER_BYTES];
    if (level !== ALERT_WARNING && level !== ALERT_FATAL) return 'not-tls';
    if (answer.length < RECORD_HEADER_BYTES + ALERT_BYTES) return 'need-more';
    return notEcho(answer, RECORD_HEADER_BYTES + ALERT_BYTES, sent);
  }

  // The handshake header, checked a byte at a time where it matters: an echoed
  // ClientHello fails on its msg_type, the first byte of the first fragment.
  const msgType = handshakeBytes(answer, 1);
  if (typeof msgType === 'string') return msgType;
  if (msgType.bytes[0] !== HANDSHAKE_SERVER_HELLO) return 'not-tls';
  const header = handshakeBytes(answer, HANDSHAKE_HEADER_BYTES);
  if (typeof header === 'string') return header;
  const bodyLength = ((header.bytes[1] ?? 0) << 16) | u16(header.bytes, 2);
  if (bodyLength < MIN_SERVER_HELLO_BODY || bodyLength > MAX_ANSWER_BYTES) return 'not-tls';
  const message = handshakeBytes(answer, HANDSHAKE_HEADER_BYTES + bodyLength);
  if (typeof message === 'string') return message;
  if (!validServerHelloBody(message.bytes, HANDSHAKE_HEADER_BYTES, message.bytes.length)) return 'not-tls';
  return notEcho(answer, message.end, sent);
}

/** 'tls', unless answer[0, end) repeats what was sent (compared over the shorter of the two). */
function notEcho(answer: Buffer, end: number, sent: Buffer): TlsAnswer {
  const n = Math.min(end, sent.length, SENT_PREFIX_BYTES);
  if (n > 0 && answer.compare(sent, 0, n, 0, n) === 0) return 'not-tls';
  return 'tls';
}

/**
 * The fragment length of the record at `off`, checking each header byte as it
 * arrives (a later record must be a handshake record, as the one at 0 is).
 */
function recordLength(b: Buffer, off: number): number | TlsAnswer {
  const n = b.length;
  if (off >= n) return 'need-more';
  const type = b[off];
  if (off === 0 ? type !== CONTENT_TYPE_HANDSHAKE && type !== CONTENT_TYPE_ALERT : type !== CONTENT_TYPE_HANDSHAKE) return 'not-tls';
  if (off + 1 >= n) return 'need-more';
  if (b[off + 1] !== 0x03) return 'not-tls';
  if (off + 2 >= n) return 'need-more';
  if ((b[off + 2] ?? 0) > MAX_MINOR_VERSION) return 'not-tls';
  if (off + RECORD_HEADER_BYTES > n) return 'need-more';
  const len = u16(b, off + 3);
  // A zero-length handshake fragment is forbidden (RFC 8446 5.1); an alert's length is checked by the caller.
  if (len === 0 || len > MAX_PLAINTEXT_RECORD_BYTES) return 'not-tls';
  return len;
}

/**
 * The first `want` bytes of the handshake stream that starts in the record at 0:
 * a view when one record holds them, else a copy; `end` is the offset in `b` just
 * after the last of them.
 */
function handshakeBytes(b: Buffer, want: number): { bytes: Buffer; end: number } | TlsAnswer {
  let off = 0;
  let got = 0; // handshake bytes in the records before the one at off
  for (let records = 1; ; records++) {
    if (records > MAX_ANSWER_RECORDS) return 'not-tls';
    const len = recordLength(b, off);
    if (typeof len === 'string') return len;
    const fragStart = off + RECORD_HEADER_BYTES;
    const need = want - got; // from this fragment
    if (need <= len) {
      const end = fragStart + need;
      if (end > MAX_ANSWER_BYTES) return 'not-tls';
      if (end > b.length) return 'need-more';
      return { bytes: got === 0 ? b.subarray(fragStart, end) : gather(b, want), end };
    }
    got += len;
    off = fragStart + len;
    if (off >= MAX_ANSWER_BYTES) return 'not-tls';
  }
}

/** Concatenates the first `want` handshake bytes of records already checked by handshakeBytes. */
function gather(b: Buffer, want: number): Buffer {
  const out = Buffer.allocUnsafe(want);
  let off = 0;
  let copied = 0;
  while (copied < want) {
    const fragStart = off + RECORD_HEADER_BYTES;
    const take = Math.min(u16(b, off + 3), want - copied);
    copied += b.copy(out, copied, fragStart, fragStart + take);
    off = fragStart + u16(b, off + 3);
  }
  return out;
}

/** The ServerHello body in b[p, end) is well formed (its structure only: the client judges the values). */
function validServerHelloBody(b: Buffer, p: number, end: number): boolean {
  if (b[p] !== 0x03 || (b[p + 1] ?? 0) > MAX_MINOR_VERSION) return false;
  p += 2 + 32;
  const sessionIdLength = b[p] ?? 0;
  if (sessionIdLength > MAX_SESSION_ID) return false;
  p += 1 + sessionIdLength + 2 + 1; // session id, cipher_suite, compression method
  if (p > end) return false;
  if (p === end) return true; // no extensions (TLS 1.2 and earlier allow this)
  if (end - p < 2 || u16(b, p) !== end - p - 2) return false;
  p += 2;
  while (p < end) {
    if (end - p < 4) return false;
    p += 4 + u16(b, p + 2);
  }
  return p === end;
}

function u16(b: Buffer, p: number): number {
  return ((b[p] ?? 0) << 8) | (b[p + 1] ?? 0);
}

// SPDX-License-Identifier: MIT
// The TLS ClientHello sniffer: a pure, bounded function over the bytes a client
// sent first. It decides "not TLS" from the first bytes, "need more" on any prefix,
// and otherwise extracts SNI, ALPN and versions. No I/O; the caller replays the bytes.

export type HelloResult =
  | { kind: 'need-more' } // a prefix of something that may still be a ClientHello
  | { kind: 'not-tls' } // the first bytes are not a TLS handshake record: plaintext protocol
  | { kind: 'invalid'; reason: HelloInvalidReason } // started as TLS but malformed, or over maxBytes
  | { kind: 'hello'; hello: ClientHello };

/** Why a hello is invalid: a closed set of fixed strings (fit for a metric label), never attacker-controlled data. */
export const HELLO_INVALID_REASONS = [
  'non-handshake record in hello',
  'bad record version',
  'too large',
  'bad record length',
  'not a client hello',
  'trailing data after hello',
  'truncated hello',
  'bad client version',
  'bad session id',
  'bad cipher suites',
  'bad compression methods',
  'truncated extensions',
  'bad extensions length',
  'truncated extension',
  'extension overflows hello',
  'duplicate server_name',
  'bad server_name',
  'duplicate alpn',
  'bad alpn',
  'duplicate supported_versions',
  'bad supported_versions',
] as const;
export type HelloInvalidReason = (typeof HELLO_INVALID_REASONS)[number];

export interface ClientHello {
  /** server_name host_name (type 0), lower-cased, trailing dot stripped; null when absent. */
  sni: string | null;
  /** ALPN protocol names in client order (bytes decoded as latin1); [] when absent. */
  alpn: string[];
  /** legacy_version (client_version), e.g. 0x0303. */
  legacyVersion: number;
  /** supported_versions in client order, GREASE values included; [] when absent. */
  supportedVersions: number[];
  /** Bytes of the input taken by the TLS records that carry the whole hello. */
  recordsLength: number;
}

/**
 * Default bound on the bytes of all records carrying one ClientHello: 64 KiB.
 * Real clients send 200 B to 2 KiB (post-quantum key shares and ECH included) and
 * rarely more than 8 KiB even with large PSK tickets; the largest well-formed hello
 * is ~128 KiB (OpenSSL's CLIENT_HELLO_MAX_LENGTH, 131396, in ssl/statem/statem_srvr.c),
 * almost all of it a full 64 KiB extension block. Four full records is generous for
 * real clients and keeps a stalled sniff at a small, fixed cost per connection.
 */
export const DEFAULT_MAX_HELLO_BYTES = 64 * 1024;

const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
/** RFC 8446 5.2: 2^14 plus the 256 bytes of expansion allowed for TLSCiphertext. */
const MAX_RECORD_BYTES = 16384 + 256;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
const SERVER_NAME_HOST_NAME = 0;
/** A DNS name is at most 253 characters in text form (255 octets on the wire). */
const MAX_HOST_NAME_CHARS = 253;

// Shared results: need-more is returned once per read on the hot path.
const NEED_MORE: HelloResult = Object.freeze({ kind: 'need-more' });
const NOT_TLS: HelloResult = Object.freeze({ kind: 'not-tls' });

function invalid(reason: HelloInvalidReason): HelloResult {
  return { kind: 'invalid', reason };
}

/*
 * Wire format (RFC 8446 sections 4, 4.1.2, 4.2, 5.1; RFC 6066 section 3; RFC 7301
 * section 3.1). All integers big-endian. "<a..b>" is a vector whose length prefix
 * is as wide as b needs (1, 2 or 3 bytes).
 *
 * TLSPlaintext record, repeated until the handshake message is complete:
 *   +0  content_type           1   22 = handshake; anything else at +0 of the input: not TLS
 *   +1  legacy_record_version  2   major byte 0x03 (minor 0x00..0x04 seen); else: not TLS
 *   +3  length                 2   1 .. 2^14(+256)
 *   +5  fragment               length bytes of the handshake stream
 *
 * The handshake stream (fragments concatenated; a header may itself be split):
 *   +0  msg_type               1   1 = client_hello
 *   +1  length                 3   body bytes
 *   +4  ClientHello body:
 *         legacy_version              2
 *         random                      32
 *         legacy_session_id           <0..32>      1-byte length
 *         cipher_suites               <2..2^16-2>  2-byte length, even
 *         legacy_compression_methods  <1..2^8-1>   1-byte length
 *         extensions                  <8..2^16-1>  2-byte length; may be absent entirely
 *                                                  (TLS <= 1.2), else fills the body exactly
 *
 * Extension:  extension_type 2 | extension_data <0..2^16-1> (2-byte length)
 *   server_name (0)          ServerNameList <1..2^16-1>:
 *                              name_type 1 | HostName <1..2^16-1> (2-byte length)
 *   alpn (16)                ProtocolNameList <2..2^16-1>:
 *                              ProtocolName <1..2^8-1> (1-byte length)
 *   supported_versions (43)  versions <2..254> (1-byte length), 2 bytes each
 *
 * Decisions, like HAProxy's smp_fetch_ssl_hello_sni (src/payload.c): "not TLS" is
 * settled by the first two bytes; "need more" is returned for every prefix of a
 * hello that can still be valid; header fields that can never lead to a valid
 * hello (wrong handshake type, oversize lengths, more than maxBytes) are
 * "invalid" as soon as they are seen. The hello must end exactly at a record
 * boundary: RFC 8446 5.1 requires a message that immediately precedes a key
 * change (the ClientHello does) to align with a record boundary, and no client
 * sends another handshake message before the server answers, so trailing
 * handshake bytes are refused rather than guessed at. Records after the hello
 * (ChangeCipherSpec, early data) are not looked at: recordsLength says where
 * they start.
 */

/**
 * Parse the first bytes a client sent, as a TLS ClientHello.
 * Call again with the longer buffer after each read while it returns need-more.
 * Never throws and never reads past `buf.length`; allocates only for the result,
 * plus one copy of the handshake message when it spans several records.
 */
export function parseClientHello(buf: Buffer, maxBytes: number = DEFAULT_MAX_HELLO_BYTES): HelloResult {
  const n = buf.length;
  let off = 0; // start of the current record
  let hsSeen = 0; // handshake bytes in the records before the current one
  let hsTotal = -1; // 4 + body length, once the whole handshake header is seen
  let hsLen = 0; // body length, accumulated while the header arrives
  let records = 0;

  for (;;) {
    if (off >= n) return NEED_MORE;
    if (buf[off] !== CONTENT_TYPE_HANDSHAKE) return off === 0 ? NOT_TLS : invalid('non-handshake record in hello');
    if (off + 1 >= n) return NEED_MORE;
    if (buf[off + 1] !== 0x03) return off === 0 ? NOT_TLS : invalid('bad record version');
    // A record needs its header and at least one byte of fragment.
    if (off + RECORD_HEADER_BYTES + 1 > maxBytes) return invalid('too large');
    if (off + RECORD_HEADER_BYTES > n) return NEED_MORE;

    const recLen = u16(buf, off + 3);
    if (recLen === 0 || recLen > MAX_RECORD_BYTES) return invalid('bad record length');
    const fragStart = off + RECORD_HEADER_BYTES;
    const fragEnd = fragStart + recLen;
    if (fragEnd > maxBytes) return invalid('too large');
    records++;

    // Consume handshake header bytes carried by this fragment (usually all four).
    let p = fragStart;
    const avail = fragEnd < n ? fragEnd : n;
    while (hsTotal < 0 && p < avail) {
      const got = hsSeen + (p - fragStart); // index of this byte in the handshake stream
      const b = buf[p] ?? 0;
      if (got === 0) {
        if (b !== HANDSHAKE_CLIENT_HELLO) return invalid('not a client hello');
      } else {
        hsLen = (hsLen << 8) | b;
        if (got === HANDSHAKE_HEADER_BYTES - 1) {
          hsTotal = HANDSHAKE_HEADER_BYTES + hsLen;
          // Lower bound of the input needed: the rest of the message in this record.
          if (fragStart + (hsTotal - hsSeen) > maxBytes) return invalid('too large');
        }
      }
      p++;
    }

    const hsAfter = hsSeen + recLen;
    if (hsTotal >= 0 && hsAfter > hsTotal) return invalid('trailing data after hello');
    if (fragEnd > n) return NEED_MORE;
    if (hsTotal >= 0 && hsAfter === hsTotal) {
      const result =
        records === 1
          ? parseBody(buf, fragStart + HANDSHAKE_HEADER_BYTES, fragEnd)
          : parseBody(reassemble(buf, hsTotal), HANDSHAKE_HEADER_BYTES, hsTotal);
      if (typeof result === 'string') return invalid(result);
      result.recordsLength = fragEnd;
      return { kind: 'hello', hello: result };
    }
    hsSeen = hsAfter;
    off = fragEnd;
  }
}

function u16(b: Buffer, p: number): number {
  return ((b[p] ?? 0) << 8) | (b[p + 1] ?? 0);
}

/** Concatenate the fragments of records already validated by parseClientHello. */
function reassemble(buf: Buffer, hsTotal: number): Buffer {
  const out = Buffer.allocUnsafe(hsTotal);
  let off = 0;
  let copied = 0;
  while (copied < hsTotal) {
    const recLen = u16(buf, off + 3);
    const fragStart = off + RECORD_HEADER_BYTES;
    copied += buf.copy(out, copied, fragStart, fragStart + recLen);
    off = fragStart + recLen;
  }
  return out;
}

/** Parse a complete ClientHello body in b[start, end); a string is the reason it is invalid. */
function parseBody(b: Buffer, start: number, end: number): ClientHello | HelloInvalidReason {
  let p = start;
  if (end - p < 2 + 32 + 1) return 'truncated hello';
  if (b[p] !== 0x03) return 'bad client version';
  const legacyVersion = u16(b, p);
  p += 2 + 32;

  const sessionIdLen = b[p] ?? 0;
  p += 1;
  if (sessionIdLen > 32) return 'bad session id';
  p += sessionIdLen;

  if (end - p < 2) return 'truncated hello';
  const suitesLen = u16(b, p);
  p += 2;
  if (suitesLen < 2 || suitesLen % 2 !== 0 || end - p < suitesLen) return 'bad cipher suites';
  p += suitesLen;

  if (end - p < 1) return 'truncated hello';
  const compressionLen = b[p] ?? 0;
  p += 1;
  if (compressionLen < 1 || end - p < compressionLen) return 'bad compression methods';
  p += compressionLen;

  const hello: ClientHello = { sni: null, alpn: [], legacyVersion, supportedVersions: [], recordsLength: 0 };
  if (p === end) return hello; // no extensions (TLS 1.2 and earlier allow this)
  if (end - p < 2) return 'truncated extensions';
  const extsLen = u16(b, p);
  p += 2;
  if (extsLen !== end - p) return 'bad extensions length';

  let seenSni = false;
  let seenAlpn = false;
  let seenVersions = false;
  while (p < end) {
    if (end - p < 4) return 'truncated extension';
    const type = u16(b, p);
    const len = u16(b, p + 2);
    p += 4;
    if (len > end - p) return 'extension overflows hello';
    const dataEnd = p + len;
    if (type === EXT_SERVER_NAME) {
      if (seenSni) return 'duplicate server_name';
      seenSni = true;
      const sni = parseServerName(b, p, dataEnd);
      if (sni === undefined) return 'bad server_name';
      hello.sni = sni;
    } else if (type === EXT_ALPN) {
      if (seenAlpn) return 'duplicate alpn';
      seenAlpn = true;
      if (!parseAlpn(b, p, dataEnd, hello.alpn)) return 'bad alpn';
    } else if (type === EXT_SUPPORTED_VERSIONS) {
      if (seenVersions) return 'duplicate supported_versions';
      seenVersions = true;
      if (!parseSupportedVersions(b, p, dataEnd, hello.supportedVersions)) return 'bad supported_versions';
    }
    p = dataEnd;
  }
  return hello;
}

/**
 * The host_name of a server_name extension: null when the list has no host_name
 * entry, undefined when the extension or the name is malformed. Other name types
 * are skipped on the assumption (as in HAProxy and every deployed stack) that they
 * share the 2-byte length layout.
 */
function parseServerName(b: Buffer, p: number, end: number): string | null | undefined {
  if (end - p < 2) return undefined;
  const listLen = u16(b, p);
  p += 2;
  if (listLen === 0 || listLen !== end - p) return undefined;
  let name: string | null = null;
  while (p < end) {
    if (end - p < 3) return undefined;
    const nameType = b[p] ?? 0;
    const nameLen = u16(b, p + 1);
    p += 3;
    if (nameLen > end - p) return undefined;
    if (nameType === SERVER_NAME_HOST_NAME) {
      if (name !== null) return undefined; // RFC 6066: one name per type
      const host = decodeHostName(b, p, p + nameLen);
      if (host === undefined) return undefined;
      name = host;
    }
    p += nameLen;
  }
  return name;
}

/**
 * Printable ASCII without space, no empty label, at most 253 characters after
 * stripping one trailing dot; returned lower-cased. undefined when malformed.
 * Whether the name may be served is policy's decision, not the parser's.
 */
function decodeHostName(b: Buffer, start: number, end: number): string | undefined {
  if (end > start && b[end - 1] === 0x2e) end--; // "example.com." names the same host
  if (end - start < 1 || end - start > MAX_HOST_NAME_CHARS) return undefined;
  let upper = false;
  let prev = 0x2e; // a leading dot is an empty label
  for (let i = start; i < end; i++) {
    const c = b[i] ?? 0;
    if (c <= 0x20 || c >= 0x7f) return undefined;
    if (c === 0x2e && prev === 0x2e) return undefined;
    if (c >= 0x41 && c <= 0x5a) upper = true;
    prev = c;
  }
  if (prev === 0x2e) return undefined; // "a.." ended in an empty label
  const s = b.toString('latin1', start, end);
  return upper ? s.toLowerCase() : s;
}

function parseAlpn(b: Buffer, p: number, end: number, out: string[]): boolean {
  if (end - p < 2) return false;
  const listLen = u16(b, p);
  p += 2;
  if (listLen < 2 || listLen !== end - p) return false;
  while (p < end) {
    const len = b[p] ?? 0;
    p += 1;
    if (len === 0 || len > end - p) return false;
    out.push(b.toString('latin1', p, p + len));
    p += len;
  }
  return true;
}

function parseSupportedVersions(b: Buffer, p: number, end: number, out: number[]): boolean {
  if (end - p < 1) return false;
  const len = b[p] ?? 0;
  p += 1;
  if (len < 2 || len % 2 !== 0 || len !== end - p) return false;
  for (; p < end; p += 2) out.push(u16(b, p));
  return true;
}

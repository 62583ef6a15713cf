// SPDX-License-Identifier: MIT
// A second reading of a ClientHello, written from RFC 8446 / 6066 / 7301 and the
// wire format documented above parseClientHello, in another style: whole
// records first, then a cursor that throws on any read past its end. The fuzz
// target compares the two on every input this one can decide, so a bounds
// check missing in either shows up as a disagreement, not only as a crash.
import { DEFAULT_MAX_HELLO_BYTES } from '../../../src/agent/client-hello';

export type ReferenceResult =
  | { kind: 'incomplete' }
  | { kind: 'not-tls' }
  | { kind: 'invalid' }
  | { kind: 'hello'; sni: string | null; alpn: string[]; legacyVersion: number; supportedVersions: number[]; recordsLength: number };

// Thrown as they are, made once: an Error built per throw would spend the fuzzing's time on stacks.
const OVERRUN = { reading: 'past the end' };
const MALFORMED = { reading: 'malformed' };

/** Reads [pos, end) of a buffer; every read past `end` throws Overrun. */
class Cursor {
  constructor(
    private readonly b: Buffer,
    private pos: number,
    private readonly end: number,
  ) {}

  get left(): number {
    return this.end - this.pos;
  }

  bytes(n: number): Buffer {
    if (n > this.left) throw OVERRUN;
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(): number {
    return this.bytes(1).readUInt8(0);
  }

  u16(): number {
    return this.bytes(2).readUInt16BE(0);
  }

  u24(): number {
    return this.bytes(3).readUIntBE(0, 3);
  }

  /** A vector with a `width`-byte length prefix, as a cursor of its own. */
  vector(width: 1 | 2): Cursor {
    const n = width === 1 ? this.u8() : this.u16();
    const start = this.pos;
    this.bytes(n);
    return new Cursor(this.b, start, start + n);
  }
}

function must(ok: boolean): void {
  if (!ok) throw MALFORMED;
}

function hostName(raw: Buffer): string {
  const s = raw.toString('latin1').replace(/\.$/, '');
  must(s.length >= 1 && s.length <= 253 && /^[\x21-\x7e]+$/.test(s));
  must(s.split('.').every((label) => label.length > 0));
  return s.toLowerCase();
}

/** The handshake message carried by whole records from the start of `buf`, and where its last record ends. */
function reassemble(buf: Buffer, maxBytes: number): { message: Buffer; recordsLength: number } | 'incomplete' | 'not-tls' {
  if (buf.length >= 1 && buf[0] !== 22) return 'not-tls';
  if (buf.length >= 2 && buf[1] !== 3) return 'not-tls';
  const fragments: Buffer[] = [];
  let off = 0;
  for (;;) {
    if (off + 5 > buf.length) return 'incomplete';
    const header = new Cursor(buf, off, off + 5);
    must(header.u8() === 22);
    must(header.u8() === 3);
    header.u8();
    const len = header.u16();
    must(len >= 1 && len <= 16384 + 256);
    must(off + 5 + len <= maxBytes);
    if (off + 5 + len > buf.length) return 'incomplete';
    fragments.push(buf.subarray(off + 5, off + 5 + len));
    off += 5 + len;
    const stream = Buffer.concat(fragments);
    if (stream.length < 4) continue;
    const total = 4 + stream.readUIntBE(1, 3);
    must(stream[0] === 1);
    must(stream.length <= total); // the hello ends exactly at a record boundary
    if (stream.length === total) return { message: stream, recordsLength: off };
  }
}

/** The reference's verdict on the first bytes a client sent. */
export function referenceHello(buf: Buffer, maxBytes = DEFAULT_MAX_HELLO_BYTES): ReferenceResult {
  try {
    const r = reassemble(buf, maxBytes);
    if (r === 'incomplete' || r === 'not-tls') return { kind: r };
    const c = new Cursor(r.message, 4, r.message.length);
    const legacyVersion = c.u16();
    must(legacyVersion >> 8 === 3);
    c.bytes(32);
    must(c.vector(1).left <= 32);
    const suites = c.vector(2).left;
    must(suites >= 2 && suites % 2 === 0);
    must(c.vector(1).left >= 1);
    const hello = { kind: 'hello' as const, sni: null as string | null, alpn: [] as string[], legacyVersion, supportedVersions: [] as number[], recordsLength: r.recordsLength };
    if (c.left === 0) return hello;
    const exts = c.vector(2);
    must(c.left === 0);
    const seen = new Set<number>();
    while (exts.left > 0) {
      const type = exts.u16();
      const data = exts.vector(2);
      if (type !== 0 && type !== 16 && type !== 43) continue;
      must(!seen.has(type));
      seen.add(type);
      if (type === 0) {
        const list = data.vector(2);
        must(data.left === 0 && list.left > 0);
        let names = 0;
        while (list.left > 0) {
          const nameType = list.u8();
          const name = list.vector(2);
          if (nameType !== 0) continue;
          must(++names === 1);
          hello.sni = hostName(name.bytes(name.left));
        }
      } else if (type === 16) {
        const list = data.vector(2);
        must(data.left === 0 && list.left >= 2);
        while (list.left > 0) {
          const name = list.vector(1);
          must(name.left >= 1);
          hello.alpn.push(name.bytes(name.left).toString('latin1'));
        }
      } else {
        const list = data.vector(1);
        must(data.left === 0 && list.left >= 2 && list.left % 2 === 0);
        while (list.left > 0) hello.supportedVersions.push(list.u16());
      }
    }
    return hello;
  } catch (e) {
    if (e === OVERRUN || e === MALFORMED) return { kind: 'invalid' };
    throw e;
  }
}

// SPDX-License-Identifier: MIT
// Builders for TLS records and handshake messages, byte by byte (RFC 8446
// sections 4.1.2, 4.2, 5.1), and the captured ClientHellos of
// test/fixtures/client-hello: shared by the tests and fuzz targets of the
// parsers that read them (client-hello.ts, tls-answer.ts).
import fs from 'node:fs';
import path from 'node:path';

export const u8 = (n: number): Buffer => Buffer.from([n]);
export const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
export const u24 = (n: number): Buffer => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
export const vec8 = (b: Buffer): Buffer => Buffer.concat([u8(b.length), b]);
export const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);
export const ext = (type: number, data: Buffer): Buffer => Buffer.concat([u16(type), vec16(data)]);

export const sniEntry = (name: Buffer | string, type = 0): Buffer =>
  Buffer.concat([u8(type), vec16(typeof name === 'string' ? Buffer.from(name, 'latin1') : name)]);
export const sniExt = (...entries: Buffer[]): Buffer => ext(0, vec16(Buffer.concat(entries)));
export const alpnExt = (...names: string[]): Buffer => ext(16, vec16(Buffer.concat(names.map((n) => vec8(Buffer.from(n))))));
export const versionsExt = (...v: number[]): Buffer => ext(43, vec8(Buffer.concat(v.map(u16))));

export interface BodyOptions {
  version?: number;
  sessionId?: Buffer;
  suites?: Buffer; // the whole vector, length prefix included
  compression?: Buffer; // the whole vector, length prefix included
  extensions?: Buffer[] | null; // null: no extensions block at all
  rawExtensions?: Buffer; // the whole block, length prefix included (overrides extensions)
}

export function helloBody(o: BodyOptions = {}): Buffer {
  const parts = [
    u16(o.version ?? 0x0303),
    Buffer.alloc(32, 0xaa),
    vec8(o.sessionId ?? Buffer.alloc(32, 0x55)),
    o.suites ?? vec16(Buffer.concat([u16(0x1301), u16(0x1302), u16(0xc02f)])),
    o.compression ?? vec8(u8(0)),
  ];
  if (o.rawExtensions) parts.push(o.rawExtensions);
  else if (o.extensions !== null) parts.push(vec16(Buffer.concat(o.extensions ?? [])));
  return Buffer.concat(parts);
}

/** A handshake message: msg_type (1 = client_hello, 2 = server_hello), 3-byte length, body. */
export const handshake = (body: Buffer, type = 1): Buffer => Buffer.concat([u8(type), u24(body.length), body]);

/** Frame a handshake stream into records holding `sizes` bytes each; the last takes the rest. */
export function frame(hs: Buffer, sizes: number[] = [], recordVersion = 0x0301): Buffer {
  const out: Buffer[] = [];
  let off = 0;
  for (const size of [...sizes, hs.length]) {
    if (off >= hs.length) break;
    const frag = hs.subarray(off, Math.min(off + size, hs.length));
    out.push(Buffer.concat([u8(22), u16(recordVersion), u16(frag.length), frag]));
    off += frag.length;
  }
  return Buffer.concat(out);
}

/** The handshake stream carried by the records of a captured hello. */
export function unframe(records: Buffer): Buffer {
  const frags: Buffer[] = [];
  for (let off = 0; off < records.length; ) {
    const len = records.readUInt16BE(off + 3);
    frags.push(records.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return Buffer.concat(frags);
}


function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

const FIXTURES = path.join(findRepoRoot(__dirname), 'test', 'fixtures', 'client-hello');

/** Every captured ClientHello, [file name, bytes], sorted by name. */
export function clientHelloFixtures(): Array<[string, Buffer]> {
  return fs
    .readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => [f, fs.readFileSync(path.join(FIXTURES, f))]);
}

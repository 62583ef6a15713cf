// SPDX-License-Identifier: MIT
// MySQL/MariaDB's in-band TLS: the server speaks first. Every packet is
// 3-byte little-endian payload length, 1-byte sequence number, payload.
//
//   Greeting (server, seq 0): 0x0a · version NUL · thread id u32 · scramble[8] ·
//     0x00 · caps u16 (low) · charset u8 · status u16 · caps u16 (high) ·
//     scramble len u8 · reserved[6] · MariaDB extended caps u32 (only when
//     caps bit 0 "CLIENT_MYSQL" is clear; MySQL: 4 more reserved) · …
//   SSLRequest (client, seq 1): 32 bytes: caps u32 with CLIENT_SSL · max packet
//     u32 · charset u8 · 19 reserved · MariaDB extended caps u32; then TLS.
//   HandshakeResponse41 (client, seq 1 plain, seq 2 inside TLS): the same 32
//     bytes, then user, auth data, …
//
// A greeting without CLIENT_SSL is shown to the client with it set. A client
// that sends an SSLRequest gets TLS from jfe; the server, which never saw the
// request, expects the HandshakeResponse at seq 1 without CLIENT_SSL, so
// until authentication ends (the server's OK or ERR) client packets go one
// sequence number down and the server's one up (strict clients check them).
import type net from 'node:net';
import { ByteIo } from './bytes';
import { DialogueStop, runDialogue } from './dialogue-run';
import type { Dialogue, DialogueFactory, SessionTransform, UpgradeOutcome } from './upgrade';

export const CLIENT_MYSQL = 0x1; // MariaDB: clear in a MariaDB server's caps (extended caps present)
export const CLIENT_PROTOCOL_41 = 0x200;
export const CLIENT_SSL = 0x800;
const HEADER = 4;
const SSL_REQUEST_LENGTH = 32;
/** Real greetings are about 100 bytes; a bound keeps a stray server from making us buffer. */
const MAX_GREETING_LENGTH = 1024;

export interface Greeting {
  version: string;
  /** Offset of the low capability bytes in the payload. */
  capsOffset: number;
  caps: number;
  /** MariaDB's extended capabilities, when the server is MariaDB (else null). */
  extendedCaps: number | null;
}

/** The parts of a Handshake v10 payload that matter here, or null when it is not one. */
export function parseGreeting(payload: Buffer): Greeting | null {
  if (payload[0] !== 0x0a) return null;
  const nul = payload.indexOf(0, 1);
  if (nul < 0) return null;
  const capsOffset = nul + 1 + 4 + 8 + 1;
  if (payload.length < capsOffset + 2) return null;
  let caps = payload.readUInt16LE(capsOffset);
  let extendedCaps: number | null = null;
  // charset(1) status(2) caps-high(2) scramble-len(1) reserved(6) ext(4)
  if (payload.length >= capsOffset + 7) caps = (caps | (payload.readUInt16LE(capsOffset + 5) << 16)) >>> 0;
  if (payload.length >= capsOffset + 18 && (caps & CLIENT_MYSQL) === 0) extendedCaps = payload.readUInt32LE(capsOffset + 14);
  return { version: payload.subarray(1, nul).toString('latin1'), capsOffset, caps, extendedCaps };
}

/** 'yes' on the start of a Handshake v10 greeting at seq 0, 'need-more' on a prefix, else 'no'. */
export function detectMysql(first: Buffer): 'yes' | 'no' | 'need-more' {
  if (first.length >= 4 && first[3] !== 0) return 'no';
  if (first.length < 5) return 'need-more';
  const len = first.readUIntLE(0, 3);
  if (first[4] !== 0x0a || len < 20 || len > MAX_GREETING_LENGTH) return 'no';
  return 'yes';
}

function header(len: number, seq: number): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUIntLE(len, 0, 3);
  h[3] = seq;
  return h;
}

class MysqlDialogue implements Dialogue {
  readonly protocol = 'mysql' as const;

  run(client: net.Socket, upstream: net.Socket, first: Buffer, signal: AbortSignal): Promise<UpgradeOutcome> {
    return runDialogue(new ByteIo(client, upstream, first, 'upstream', signal), (io) => this.negotiate(io));
  }

  private async negotiate(io: ByteIo): Promise<UpgradeOutcome> {
    const head = await io.take('upstream', HEADER);
    const len = head.readUIntLE(0, 3);
    const stepAside = (payload: Buffer): UpgradeOutcome => ({
      kind: 'passthrough',
      clientRest: io.rest('client'),
      upstreamRest: Buffer.concat([head, payload, io.rest('upstream')]),
    });
    if (head[3] !== 0 || len > MAX_GREETING_LENGTH) return stepAside(Buffer.alloc(0));
    const payload = Buffer.from(await io.take('upstream', len));
    const greeting = parseGreeting(payload);
    // Not a greeting we understand, TLS of its own, or pre-4.1 (whose requests differ): hands off.
    if (greeting === null || (greeting.caps & CLIENT_SSL) !== 0 || (greeting.caps & CLIENT_PROTOCOL_41) === 0) return stepAside(payload);
    payload.writeUInt16LE((greeting.caps & 0xffff) | CLIENT_SSL, greeting.capsOffset);
    io.write('client', Buffer.concat([head, payload]));

    const reqHead = await io.take('client', HEADER);
    const reqLen = reqHead.readUIntLE(0, 3);
    if (reqHead[3] !== 1) throw new DialogueStop(`client packet has seq ${reqHead[3]}, not 1`);
    if (reqLen !== SSL_REQUEST_LENGTH) {
      // A full HandshakeResponse: the client goes on in plaintext, as it would have.
      return { kind: 'passthrough', clientRest: Buffer.concat([reqHead, io.rest('client')]), upstreamRest: io.rest('upstream') };
    }
    const req = await io.take('client', SSL_REQUEST_LENGTH);
    if ((req.readUInt32LE(0) & CLIENT_SSL) === 0) throw new DialogueStop('a 32-byte client packet without CLIENT_SSL');
    return { kind: 'tls', clientRest: io.rest('client'), upstreamRest: io.rest('upstream'), transform: new MysqlSequenceShift() };
  }
}

/**
 * Rewrites packet headers while authentication runs, streaming payloads
 * through untouched (it holds back at most a header's bytes).
 */
export class MysqlSequenceShift implements SessionTransform {
  private readonly client = new PacketWalk();
  private readonly upstream = new PacketWalk();
  private first = true;
  private authDone = false;

  clientData(chunk: Buffer): { forward: Buffer; done: boolean } {
    if (this.authDone) return { forward: this.client.rest(chunk), done: true };
    const forward = this.client.walk(chunk, (h, payloadHead) => {
      if (this.first) {
        this.first = false;
        if (h[3] !== 2) throw new Error(`first packet inside TLS has seq ${h[3]}, not 2`);
        // HandshakeResponse41: caps are its first payload bytes; CLIENT_SSL is bit 11.
        payloadHead[1] = (payloadHead[1] ?? 0) & ~(CLIENT_SSL >> 8);
      } else if (h[3] === 0) {
        // A command: authentication is over (a client that did not wait for OK).
        this.authDone = true;
        return false;
      }
      h[3] = ((h[3] ?? 0) - 1) & 0xff;
      return true;
    }, 2);
    return { forward, done: this.authDone };
  }

  upstreamData(chunk: Buffer): { forward: Buffer; done: boolean } {
    // Ended by the client (a command before the server's answer): what the server's side holds goes first.
    if (this.authDone) return { forward: this.upstream.rest(chunk), done: true };
    const forward = this.upstream.walk(chunk, (h, payloadHead) => {
      h[3] = ((h[3] ?? 0) + 1) & 0xff;
      // OK or ERR ends the connection phase; auth switch (0xfe) and more data (0x01) do not.
      if (payloadHead[0] === 0x00 || payloadHead[0] === 0xff) this.authDone = true;
      return !this.authDone;
    }, 1);
    return { forward, done: this.authDone };
  }
}

/**
 * Finds packet boundaries in a byte stream. For each packet, `edit` gets its
 * header and the first `peek` payload bytes to change in place; it returns
 * false to stop (the rest of the stream is passed through unchanged).
 */
class PacketWalk {
  private pending = Buffer.alloc(0);
  private payloadLeft = 0;
  private stopped = false;

  /** Whatever was held back, then `chunk`, unchanged: the walk is over. */
  rest(chunk: Buffer): Buffer {
    this.stopped = true;
    const held = this.pending;
    this.pending = Buffer.alloc(0);
    return held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
  }

  walk(chunk: Buffer, edit: (header: Buffer, payloadHead: Buffer) => boolean, peek: number): Buffer {
    if (this.stopped) return chunk;
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : Buffer.from(chunk);
    this.pending = Buffer.alloc(0);
    const out: Buffer[] = [];
    while (data.length > 0) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, data.length);
        out.push(data.subarray(0, n));
        this.payloadLeft -= n;
        data = data.subarray(n);
        continue;
      }
      const len = data.length >= 3 ? data.readUIntLE(0, 3) : 0;
      const need = HEADER + Math.min(peek, len);
      if (data.length < need) {
        this.pending = data;
        break;
      }
      const more = edit(data.subarray(0, HEADER), data.subarray(HEADER, need));
      out.push(data.subarray(0, need));
      this.payloadLeft = len - (need - HEADER);
      data = data.subarray(need);
      if (!more) {
        this.stopped = true;
        out.push(data);
        break;
      }
    }
    return Buffer.concat(out);
  }
}

export const mysqlDialogue: DialogueFactory = {
  protocol: 'mysql',
  firstSpeaker: 'server',
  defaultPorts: [3306],
  detect: detectMysql,
  // A 4-byte header then 0x0a is too weak a sign to wait on every port for.
  detectAnywhere: false,
  create: () => new MysqlDialogue(),
};

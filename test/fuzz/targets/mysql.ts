// SPDX-License-Identifier: MIT
// Fuzz targets for MySQL/MariaDB's upgrade:
// - mysql: the dialogue (bytes.ts, dialogue-io.ts, parseGreeting and the
//   client's SSLRequest), driven through in-memory sockets by a fuzzed client
//   and server. Properties: those every dialogue shares (dialogue-harness.ts),
//   and: on tls the client was shown a greeting with CLIENT_SSL set and sent a
//   32-byte SSLRequest with it, and the greeting is the only thing it was
//   sent; a greeting shown to the client differs from the server's in the
//   CLIENT_SSL bit only.
// - mysql-auth-shift: MysqlSequenceShift, which rewrites the packet headers
//   of both directions inside TLS until authentication ends, fed as
//   connection.ts feeds it. Properties: it returns or throws its one
//   documented error, never another; cutting the same bytes into other reads
//   changes nothing; once the phase ends, every byte of each direction was
//   forwarded (nothing lost or invented), changed only in sequence numbers
//   and the client's CLIENT_SSL bit; before, it holds back at most a header.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CLIENT_MYSQL, CLIENT_PROTOCOL_41, CLIENT_SSL, MysqlSequenceShift, mysqlDialogue, parseGreeting } from '../../../src/agent/upgrades/mysql';
import { type Conversation, checkConversation, conversations, sessionSeeds, sessionsOf } from '../dialogue-harness';
import { bytesInput, chunked, cutPoints, toBuffer } from '../inputs';
import { tally } from '../tally';
import { type Corpus, type FuzzTarget, filesEnding } from '../target';

const packetOf = (seq: number, payload: Buffer, len = payload.length): Buffer => {
  const h = Buffer.alloc(4);
  h.writeUIntLE(len & 0xffffff, 0, 3);
  h[3] = seq & 0xff;
  return Buffer.concat([h, payload]);
};

const u16le = (n: number): Buffer => Buffer.from([n & 0xff, (n >> 8) & 0xff]);
const u32le = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

/** A Handshake v10 greeting as MySQL and MariaDB send it, its capabilities fuzzed. */
const greeting = fc
  .record({
    version: fc.constantFrom('8.0.36', '5.5.5-10.11.6-MariaDB-0+deb12u1', ''),
    caps: fc.oneof(fc.constant(0xf7fe | (0x81bf << 16)), fc.nat({ max: 0xffffffff })),
    ssl: fc.boolean(),
    cut: fc.oneof(fc.constant(1000), fc.nat({ max: 60 })),
    seq: fc.oneof(fc.constant(0), fc.nat({ max: 255 })),
  })
  .map((f) => {
    const caps = (f.ssl ? f.caps | CLIENT_SSL : f.caps & ~CLIENT_SSL) >>> 0;
    const payload = Buffer.concat([
      Buffer.from([0x0a]),
      Buffer.from(`${f.version}\0`, 'latin1'),
      u32le(7),
      Buffer.alloc(8, 0x41),
      Buffer.from([0]),
      u16le(caps & 0xffff),
      Buffer.from([0x2d]),
      u16le(2),
      u16le(caps >>> 16),
      Buffer.from([21]),
      Buffer.alloc(6),
      u32le(0x1d),
      Buffer.from('BBBBBBBBBBBB\0mysql_native_password\0', 'latin1'),
    ]).subarray(0, f.cut);
    return packetOf(f.seq, payload);
  });

/** Server packets after the greeting: OK, ERR, auth switch, more data. */
const serverPacket = fc
  .tuple(fc.nat({ max: 6 }), fc.constantFrom(0x00, 0xff, 0xfe, 0x01, 0x0a), fc.uint8Array({ maxLength: 24 }))
  .map(([seq, kind, rest]) => packetOf(seq, Buffer.concat([Buffer.from([kind]), toBuffer(rest)])));

const sslRequest = fc
  .tuple(fc.oneof(fc.constant(CLIENT_SSL | CLIENT_PROTOCOL_41 | 0xa285), fc.nat({ max: 0xffffffff })), fc.oneof(fc.constant(1), fc.nat({ max: 3 })))
  .map(([caps, seq]) => packetOf(seq, Buffer.concat([u32le(caps), u32le(0x1000000), Buffer.from([0x2d]), Buffer.alloc(19), u32le(0)])));

const handshakeResponse = fc
  .tuple(fc.nat({ max: 3 }), fc.nat({ max: 0xffffffff }), fc.uint8Array({ maxLength: 40 }))
  .map(([seq, caps, rest]) => packetOf(seq, Buffer.concat([u32le(caps), u32le(0x1000000), Buffer.from([0x2d]), Buffer.alloc(23), Buffer.from('root\0', 'latin1'), toBuffer(rest)])));

/** A client's stream: its SSLRequest or login, then a ClientHello's first bytes or more packets. */
const clientStream = fc
  .array(fc.oneof(sslRequest, handshakeResponse, fc.uint8Array({ maxLength: 24 }).map(toBuffer)), { minLength: 1, maxLength: 3 })
  .map((parts) => Buffer.concat(parts));

const serverStream = fc.tuple(greeting, fc.array(serverPacket, { maxLength: 2 })).map(([g, rest]) => Buffer.concat([g, ...rest]));

/** How much of the server's stream was read before the dialogue starts: its first packet, as the registry sees it. */
const firstPacketLength = (server: Buffer): number => (server.length < 4 ? server.length : Math.min(server.length, 4 + server.readUIntLE(0, 3)));

export const mysqlTarget: FuzzTarget<Conversation> = {
  name: 'mysql',
  corpusDirs: ['test/fuzz/corpus/mysql'],
  smokeRuns: 2000,
  async: true,
  seeds: (corpus) => sessionSeeds(sessionsOf(corpus), (s) => firstPacketLength(s.server)),
  input: (corpus) => conversations(sessionsOf(corpus), clientStream, serverStream),
  async check(c: Conversation): Promise<void> {
    // The greeting reaches the client with its CLIENT_SSL bit changed: checked below instead.
    const seen = await checkConversation(mysqlDialogue, c, { clientBytesForServer: (client) => client, serverBytesReachClient: false });
    if (seen.toClient.length > 0) {
      const shown = seen.toClient;
      const original = c.server.subarray(0, shown.length);
      assert.equal(shown.length, firstPacketLength(c.server), 'the client was sent the greeting packet, whole, and nothing else');
      const g = parseGreeting(shown.subarray(4));
      assert.ok(g !== null, 'what the client was shown is a greeting');
      const diff = [...shown].map((b, i) => b ^ (original[i] ?? 0));
      diff[4 + g.capsOffset + 1] = (diff[4 + g.capsOffset + 1] ?? 0) & ~(CLIENT_SSL >> 8);
      assert.ok(
        diff.every((d) => d === 0),
        "the greeting shown differs from the server's in the CLIENT_SSL bit only",
      );
      assert.ok((g.caps & CLIENT_SSL) !== 0, 'the greeting shown offers CLIENT_SSL');
    }
    if (seen.kind === 'tls') {
      assert.equal(seen.toClient.length > 0, true, 'on tls the client was shown a greeting');
      assert.equal(seen.toUpstream.length, 0, 'on tls the server was sent nothing during the dialogue');
      const req = c.client.subarray(0, 36);
      assert.equal(req.readUIntLE(0, 3), 32, 'the client sent a 32-byte packet');
      assert.ok((req.readUInt32LE(4) & CLIENT_SSL) !== 0, 'with CLIENT_SSL');
      assert.ok(seen.transform, 'the session is handed the sequence shift');
    }
  },
};

// ---- the sequence shift inside TLS ----

interface ShiftInput {
  /** What each side sends inside TLS, in order; each piece is one read unless cut further. */
  events: { fromClient: boolean; bytes: Buffer }[];
  cuts: number[];
}

interface ShiftRun {
  client: Buffer;
  upstream: Buffer;
  /** 'open': the phase had not ended when the bytes ran out; else which side's answer ended it, or the error thrown. */
  end: string;
}

/** Feeds the shift as connection.ts's transformFirst does: each side until it says done, the phase over when the server's side is (the client's side then flushed). */
function runShift(events: { fromClient: boolean; bytes: Buffer }[]): ShiftRun {
  const t = new MysqlSequenceShift();
  const out = { client: [] as Buffer[], upstream: [] as Buffer[] };
  let clientDone = false;
  let phaseOver = false;
  let end = 'open';
  for (const e of events) {
    if (e.bytes.length === 0) continue; // a socket read brings at least one byte
    if (phaseOver) {
      // The relay: bytes go through untouched.
      (e.fromClient ? out.client : out.upstream).push(e.bytes);
      continue;
    }
    if (e.fromClient && clientDone) {
      out.client.push(e.bytes);
      continue;
    }
    let r: { forward: Buffer; done: boolean };
    try {
      r = e.fromClient ? t.clientData(e.bytes) : (t.upstreamData?.(e.bytes) ?? { forward: e.bytes, done: true });
    } catch (err) {
      assert.ok(err instanceof Error && /^first packet inside TLS has seq \d+, not 2$/.test(err.message), `an undocumented throw: ${String(err)}`);
      end = err.message;
      break;
    }
    assert.ok(Buffer.isBuffer(r.forward) && typeof r.done === 'boolean', 'returns { forward, done }');
    (e.fromClient ? out.client : out.upstream).push(r.forward);
    if (e.fromClient) clientDone = r.done;
    else if (r.done) {
      phaseOver = true;
      end = 'server';
      // The phase is over: the client's side gives up what it still holds.
      if (!clientDone) out.client.push(t.clientData(Buffer.alloc(0)).forward);
    }
  }
  return { client: Buffer.concat(out.client), upstream: Buffer.concat(out.upstream), end };
}

/** Packets of a login inside TLS: the client's response at seq 2 (or not), auth-switch answers, a command at seq 0; the server's answers. */
const shiftEvents = fc.array(
  fc.oneof(
    fc.tuple(fc.oneof(fc.constant(2), fc.constant(3), fc.constant(0), fc.nat({ max: 255 })), fc.uint8Array({ maxLength: 48 }), fc.option(fc.nat({ max: 0xffffff }), { freq: 6 })).map(([seq, p, len]) => ({
      fromClient: true,
      bytes: packetOf(seq, toBuffer(p), len ?? p.length),
    })),
    serverPacket.map((bytes) => ({ fromClient: false, bytes })),
    fc.tuple(fc.boolean(), fc.uint8Array({ maxLength: 12 })).map(([fromClient, b]) => ({ fromClient, bytes: toBuffer(b) })),
  ),
  { maxLength: 8 },
);

/** Sessions recorded from real clients: NAME.events files hold "c" or "s", a length and the bytes, repeated (see corpus README). */
function eventsOf(file: Buffer): { fromClient: boolean; bytes: Buffer }[] {
  const out: { fromClient: boolean; bytes: Buffer }[] = [];
  for (let off = 0; off + 5 <= file.length; ) {
    const len = file.readUInt32BE(off + 1);
    out.push({ fromClient: file[off] === 0x63, bytes: file.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return out;
}

export const mysqlAuthShiftTarget: FuzzTarget<ShiftInput> = {
  name: 'mysql-auth-shift',
  corpusDirs: ['test/fuzz/corpus/mysql-auth-shift'],
  smokeRuns: 20_000,
  async: false,
  seeds: (corpus: Corpus) => filesEnding(corpus, '.events').map((f) => ({ events: eventsOf(f), cuts: [] })),
  input: (corpus: Corpus) =>
    fc.record({
      events: fc.oneof(
        shiftEvents,
        fc.constantFrom(...filesEnding(corpus, '.events').map(eventsOf), []).chain((seed) =>
          fc.array(fc.tuple(fc.boolean(), bytesInput(seed.map((e) => e.bytes), undefined, 64)), { maxLength: 8 }).map((es) => [...seed, ...es.map(([fromClient, bytes]) => ({ fromClient, bytes }))]),
        ),
      ),
      cuts: cutPoints,
    }),
  check(input: ShiftInput): void {
    const whole = runShift(input.events);
    // The same events, each cut into reads at the fuzzed points.
    const pieces = runShift(input.events.flatMap((e, i) => chunked(e.bytes, input.cuts.map((c) => c + i)).map((bytes) => ({ fromClient: e.fromClient, bytes }))));
    assert.deepEqual(pieces, whole, 'the same bytes cut into other reads give another result');
    tally(`phase ${whole.end.replace(/\d+/g, 'N')}`);

    const sent = {
      client: Buffer.concat(input.events.filter((e) => e.fromClient).map((e) => e.bytes)),
      upstream: Buffer.concat(input.events.filter((e) => !e.fromClient).map((e) => e.bytes)),
    };
    for (const side of ['client', 'upstream'] as const) {
      const got = whole[side];
      if (whole.end === 'server') assert.equal(got.length, sent[side].length, `once the phase ended, every ${side} byte was forwarded`);
      else if (whole.end === 'open') assert.ok(sent[side].length - got.length <= 6 && got.length <= sent[side].length, `at most a header of the ${side} held back`);
      // Only headers' sequence bytes and the client's capability byte may differ.
      let diffs = 0;
      for (let i = 0; i < got.length; i++) if (got[i] !== sent[side][i]) diffs++;
      assert.ok(diffs <= input.events.length * 4 + 2, `${diffs} bytes of ${side} changed`);
    }
  },
};

// SPDX-License-Identifier: MIT
// Fuzz target: the PostgreSQL upgrade dialogue (bytes.ts, dialogue-io.ts and
// its reading of SSLRequest, GSSENCRequest, CancelRequest and startup
// packets), driven through in-memory sockets by a fuzzed client and server.
// Properties: those every dialogue shares (dialogue-harness.ts), and: the
// client is told 'S' by jfe only after the server said 'N' to the SSLRequest
// jfe passed on.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { postgresDialogue } from '../../../src/agent/upgrades/postgres';
import { type Conversation, type Observed, checkConversation, conversations, sessionSeeds, sessionsOf } from '../dialogue-harness';
import { toBuffer } from '../inputs';
import type { FuzzTarget } from '../target';

const SSL_REQUEST = Buffer.from('0000000804d2162f', 'hex');
const GSSENC_REQUEST = Buffer.from('0000000804d21630', 'hex');

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** A packet with its int32 length, right or wrong. */
const packet = fc
  .tuple(fc.oneof(fc.constant(null), fc.nat({ max: 20_000 })), fc.constantFrom(196608, 131072, 80877102, 80877103, 80877104, 0, 0xffffffff), fc.uint8Array({ maxLength: 40 }))
  .map(([len, code, rest]) => Buffer.concat([int32(len ?? 8 + rest.length), int32(code), toBuffer(rest)]));

const clientStream = fc
  .array(fc.oneof(fc.constant(SSL_REQUEST), fc.constant(GSSENC_REQUEST), packet, fc.uint8Array({ maxLength: 16 }).map(toBuffer)), { maxLength: 5 })
  .map((parts) => Buffer.concat(parts));

const serverStream = fc
  .array(fc.oneof(fc.constantFrom(Buffer.from('S'), Buffer.from('N'), Buffer.from('G')), fc.uint8Array({ maxLength: 32 }).map(toBuffer)), { maxLength: 3 })
  .map((parts) => Buffer.concat(parts));

export const postgresTarget: FuzzTarget<Conversation> = {
  name: 'postgres',
  corpusDirs: ['test/fuzz/corpus/postgres'],
  smokeRuns: 2000,
  async: true,
  seeds: (corpus) => sessionSeeds(sessionsOf(corpus), (s) => Math.min(8, s.client.length)),
  input: (corpus) => conversations(sessionsOf(corpus), clientStream, serverStream),
  async check(c: Conversation): Promise<void> {
    const seen = await checkConversation(postgresDialogue, c, {
      // jfe answers a GSSENCRequest itself ('N'): that one never reaches the server.
      clientBytesForServer: (client: Buffer, s: Observed) => (client.subarray(0, 8).equals(GSSENC_REQUEST) && s.toClient[0] === 0x4e ? client.subarray(8) : client),
      serverBytesReachClient: true,
    });
    if (seen.kind === 'tls') {
      assert.equal(seen.toClient.at(-1), 0x53, "on tls the client was last told 'S'");
      assert.ok(seen.toUpstream.equals(SSL_REQUEST), 'the server was sent the SSLRequest, and nothing else');
      assert.equal(c.server[0], 0x4e, "the server said 'N' first");
    }
  },
};

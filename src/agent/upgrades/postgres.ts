// SPDX-License-Identifier: MIT
// PostgreSQL's in-band TLS request. The client speaks first, before its
// startup message, with one of these 8-byte packets (int32 big-endian each):
//
//   SSLRequest      len=8   code=80877103 (0x04d2162f)  answer: 'S' then TLS, or 'N'
//   GSSENCRequest   len=8   code=80877104 (0x04d21630)  answer: 'G' then GSSAPI, or 'N'
//   CancelRequest   len=16  code=80877102 (0x04d2162e)  pid, key; no answer
//   StartupMessage  len=N   version=196608 (3.0)        parameters; the session
//
// The SSLRequest goes to the server first: 'S' means it does TLS itself and
// jfe steps aside; 'N' means jfe answers 'S' and terminates TLS, and the
// server, now waiting for a startup message, gets the one the client sends
// inside TLS. A GSSENCRequest is answered 'N' here (libpq then asks for SSL).
import type net from 'node:net';
import { ByteIo } from './bytes';
import { DialogueStop, runDialogue } from './dialogue-run';
import type { Dialogue, DialogueFactory, UpgradeOutcome } from './upgrade';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const SSL_REQUEST_BYTES = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const GSSENC_REQUEST_BYTES = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
/** The server's own bound on a startup packet (src/include/libpq/pqcomm.h MAX_STARTUP_PACKET_LENGTH). */
const MAX_STARTUP_LENGTH = 10_000;

/** 'yes' on either 8-byte request, 'need-more' on a prefix of one, else 'no'. */
export function detectPostgres(first: Buffer): 'yes' | 'no' | 'need-more' {
  for (const req of [SSL_REQUEST_BYTES, GSSENC_REQUEST_BYTES]) {
    const n = Math.min(first.length, req.length);
    if (first.subarray(0, n).equals(req.subarray(0, n))) return first.length >= req.length ? 'yes' : 'need-more';
  }
  return 'no';
}

class PostgresDialogue implements Dialogue {
  readonly protocol = 'postgres' as const;

  run(client: net.Socket, upstream: net.Socket, first: Buffer, signal: AbortSignal): Promise<UpgradeOutcome> {
    return runDialogue(new ByteIo(client, upstream, first, 'client', signal), (io) => this.negotiate(io));
  }

  private async negotiate(io: ByteIo): Promise<UpgradeOutcome> {
    let gssAnswered = false;
    for (;;) {
      const head = await io.take('client', 8);
      const len = head.readUInt32BE(0);
      const code = head.readUInt32BE(4);
      if (code === GSSENC_REQUEST && len === 8) {
        // The server allows one GSSENCRequest per connection; so do we.
        if (gssAnswered) throw new DialogueStop('a second GSSENCRequest');
        gssAnswered = true;
        io.write('client', Buffer.from('N'));
        continue;
      }
      if (code === SSL_REQUEST && len === 8) return this.sslRequest(io, head);
      if (code === CANCEL_REQUEST && len === 16) return passthrough(io, head);
      // Anything else must be a startup message (after our 'N' to GSSENC).
      if (len < 8 || len > MAX_STARTUP_LENGTH) throw new DialogueStop(`packet length ${len} is not a PostgreSQL startup packet`);
      if (code >>> 16 < 2 || code >>> 16 > 3) throw new DialogueStop(`code ${code} is neither a request nor protocol 2/3`);
      return passthrough(io, head);
    }
  }

  private async sslRequest(io: ByteIo, request: Buffer): Promise<UpgradeOutcome> {
    io.write('upstream', request);
    const answer = await io.take('upstream', 1);
    if (answer[0] === 0x4e /* N */) {
      io.write('client', Buffer.from('S'));
      return { kind: 'tls', clientRest: io.rest('client'), upstreamRest: io.rest('upstream') };
    }
    // 'S' (the server's own TLS) or an error from a server that does not know
    // SSLRequest: the client sees exactly what the server said.
    return { kind: 'passthrough', clientRest: io.rest('client'), upstreamRest: Buffer.concat([answer, io.rest('upstream')]) };
  }
}

function passthrough(io: ByteIo, head: Buffer): UpgradeOutcome {
  return { kind: 'passthrough', clientRest: Buffer.concat([head, io.rest('client')]), upstreamRest: io.rest('upstream') };
}

export const postgresDialogue: DialogueFactory = {
  protocol: 'postgres',
  firstSpeaker: 'client',
  defaultPorts: [5432],
  detect: detectPostgres,
  // An 8-byte packet with a reserved protocol code: no other protocol opens so.
  detectAnywhere: true,
  create: () => new PostgresDialogue(),
};

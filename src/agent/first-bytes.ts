// SPDX-License-Identifier: MIT
// The one decision the native core asks of TypeScript per connection, once it
// has the first bytes of whichever side spoke first: relay plaintext natively,
// hand the connection to Node (connection.ts, adoptConnection), or reset it.
//
// It must reach exactly the outcome the Sniffer in connection.ts would reach
// with the same bytes, as adoptConnection feeds them to it (the service's
// bytes first when it spoke, then the client's, then the client's EOF).
// "plain" only where that outcome is certain to be a plaintext relay of every
// byte unchanged; anything TLS-looking or undecided goes to Node, whose Sniffer
// then decides with every byte, as it always has. Returning takeOver where the
// Sniffer would relay plaintext costs speed, never correctness.
//
// Preconditions the core keeps (the Sniffer's other inputs, which this function
// does not see):
// - the upstream connection is established (a refused or failed dial is the
//   core's to report: the Sniffer's upstreamFailed and its ACME wait for a
//   refused 80/443 never arise here);
// - ports with a configured upgrade dialogue, and 80/443 while ACME challenges
//   are on, are handed to Node at accept and never asked about. The content
//   checks below that do not depend on configuration (PostgreSQL's requests on
//   any port, an http-01 request line on 80) are kept anyway, so a core that
//   asks about such a port still gets a right answer.
import { HTTP01_PORT, HTTP01_REQUEST_PREFIX } from './acme-challenges';
import { parseClientHello } from './client-hello';
import { ALL_DIALOGUES } from './upgrades';

export const FIRST_VERDICT = { plain: 0, takeOver: 1, reset: 2 } as const;
export type FirstVerdict = (typeof FIRST_VERDICT)[keyof typeof FIRST_VERDICT];

/** Client-first dialogues detected by content on every port (PostgreSQL's SSLRequest/GSSENCRequest). */
const ANYWHERE = ALL_DIALOGUES.filter((f) => f.detectAnywhere && f.firstSpeaker === 'client');

/**
 * The first bytes after which a client's opening may still be something other
 * than plaintext for the Sniffer: a ClientHello, an opening detected on any
 * port. Asked of the parsers themselves with each one-byte prefix (each decides
 * "no" from its first byte on: client-hello.ts settles "not TLS" by the first
 * two bytes, a detector by its opening), so this table can't drift from them.
 */
const MAY_OPEN: Uint8Array = firstBytes((one) => parseClientHello(one).kind !== 'not-tls' || ANYWHERE.some((f) => f.detect(one) !== 'no'));

function firstBytes(may: (one: Buffer) => boolean): Uint8Array {
  const table = new Uint8Array(256);
  for (let b = 0; b < 256; b++) table[b] = may(Buffer.of(b)) ? 1 : 0;
  return table;
}

/**
 * On port 80: whether the bytes may be an http-01 validation request, i.e. they
 * and its fixed start agree as far as both go (matchHttp01's own first test;
 * past it, whatever it says goes to Node). Every HTTP request on 80 passes
 * here: compared in place, nothing allocated.
 */
function mayBeHttp01(client: Uint8Array): boolean {
  const n = Math.min(client.length, HTTP01_REQUEST_PREFIX.length);
  for (let i = 0; i < n; i++) if (client[i] !== HTTP01_REQUEST_PREFIX[i]) return false;
  return true;
}

/**
 * The verdict for a connection whose first bytes the core has read.
 * clientEof/serviceEof: the core read that side's FIN (after its bytes). An
 * upstream reset or a client that resets or closes before anything is the
 * core's to count and close, as the Sniffer does (upstreamFailed, closed).
 *
 * - plain: the service spoke first, or closed its side (FIN) first (the
 *   Sniffer relays plaintext whatever the client says then); the client spoke
 *   first with bytes that start neither a ClientHello nor an opening Node
 *   would look at; the client closed (FIN) having sent nothing.
 * - takeOver: everything else with bytes in it: a ClientHello whole or in
 *   part, an invalid one (Node counts hello-invalid and resets), an opening
 *   Node must look at, a TLS prefix cut short by the client's FIN.
 * - reset: nothing read from either side and no FIN either way. The core asks with
 *   nothing only when its first-bytes wait ran out, and that wait is the
 *   Sniffer's own bound on a silent connection, the idle timeout
 *   (ConnectionOptions.idleTimeoutMs); the Sniffer resets such a connection
 *   (both sides, counted as closed 'none' with no handshake failure). A core
 *   whose wait is shorter than the idle timeout must not ask with nothing read.
 *
 * Pure; on the plain path it reads the first byte (on port 80, up to the
 * 32 of an http-01 request's fixed start) and allocates nothing.
 */
export function decideFirstBytes(port: number, client: Uint8Array, service: Uint8Array, clientEof: boolean, serviceEof = false): FirstVerdict {
  if (service.length > 0 || serviceEof) return FIRST_VERDICT.plain;
  if (client.length === 0) return clientEof ? FIRST_VERDICT.plain : FIRST_VERDICT.reset;
  if (MAY_OPEN[client[0] as number] === 0) return port === HTTP01_PORT && mayBeHttp01(client) ? FIRST_VERDICT.takeOver : FIRST_VERDICT.plain;
  return decideOpening(port, Buffer.from(client.buffer, client.byteOffset, client.byteLength));
}

/** Off the hot path: the client's first byte may start a ClientHello (0x16) or an opening detected on any port (0x00, PostgreSQL's). */
function decideOpening(port: number, client: Buffer): FirstVerdict {
  // Not TLS is settled by the first two bytes, whatever maxHelloBytes is configured:
  // everything else (a hello, part of one, an invalid one) is Node's.
  if (parseClientHello(client).kind !== 'not-tls') return FIRST_VERDICT.takeOver;
  if (port === HTTP01_PORT && mayBeHttp01(client)) return FIRST_VERDICT.takeOver;
  for (const f of ANYWHERE) if (f.detect(client) !== 'no') return FIRST_VERDICT.takeOver;
  return FIRST_VERDICT.plain;
}

// SPDX-License-Identifier: MIT
// The contract between the connection and one in-band TLS upgrade dialogue
// (PostgreSQL SSLRequest, SMTP/IMAP/POP3 STARTTLS, MySQL's SSL flag). The
// dialogue speaks for the service until the client asks for TLS, then hands
// both sockets back; connection.ts does the handshake and the relay.
import type net from 'node:net';

/** A closed set: it becomes a metric label. */
export type UpgradeProtocol = 'postgres' | 'smtp' | 'imap' | 'pop3' | 'mysql';
export const UPGRADE_PROTOCOLS: readonly UpgradeProtocol[] = ['postgres', 'smtp', 'imap', 'pop3', 'mysql'];

/** Who spoke first decides which dialogues can apply. */
export type FirstSpeaker = 'client' | 'server';

export type UpgradeOutcome =
  /**
   * The client asked for TLS and was told yes. The connection now reads a
   * ClientHello from `client` (clientRest first: bytes already read past the
   * upgrade request), terminates TLS, and relays the plaintext session to
   * `upstream` (upstreamRest first: bytes the service sent that the client
   * has not seen yet and must see after the handshake).
   */
  | { kind: 'tls'; clientRest: Buffer; upstreamRest: Buffer; transform?: SessionTransform }
  /**
   * Step aside: the service does TLS itself, the client did not ask, or the
   * protocol is not what was expected. Relay unchanged, with these bytes
   * first (each goes to its own socket as if never read).
   */
  | { kind: 'passthrough'; clientRest: Buffer; upstreamRest: Buffer }
  /** Malformed or truncated: both sides are closed cleanly. */
  | { kind: 'failed'; reason: string };

/**
 * Rewrites the first plaintext bytes the client sends after the handshake, for
 * protocols whose next packet must change on its way to a service that never
 * saw the upgrade (MySQL: sequence number and SSL flag). Called with the
 * client's plaintext until it returns 'done'; bounded by the caller.
 */
export interface SessionTransform {
  /** Returns the bytes to forward now and whether it wants to see more. */
  clientData(chunk: Buffer): { forward: Buffer; done: boolean };
  /**
   * Optional: rewrites the service's bytes to the client in the same phase
   * (MySQL: its sequence numbers until authentication ends). When present,
   * the phase ends when this says done, whatever clientData said; clientData
   * is then called once more with no bytes, and returns all it still holds.
   */
  upstreamData?(chunk: Buffer): { forward: Buffer; done: boolean };
}

export interface Dialogue {
  readonly protocol: UpgradeProtocol;
  /**
   * Runs the pre-TLS exchange. On entry both sockets are paused with no
   * listeners of the caller's; `first` holds what was already read from the
   * side that spoke first. The dialogue may read and write both sockets; on
   * resolve it has removed its own listeners and left both paused. It never
   * rejects. `signal` aborts it (the caller's timeout or shutdown): it must
   * resolve promptly with { kind: 'failed', reason: 'aborted' }.
   */
  run(client: net.Socket, upstream: net.Socket, first: Buffer, signal: AbortSignal): Promise<UpgradeOutcome>;
}

export interface DialogueFactory {
  readonly protocol: UpgradeProtocol;
  readonly firstSpeaker: FirstSpeaker;
  /** Ports where this protocol is expected by default (overridable by configuration). */
  readonly defaultPorts: readonly number[];
  /**
   * Whether `first` (what the first speaker sent; possibly only a part) looks
   * like this protocol: 'yes', 'no', or 'need-more' (asked again with more
   * bytes, bounded by the caller). Used on configured ports and, where the
   * protocol has an unmistakable opening, on every port.
   */
  detect(first: Buffer): 'yes' | 'no' | 'need-more';
  /** Whether detect() alone is safe on any port (an unmistakable opening). */
  readonly detectAnywhere: boolean;
  create(): Dialogue;
}

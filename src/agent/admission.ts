// SPDX-License-Identifier: MIT
// Whether a new connection may be held, decided from counts of the whole host
// (every worker): the host's cap (--max-connections), each client's cap
// (--max-connections-per-client; a client is an IPv4 address or an IPv6 /64,
// src/client-key.ts), and, near the host's cap, how short the idle timeout
// becomes (Envoy's overload manager "reduce timeouts"). Pure functions of
// numbers, so a native data path can ask the same question later; the counts
// come from a ConnectionCounter.
import type { ClientKey } from '../client-key';

/** Connections held now, the one being decided included. */
export interface ConnectionCounts {
  /** This client's, on every worker (0 when the client is not counted apart). */
  client: number;
  /** Every client's, on every worker. */
  host: number;
}

/** Where the counts live (shared memory in `jfe run`, see daemon/conn-table.ts). */
export interface ConnectionCounter {
  /**
   * Counts one more connection of `key` (null: not an address; counted in the
   * host's total only) and fills `counts`. Returns a ticket for release.
   */
  acquire(key: ClientKey | null, counts: ConnectionCounts): number;
  /** The connection of `ticket` is gone (exactly once per acquire). */
  release(ticket: number): void;
  /** Connections held on the host now. */
  hostTotal(): number;
}

export interface AdmissionLimits {
  maxConnections: number;
  maxPerClient: number;
}

/** accept; client-limit: this client holds its cap; host-limit: the host is at its cap (make room, or refuse). */
export type Admission = 'accept' | 'client-limit' | 'host-limit';
/** Why a connection was refused: a metric label. */
export type Refusal = Exclude<Admission, 'accept'>;
/** Why a held connection was closed before its idle timeout: a metric label. */
export type Eviction = 'idle-overload' | 'make-room';

export function admit(counts: ConnectionCounts, limits: AdmissionLimits): Admission {
  if (counts.client > limits.maxPerClient) return 'client-limit';
  if (counts.host > limits.maxConnections) return 'host-limit';
  return 'accept';
}

/** From this share of the host's cap on, idle connections are closed sooner. */
export const OVERLOAD_START = 0.8;
/** Below this share again, the overload ends (a gap, so it does not flap at the threshold). */
export const OVERLOAD_END = 0.7;
/** The idle timeout at the cap: connections silent this long are closed. Never above --idle-timeout. */
export const OVERLOAD_IDLE_FLOOR_MS = 10_000;
/** At the cap, a new connection may close the longest-idle one if that one was silent at least this long. */
export const MAKE_ROOM_MIN_IDLE_MS = 1_000;

/**
 * The idle timeout at this load: --idle-timeout below OVERLOAD_START of the
 * cap, then shorter in proportion, down to OVERLOAD_IDLE_FLOOR_MS at the cap.
 */
export function overloadIdleTimeoutMs(host: number, maxConnections: number, idleTimeoutMs: number): number {
  const load = host / maxConnections;
  if (!(load >= OVERLOAD_START)) return idleTimeoutMs;
  const floor = Math.min(OVERLOAD_IDLE_FLOOR_MS, idleTimeoutMs);
  const f = Math.min(1, (load - OVERLOAD_START) / (1 - OVERLOAD_START));
  return Math.round(idleTimeoutMs - (idleTimeoutMs - floor) * f);
}

/** Counts in this process only: for tests, and for a worker that got no share of the host's counts. */
export class LocalConnectionCounter implements ConnectionCounter {
  private host = 0;
  private nextTicket = 1;
  private readonly perClient = new Map<string, number>();
  private readonly tickets = new Map<number, string | null>();

  acquire(key: ClientKey | null, counts: ConnectionCounts): number {
    const k = key === null ? null : `${key.family} ${key.hi} ${key.lo}`;
    this.host++;
    const n = k === null ? 0 : (this.perClient.get(k) ?? 0) + 1;
    if (k !== null) this.perClient.set(k, n);
    const ticket = this.nextTicket++;
    this.tickets.set(ticket, k);
    counts.client = n;
    counts.host = this.host;
    return ticket;
  }

  release(ticket: number): void {
    const k = this.tickets.get(ticket);
    if (k === undefined) return;
    this.tickets.delete(ticket);
    this.host--;
    if (k === null) return;
    const n = (this.perClient.get(k) ?? 1) - 1;
    if (n > 0) this.perClient.set(k, n);
    else this.perClient.delete(k);
  }

  hostTotal(): number {
    return this.host;
  }
}

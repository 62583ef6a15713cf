// SPDX-License-Identifier: MIT
// The contract for deciding whether a name from SNI (attacker input) may be
// sent to an ACME CA. Refusals cost the CA nothing and are counted.
import type { PolicyRefusal } from './cert-events';
import type { RateLimitHit } from './rate-limits';

/** Refused: the name gets no ACME order. Rate-limited: not now (a deferral), maybe later. */
export type PolicyVerdict = { ok: true } | { ok: false; reason: PolicyRefusal } | { ok: false; reason: 'rate-limited'; limit: RateLimitHit };

export interface NamePolicy {
  /**
   * May `name` (normalised: lower case, no trailing dot) be ordered from an
   * ACME CA for a client that dialled `dialledAddress`? null: no client to
   * go by (a background renewal after a restart); the name must then point
   * at any of this host's addresses. `clientAddress`: the client whose
   * handshake asked (null for a renewal); the orders one client causes may
   * take only a share of each rate-limit window. Never rejects.
   */
  check(name: string, dialledAddress: string | null, clientAddress?: string | null): Promise<PolicyVerdict>;
  /** Records that an order for `name` was placed (for rate limits). */
  recordOrder(name: string): void;
}

// SPDX-License-Identifier: MIT
// What the certificate side reports; metrics/ implements it. Labels stay
// bounded: names appear only once they passed policy.

/** A closed set: it becomes a metric label. */
export type PolicyRefusal =
  | 'invalid-name'
  | 'ip-literal'
  | 'wildcard'
  | 'not-allowed'
  | 'dialled-not-local'
  | 'ask-refused'
  | 'ask-error'
  | 'dns-mismatch'
  | 'dns-error'
  | 'negative-cache';

/**
 * Why a name ACME may issue for got no ACME certificate now (the handshake
 * gets the internal CA's; a later one may get ACME's). A closed set: a metric label.
 */
export type AcmeDeferral =
  /** The orders of the name's registered domain in a window (--rate-limit-domain). */
  | 'rate-limit-domain'
  /** All orders in a window (--rate-limit-total). */
  | 'rate-limit-total'
  /** The client's share of either window (--rate-limit-client-share). */
  | 'rate-limit-client'
  /** A recent order for the name failed: retried after a backoff. */
  | 'backoff'
  /** The order is under way and took longer than --issue-wait for this handshake. */
  | 'issue-wait';

export interface CertEvents {
  /** An attempt to obtain a certificate from an issuer ended (result: ok, error, timeout). */
  issued(issuer: string, result: 'ok' | 'error' | 'timeout'): void;
  /** A certificate is held (loaded, issued or renewed) for a name that passed policy. */
  expiry(name: string, notAfter: Date): void;
  /** A name was refused before any request reached a CA. */
  policyRefused(reason: PolicyRefusal): void;
  /** A name that may get an ACME certificate did not get one now. */
  acmeDeferred(reason: AcmeDeferral): void;
}

export const NO_CERT_EVENTS: CertEvents = {
  issued: () => undefined,
  expiry: () => undefined,
  policyRefused: () => undefined,
  acmeDeferred: () => undefined,
};

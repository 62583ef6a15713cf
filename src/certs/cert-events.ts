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
  | 'rate-limited'
  | 'negative-cache';

export interface CertEvents {
  /** An attempt to obtain a certificate from an issuer ended (result: ok, error, timeout). */
  issued(issuer: string, result: 'ok' | 'error' | 'timeout'): void;
  /** A certificate is held (loaded, issued or renewed) for a name that passed policy. */
  expiry(name: string, notAfter: Date): void;
  /** A name was refused before any request reached a CA. */
  policyRefused(reason: PolicyRefusal): void;
}

export const NO_CERT_EVENTS: CertEvents = {
  issued: () => undefined,
  expiry: () => undefined,
  policyRefused: () => undefined,
};

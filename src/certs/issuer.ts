// SPDX-License-Identifier: MIT
// What an issuer (the internal CA today, ACME later) gives the certificate
// manager: a leaf for one normalised name, with its chain and key.

export interface IssuedCert {
  /** PEM: the leaf first, then the chain up to (and including) the issuing CA. */
  certPem: string;
  /** PEM PKCS#8 private key of the leaf. */
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

export interface Issuer {
  /**
   * Stable and file-safe ([a-z0-9-]): certificates are stored under
   * <state>/certs/<name>/, so renaming an issuer orphans what it issued.
   */
  readonly name: string;
  /**
   * A certificate for `name`: a lower-case DNS name (RFC 1123) or an IP address
   * in canonical text form, as normalised by the manager. Rejects on failure.
   */
  issue(name: string): Promise<IssuedCert>;
}

/** Issuer names become directory names: keep them to a closed, file-safe alphabet. */
export const ISSUER_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

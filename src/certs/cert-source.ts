// SPDX-License-Identifier: MIT
// What the agent asks of the certificate side: a secure context for the name
// a client asked for. The agent knows this interface and nothing else of certs/.
import type { SecureContext } from 'node:tls';

export interface CertRequest {
  /** SNI from the ClientHello (untrusted input), or null when the hello had none. */
  servername: string | null;
  /** The address the client dialled (the original destination): the name used without SNI. */
  localAddress: string;
  /** The client's own address: whose share of the ACME allowance a new name uses (the agent always gives it). */
  clientAddress?: string;
}

export interface CertSource {
  /**
   * A context holding a certificate and key for the request. Resolves at once
   * for names already held; may wait, bounded, for a new one. Never rejects
   * for a name it cannot serve: it falls back to a certificate for localAddress.
   */
  contextFor(req: CertRequest): Promise<SecureContext>;
}

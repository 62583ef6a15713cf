// SPDX-License-Identifier: MIT
// One ACME directory as an Issuer: an order per call, answered with http-01 or
// tls-alpn-01 by the agent itself (challenge files), leaf key ECDSA P-256.
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import * as acme from 'acme-client';
import { JfeError } from '../../errors';
import type { Logger } from '../../log';
import type { IssuedCert, Issuer } from '../issuer';
import { withTimeout } from '../with-timeout';
import type { ChallengeFiles } from './challenge-files';

export type ChallengeType = 'http-01' | 'tls-alpn-01';

export interface AcmeIssuerOptions {
  /** 'acme' or 'acme-fallback': a label in logs and metrics. */
  name: string;
  directoryUrl: string;
  accountKeyPem: string;
  email: string | null;
  eab: { kid: string; hmacKey: string } | null;
  /** Challenge types in order of preference; the CA's offer is matched against it. */
  challengeTypes: readonly ChallengeType[];
  challenges: ChallengeFiles;
  log: Logger;
  /** Called when an order is about to be placed (rate limits). */
  onOrder?: (name: string) => void;
  /** A whole order (account, authorizations, finalize, download) gives up after this long. */
  orderTimeoutMs?: number;
}

export const LETS_ENCRYPT_PRODUCTION = acme.directory.letsencrypt.production;
export const LETS_ENCRYPT_STAGING = acme.directory.letsencrypt.staging;
const DEFAULT_ORDER_TIMEOUT_MS = 5 * 60_000;
/** One HTTP request to the CA; a CA that hangs must not hold a name's order forever. */
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_CN = 64;

/**
 * Extra trust for the CA's HTTPS (Pebble's own test CA), added to Node's
 * bundled roots. acme-client has one HTTP client per process; jfe has one ACME
 * owner per process, so setting it here is setting it for that owner.
 */
export function configureAcmeHttp(extraCaPem: string | null, log: Logger): void {
  acme.axios.defaults.timeout = REQUEST_TIMEOUT_MS;
  // acme-client retries a failed request 5 times, 5 s apart and growing (75 s
  // for a CA that refuses connections), before the fallback CA gets a chance.
  // Twice, 2 s and 4 s, is enough for a blip; a Retry-After is still honoured.
  const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings;
  if (settings) {
    settings.retryMaxAttempts = 2;
    settings.retryDefaultDelay = 2;
  }
  if (extraCaPem !== null) acme.axios.defaults.httpsAgent = new https.Agent({ ca: [...tls.rootCertificates, extraCaPem], keepAlive: true });
  const acmeLog = log.child({ component: 'acme-client' });
  acme.setLogger((msg) => acmeLog.debug({ msg }, 'acme-client'));
}

export class AcmeIssuer implements Issuer {
  readonly name: string;
  private client: acme.Client;
  private readonly log: Logger;

  constructor(private readonly opts: AcmeIssuerOptions) {
    this.name = opts.name;
    this.log = opts.log.child({ component: 'acme', issuer: opts.name });
    this.client = this.createClient();
  }

  private createClient(): acme.Client {
    return new acme.Client({
      directoryUrl: this.opts.directoryUrl,
      accountKey: this.opts.accountKeyPem,
      ...(this.opts.eab ? { externalAccountBinding: this.opts.eab } : {}),
      backoffAttempts: 10,
      backoffMin: 500,
      backoffMax: 5000,
    });
  }

  async issue(name: string): Promise<IssuedCert> {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const [, csr] = await acme.crypto.createCsr({ altNames: [name], ...(name.length <= MAX_CN ? { commonName: name } : {}) }, keyPem);
    let chainPem: string;
    try {
      await withTimeout(this.ensureAccount(), REQUEST_TIMEOUT_MS * 2, (ms) => `ACME account at ${this.opts.directoryUrl}: no answer within ${ms} ms`);
      this.opts.onOrder?.(name);
      this.log.info({ name, directory: this.opts.directoryUrl }, 'placing ACME order');
      chainPem = await withTimeout(
        this.client.auto({
          csr,
          ...(this.opts.email !== null ? { email: this.opts.email } : {}),
          termsOfServiceAgreed: true,
          challengePriority: [...this.opts.challengeTypes],
          // acme-client's self-check would fetch the name from here, which may
          // not resolve from this host; the CA's validation is what counts.
          skipChallengeVerification: true,
          challengeCreateFn: (authz, challenge, keyAuthorization) => this.present(authz, challenge, keyAuthorization),
          challengeRemoveFn: (authz, challenge) => Promise.resolve(this.withdraw(authz, challenge)),
        }),
        this.opts.orderTimeoutMs ?? DEFAULT_ORDER_TIMEOUT_MS,
        (ms) => `ACME order for ${name} at ${this.opts.directoryUrl}: no answer within ${ms} ms`,
      );
    } catch (err) {
      // Start the next order afresh (directory, nonce, account lookup): the CA
      // may have moved its endpoints or lost the account (a reset test CA).
      this.client = this.createClient();
      throw new JfeError('JFE_ERR_CERT', `ACME order for ${name} at ${this.opts.directoryUrl} failed: ${(err as Error).message}`, { cause: err });
    }
    const leaf = new X509Certificate(chainPem);
    return { certPem: chainPem, keyPem, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) };
  }

  /** Registers (or finds) the account once per process; acme-client's auto() then skips it. */
  private async ensureAccount(): Promise<void> {
    if (this.accountUrl() !== null) return;
    try {
      await this.client.createAccount({ termsOfServiceAgreed: true, ...(this.opts.email !== null ? { contact: [`mailto:${this.opts.email}`] } : {}) });
    } catch (err) {
      // For a key that already has an account (HTTP 200), acme-client follows up
      // with an account update that some CAs (Pebble) refuse as empty; by then
      // the account URL is known, which is all an order needs.
      if (this.accountUrl() === null) throw err;
      this.log.debug({ err }, 'account exists; its update was refused');
    }
  }

  private accountUrl(): string | null {
    try {
      return this.client.getAccountUrl();
    } catch {
      return null; // not registered in this process yet
    }
  }

  private async present(authz: acme.Authorization, challenge: { type: string; token: string }, keyAuthorization: string): Promise<void> {
    if (challenge.type === 'http-01') {
      this.opts.challenges.setHttp01(challenge.token, keyAuthorization);
    } else if (challenge.type === 'tls-alpn-01') {
      const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
      this.opts.challenges.setTlsAlpn01(authz.identifier.value, cert.toString(), key.toString());
    } else {
      throw new JfeError('JFE_ERR_CERT', `ACME challenge type ${challenge.type} is not answered by jfe`);
    }
    this.log.debug({ name: authz.identifier.value, type: challenge.type }, 'challenge ready');
  }

  private withdraw(authz: acme.Authorization, challenge: { type: string; token: string }): void {
    if (challenge.type === 'http-01') this.opts.challenges.remove('http-01', challenge.token);
    else if (challenge.type === 'tls-alpn-01') this.opts.challenges.remove('tls-alpn-01', authz.identifier.value);
  }
}

// SPDX-License-Identifier: MIT
// The one owner of ACME orders for a jfe (the primary process): name policy
// first, then one order per name however many workers and handshakes ask,
// the ACME issuers tried in turn, the result stored, and a backoff per name
// after a failure so a CA that is down is not hammered.
import { X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import type { Logger } from '../../log';
import type { CertEvents } from '../cert-events';
import { fileSafeName, nameFromFileSafe } from '../cert-name';
import type { IssuedCert, Issuer } from '../issuer';
import type { NamePolicy } from '../name-policy';
import { type StateDir, isTempName } from '../state-dir';
import { CERTS_DIR, CERT_FILE, type CertStore, KEY_FILE } from '../store';
import { acmeRenewalDue } from './renewal';

/** ACME leaves are stored under this issuer name, whichever directory issued them. */
export const ACME_STORE_ISSUER = 'acme';
const MAX_BACKOFF_ENTRIES = 10_000;

export type OrderReply =
  | { kind: 'cert'; certPem: string; keyPem: string }
  | { kind: 'refused'; reason: string }
  | { kind: 'error'; message: string; retryInMs: number };

export interface AcmeOrdersOptions {
  /** The ACME issuers in order (primary directory, then the fallback). */
  issuers: readonly Issuer[];
  policy: NamePolicy;
  store: CertStore;
  stateDir: StateDir;
  events: CertEvents;
  log: Logger;
  now?: () => number;
  retryMinMs: number;
  retryMaxMs: number;
}

interface Backoff {
  atMs: number;
  delayMs: number;
}

export class AcmeOrders {
  private readonly inFlight = new Map<string, Promise<OrderReply>>();
  private readonly backoff = new Map<string, Backoff>();
  /** The address a client last dialled for a name: what a renewal with no handshake checks policy against. */
  private readonly lastDialled = new Map<string, string>();
  private readonly log: Logger;
  private readonly now: () => number;
  /** Orders placed since start (all issuers), for tests and status. */
  ordersTotal = 0;

  constructor(private readonly opts: AcmeOrdersOptions) {
    this.log = opts.log.child({ component: 'acme-orders' });
    this.now = opts.now ?? Date.now;
  }

  /**
   * A certificate for `name` (normalised DNS name) for a client at
   * `clientAddress` that dialled `dialledAddress` (both null: no client, a
   * background renewal): the stored one while it is not due for renewal, else
   * a new order, if policy allows. Never rejects.
   */
  async request(name: string, dialledAddress: string | null, clientAddress: string | null = null): Promise<OrderReply> {
    if (dialledAddress !== null) this.noteDialled(name, dialledAddress);
    const stored = await this.readStored(name);
    if (stored && !acmeRenewalDue(stored.info, this.now())) return { kind: 'cert', certPem: stored.certPem, keyPem: stored.keyPem };
    const pending = this.inFlight.get(name);
    if (pending) return pending;
    const b = this.backoff.get(name);
    if (b && this.now() < b.atMs) {
      this.opts.events.acmeDeferred('backoff');
      return { kind: 'error', message: 'a recent order failed; waiting before the next', retryInMs: b.atMs - this.now() };
    }
    const verdict = await this.opts.policy.check(name, dialledAddress, clientAddress);
    if (!verdict.ok) return { kind: 'refused', reason: verdict.reason };
    // Checked again: another request may have started the order during the policy's await.
    const started = this.inFlight.get(name);
    if (started) return started;
    const p = this.order(name).finally(() => this.inFlight.delete(name));
    this.inFlight.set(name, p);
    return p;
  }

  /**
   * Renews every stored leaf that is due, whether or not a client asked for
   * it lately, so a name used rarely does not find its certificate expired.
   * One at a time: a renewal wave must not burst at the CA. Policy still
   * applies: against the address last dialled for the name, or, when none is
   * known since the start, against any of this host's addresses.
   */
  async renewDue(): Promise<number> {
    let renewed = 0;
    for (const name of await this.storedNames()) {
      const stored = await this.readStored(name);
      if (!stored || !acmeRenewalDue(stored.info, this.now()) || this.inFlight.has(name)) continue;
      const reply = await this.request(name, this.lastDialled.get(name) ?? null);
      if (reply.kind === 'cert') renewed++;
    }
    return renewed;
  }

  /** Runs renewDue every intervalMs; a failure is logged and the next pass retries. */
  startRenewalTimer(intervalMs: number): () => void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      this.renewDue()
        .catch((err: unknown) => this.log.warn({ err }, 'renewal pass failed; the next pass retries'))
        .finally(() => (running = false));
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  private noteDialled(name: string, address: string): void {
    this.lastDialled.delete(name);
    this.lastDialled.set(name, address);
    if (this.lastDialled.size > MAX_BACKOFF_ENTRIES) {
      const oldest = this.lastDialled.keys().next();
      if (oldest.done !== true) this.lastDialled.delete(oldest.value);
    }
  }

  private async storedNames(): Promise<string[]> {
    try {
      const entries = await fsp.readdir(this.opts.stateDir.path(CERTS_DIR, ACME_STORE_ISSUER), { withFileTypes: true });
      return entries
        .filter((e) => e.isDirectory() && !isTempName(e.name))
        .map((e) => nameFromFileSafe(e.name))
        .filter((n): n is string => n !== null);
    } catch {
      return []; // nothing stored yet
    }
  }

  private async order(name: string): Promise<OrderReply> {
    let lastErr: unknown;
    for (const issuer of this.opts.issuers) {
      this.ordersTotal++;
      let issued: IssuedCert;
      try {
        issued = await issuer.issue(name);
      } catch (err) {
        lastErr = err;
        this.opts.events.issued(issuer.name, 'error');
        this.log.warn({ err, issuer: issuer.name, name }, 'ACME order failed');
        continue;
      }
      this.opts.events.issued(issuer.name, 'ok');
      try {
        const entry = await this.opts.store.put(ACME_STORE_ISSUER, name, issued);
        this.opts.events.expiry(name, entry.info.notAfter);
        this.log.info({ issuer: issuer.name, name, serial: entry.info.serial, notAfter: entry.info.notAfter.toISOString() }, 'ACME certificate issued');
      } catch (err) {
        lastErr = err;
        this.log.warn({ err, issuer: issuer.name, name }, 'ACME certificate unusable');
        continue;
      }
      this.backoff.delete(name);
      return { kind: 'cert', certPem: issued.certPem, keyPem: issued.keyPem };
    }
    const prev = this.backoff.get(name);
    const delayMs = prev ? Math.min(prev.delayMs * 2, this.opts.retryMaxMs) : this.opts.retryMinMs;
    this.backoff.delete(name);
    this.backoff.set(name, { atMs: this.now() + delayMs, delayMs });
    if (this.backoff.size > MAX_BACKOFF_ENTRIES) {
      const oldest = this.backoff.keys().next();
      if (oldest.done !== true) this.backoff.delete(oldest.value);
    }
    this.log.warn({ name, retryInMs: delayMs, err: lastErr }, 'no ACME certificate; clients get the internal CA meanwhile');
    return { kind: 'error', message: (lastErr as Error | undefined)?.message ?? 'no ACME issuer', retryInMs: delayMs };
  }

  /** The stored leaf, read from disk (the primary keeps no contexts). Null when none or unusable. */
  private async readStored(name: string): Promise<{ certPem: string; keyPem: string; info: { notBefore: Date; notAfter: Date; serial: string } } | null> {
    const dir = this.opts.stateDir.path(CERTS_DIR, ACME_STORE_ISSUER, fileSafeName(name));
    try {
      const [certPem, keyPem] = await Promise.all([fsp.readFile(`${dir}/${CERT_FILE}`, 'utf8'), fsp.readFile(`${dir}/${KEY_FILE}`, 'utf8')]);
      const leaf = new X509Certificate(certPem);
      return { certPem, keyPem, info: { notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), serial: leaf.serialNumber.toUpperCase() } };
    } catch {
      return null; // none stored (or half-written): order anew
    }
  }
}

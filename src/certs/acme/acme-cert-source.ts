// SPDX-License-Identifier: MIT
// A worker's CertSource with an ACME issuer: held ACME leaves at once; a new
// name is asked of the order owner (the primary) and waited for at most
// issueWaitMs, after which the handshake gets the internal CA's certificate
// while the order goes on. IP names and names refused by policy go straight
// to the internal CA.
import type { SecureContext } from 'node:tls';
import type { Logger } from '../../log';
import type { CertEvents } from '../cert-events';
import { canonicalIp, isIpName, normaliseServername } from '../cert-name';
import type { CertRequest, CertSource } from '../cert-source';
import type { CertEntry, CertStore } from '../store';
import { ACME_STORE_ISSUER, type OrderReply } from './acme-orders';
import { acmeRenewalDue } from './renewal';

/** How a worker reaches the order owner. clientAddress: null for a renewal (no client's share is used). */
export type RequestOrder = (name: string, dialledAddress: string, clientAddress: string | null) => Promise<OrderReply>;

export interface AcmeCertSourceOptions {
  store: CertStore;
  /** The internal CA's manager: the fallback for every name ACME does not serve (now). */
  internal: CertSource;
  requestOrder: RequestOrder;
  events: CertEvents;
  log: Logger;
  issueWaitMs: number;
  now?: () => number;
  /** After a refusal or failure, this worker sends the name straight to the internal CA for this long. */
  negativeTtlMs?: number;
}

const DEFAULT_NEGATIVE_TTL_MS = 5_000;
const MAX_NEGATIVE = 10_000;

export class AcmeCertSource implements CertSource {
  private readonly inFlight = new Map<string, Promise<CertEntry | null>>();
  /** Names refused or failed a moment ago: their handshakes do not even ask (bounded; names are attacker input). */
  private readonly negative = new Map<string, number>();
  private readonly renewing = new Set<string>();
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly opts: AcmeCertSourceOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log.child({ component: 'acme-certs' });
  }

  contextFor(req: CertRequest): Promise<SecureContext> {
    const fromSni = req.servername === null ? null : normaliseServername(req.servername);
    const name = fromSni ?? canonicalIp(req.localAddress);
    if (name === null || isIpName(name)) return this.opts.internal.contextFor(req);
    const now = this.now();
    const held = this.opts.store.lookup(ACME_STORE_ISSUER, name);
    if (held && now < held.info.notAfter.getTime()) {
      if (acmeRenewalDue(held.info, now)) this.renew(name, canonicalIp(req.localAddress) ?? req.localAddress);
      return Promise.resolve(held.context);
    }
    const until = this.negative.get(name);
    if (until !== undefined) {
      if (Date.now() < until) return this.opts.internal.contextFor(req);
      this.negative.delete(name);
    }
    return this.waitBounded(this.obtain(name, canonicalIp(req.localAddress) ?? req.localAddress, req.clientAddress ?? null), req);
  }

  /** Resolves when no request is pending (tests, drain). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  private async waitBounded(p: Promise<CertEntry | null>, req: CertRequest): Promise<SecureContext> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), this.opts.issueWaitMs);
    });
    let waited = false;
    const entry = await Promise.race([p, timeout.then(() => ((waited = true), null))]);
    clearTimeout(timer);
    if (entry) return entry.context;
    // The order goes on; this handshake gets the internal CA's certificate, a later one ACME's.
    if (waited) this.opts.events.acmeDeferred('issue-wait');
    return this.opts.internal.contextFor(req);
  }

  /** One request per name in this worker; the owner makes it one order across workers. */
  private obtain(name: string, dialledAddress: string, clientAddress: string | null): Promise<CertEntry | null> {
    let p = this.inFlight.get(name);
    if (!p) {
      p = this.ask(name, dialledAddress, clientAddress).finally(() => this.inFlight.delete(name));
      this.inFlight.set(name, p);
    }
    return p;
  }

  private async ask(name: string, dialledAddress: string, clientAddress: string | null): Promise<CertEntry | null> {
    let reply: OrderReply;
    try {
      reply = await this.opts.requestOrder(name, dialledAddress, clientAddress);
    } catch (err) {
      reply = { kind: 'error', message: (err as Error).message, retryInMs: this.opts.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS };
    }
    if (reply.kind === 'cert') {
      try {
        const entry = await this.opts.store.put(ACME_STORE_ISSUER, name, { certPem: reply.certPem, keyPem: reply.keyPem, notBefore: new Date(0), notAfter: new Date(0) }, { alreadyWritten: true });
        this.opts.events.expiry(name, entry.info.notAfter);
        return entry;
      } catch (err) {
        this.log.warn({ err, name }, 'ACME certificate from the primary unusable; using the internal CA');
        this.remember(name, this.opts.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS);
        return null;
      }
    }
    const ttl = reply.kind === 'refused' ? (this.opts.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS) : Math.min(reply.retryInMs, this.opts.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS);
    this.remember(name, ttl);
    if (this.log.isLevelEnabled('debug')) this.log.debug({ name: name.slice(0, 64), reply }, 'no ACME certificate; internal CA used');
    return null;
  }

  private remember(name: string, ttlMs: number): void {
    this.negative.delete(name);
    this.negative.set(name, Date.now() + ttlMs);
    if (this.negative.size > MAX_NEGATIVE) {
      const oldest = this.negative.keys().next();
      if (oldest.done !== true) this.negative.delete(oldest.value);
    }
  }

  /** Renewal in the background; the held leaf keeps serving. The owner dedups across workers and backs off. */
  private renew(name: string, dialledAddress: string): void {
    if (this.renewing.has(name) || this.inFlight.has(name)) return;
    const until = this.negative.get(name);
    if (until !== undefined && Date.now() < until) return;
    this.renewing.add(name);
    void this.obtain(name, dialledAddress, null)
      .then((entry) => {
        if (entry) this.log.info({ name, serial: entry.info.serial, notAfter: entry.info.notAfter.toISOString() }, 'ACME certificate renewed');
        else this.log.warn({ name }, 'ACME renewal not done yet; keeping the current certificate');
      })
      .finally(() => this.renewing.delete(name));
  }
}

// SPDX-License-Identifier: MIT
// The agent's CertSource: SNI (untrusted) or the dialled address → a held
// SecureContext at once, or one issuance per name shared by every handshake
// that waits for it; renewal in the background; a fallback that never fails
// a handshake for a name it cannot serve.
import type { SecureContext } from 'node:tls';
import { JfeError, isJfeError } from '../errors';
import type { Logger } from '../log';
import { LogThrottle } from '../log-throttle';
import { type CertEvents, NO_CERT_EVENTS } from './cert-events';
import { canonicalIp, normaliseServername } from './cert-name';
import type { CertRequest, CertSource } from './cert-source';
import { ISSUER_NAME_RE, type Issuer } from './issuer';
import { InternalCa } from './internal-ca';
import { withTimeout } from './with-timeout';
import { type CertEntry, type CertInfo, CertStore, type ContextOptions } from './store';
import { DEFAULT_STATE_DIR, StateDir } from './state-dir';

export const DEFAULT_ISSUE_TIMEOUT_MS = 10_000;
export const DEFAULT_RENEW_RETRY_MIN_MS = 60_000;
export const DEFAULT_RENEW_RETRY_MAX_MS = 3600_000;
/** Names with a pending renewal backoff; bounded because they may be attacker-chosen. */
const MAX_RETRY_ENTRIES = 10_000;

export interface CertManagerOptions {
  issuer: Issuer;
  store: CertStore;
  log: Logger;
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number;
  /** How long a handshake waits for a new certificate before it gets the fallback; issuance goes on. */
  issueTimeoutMs?: number;
  /** First wait after a failed renewal; doubles up to renewRetryMaxMs. */
  renewRetryMinMs?: number;
  renewRetryMaxMs?: number;
  /** Issuance results for metrics (NO_CERT_EVENTS when absent). */
  events?: CertEvents;
}

export interface CertManagerStats {
  issuedTotal: number;
  renewedTotal: number;
  issueErrorsTotal: number;
  renewErrorsTotal: number;
  /** Handshakes that got the dialled address's certificate because their name could not be served. */
  fallbacksTotal: number;
  inFlight: number;
}

interface RetryState {
  atMs: number;
  delayMs: number;
}

/** Leaves are renewed when less than a third of their lifetime remains. */
export function renewalDue(info: Pick<CertInfo, 'notBefore' | 'notAfter'>, nowMs: number): boolean {
  const start = info.notBefore.getTime();
  const end = info.notAfter.getTime();
  return nowMs >= end - (end - start) / 3;
}

export class CertManager implements CertSource {
  private readonly issuer: Issuer;
  private readonly store: CertStore;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly issueTimeoutMs: number;
  private readonly renewRetryMinMs: number;
  private readonly renewRetryMaxMs: number;
  private readonly events: CertEvents;
  /** Single flight: one issuance per (issuer, name), awaited by every handshake that needs it. */
  private readonly inFlight = new Map<string, Promise<CertEntry>>();
  private readonly renewRetry = new Map<string, RetryState>();
  /** One line per new name from SNI (attacker input) would let a flood of names write the journal: throttled. */
  private readonly issuedLog: LogThrottle;
  private readonly renewedLog: LogThrottle;
  private readonly counts = { issuedTotal: 0, renewedTotal: 0, issueErrorsTotal: 0, renewErrorsTotal: 0, fallbacksTotal: 0 };

  constructor(opts: CertManagerOptions) {
    if (!ISSUER_NAME_RE.test(opts.issuer.name)) {
      throw new JfeError('JFE_ERR_CERT', `issuer name ${JSON.stringify(opts.issuer.name)} is not file-safe ([a-z0-9-])`);
    }
    this.issuer = opts.issuer;
    this.store = opts.store;
    this.log = opts.log.child({ component: 'certs' });
    this.now = opts.now ?? Date.now;
    this.issueTimeoutMs = opts.issueTimeoutMs ?? DEFAULT_ISSUE_TIMEOUT_MS;
    this.renewRetryMinMs = opts.renewRetryMinMs ?? DEFAULT_RENEW_RETRY_MIN_MS;
    this.renewRetryMaxMs = opts.renewRetryMaxMs ?? DEFAULT_RENEW_RETRY_MAX_MS;
    this.events = opts.events ?? NO_CERT_EVENTS;
    const throttle = (msg: string, what: string): LogThrottle =>
      new LogThrottle(this.log, { level: 'info', msg, summaryMsg: `more certificates ${what} than logged at info; the rest were logged at debug`, perInterval: 30, intervalMs: 60_000, now: this.now });
    this.issuedLog = throttle('certificate issued', 'issued');
    this.renewedLog = throttle('certificate renewed', 'renewed');
  }

  /**
   * The context for a handshake. SNI is lower-cased, loses a trailing dot and
   * must be a DNS name (RFC 1123) or an IP literal; otherwise, or without SNI,
   * the dialled address is the name. A held, unexpired leaf is returned at
   * once (and renewed in the background when due). Otherwise the handshake
   * waits, bounded, for the issuance. If the name cannot be served, the
   * dialled address's certificate is returned; only if that fails too does
   * this reject (JFE_ERR_CERT), and the caller closes the connection.
   */
  contextFor(req: CertRequest): Promise<SecureContext> {
    const fromSni = req.servername === null ? null : normaliseServername(req.servername);
    const name = fromSni ?? canonicalIp(req.localAddress);
    if (name === null) {
      return Promise.reject(new JfeError('JFE_ERR_CERT', `no usable name: invalid SNI and local address ${JSON.stringify(req.localAddress)} is not an IP address`));
    }
    const held = this.heldContext(name);
    if (held) return Promise.resolve(held);
    return this.obtain(name, req.localAddress);
  }

  /** What is held for a normalised name (for status output and tests). */
  describe(name: string): CertInfo | undefined {
    return this.store.describe(this.issuer.name, name);
  }

  /** Resolves when no issuance is in flight: for tests and for a drain at shutdown. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) {
      await Promise.allSettled([...this.inFlight.values()]);
    }
  }

  stats(): CertManagerStats {
    return { ...this.counts, inFlight: this.inFlight.size };
  }

  /** The hot path: no await, no allocation beyond the lookup. */
  private heldContext(name: string): SecureContext | undefined {
    const entry = this.store.lookup(this.issuer.name, name);
    if (!entry) return undefined;
    const now = this.now();
    if (now >= entry.info.notAfter.getTime()) return undefined;
    if (renewalDue(entry.info, now)) this.renewInBackground(name, now);
    return entry.context;
  }

  private async obtain(name: string, localAddress: string): Promise<SecureContext> {
    try {
      return (await withTimeout(this.issueOnce(name), this.issueTimeoutMs, (ms) => `issue for ${name}: no certificate within ${ms} ms`)).context;
    } catch (err) {
      const fallback = canonicalIp(localAddress);
      if (fallback === null || fallback === name) {
        this.log.error({ err, name }, 'no certificate for the dialled address; closing the connection');
        throw isJfeError(err) ? err : new JfeError('JFE_ERR_CERT', `issue for ${name}: ${(err as Error).message}`, { cause: err });
      }
      this.counts.fallbacksTotal++;
      // Per handshake: the issuance failure itself was logged once, in issueAndStore.
      this.log.debug({ err, name, fallback }, 'cannot issue for the requested name; using the dialled address');
      return this.contextFor({ servername: null, localAddress: fallback });
    }
  }

  /** Issues and stores `name` once, however many callers ask while it runs. */
  private issueOnce(name: string): Promise<CertEntry> {
    const key = `${this.issuer.name}/${name}`;
    let p = this.inFlight.get(key);
    if (!p) {
      p = this.issueAndStore(name).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return p;
  }

  private async issueAndStore(name: string): Promise<CertEntry> {
    const renewing = this.store.describe(this.issuer.name, name) !== undefined;
    if (!renewing) {
      // Another worker may have issued it already: serve the same leaf, issue nothing.
      const adopted = await this.store.adoptFromDisk(this.issuer.name, name);
      const now = this.now();
      if (adopted && now < adopted.info.notAfter.getTime() && !renewalDue(adopted.info, now)) return adopted;
    }
    let entry: CertEntry;
    try {
      const issued = await this.issuer.issue(name);
      entry = await this.store.put(this.issuer.name, name, issued);
    } catch (err) {
      this.counts.issueErrorsTotal++;
      this.events.issued(this.issuer.name, 'error');
      // A renewal's failure is logged by renewInBackground, with its retry.
      if (!renewing) this.log.warn({ err, issuer: this.issuer.name, name }, 'certificate issuance failed');
      throw err;
    }
    this.events.issued(this.issuer.name, 'ok');
    this.renewRetry.delete(name);
    if (renewing) this.counts.renewedTotal++;
    else this.counts.issuedTotal++;
    (renewing ? this.renewedLog : this.issuedLog).note({
      issuer: this.issuer.name, name, serial: entry.info.serial, notAfter: entry.info.notAfter.toISOString(), persisted: entry.info.persisted,
    });
    return entry;
  }

  /**
   * Renewal keeps serving the current leaf: a failure is logged, counted and
   * retried with backoff (1 min doubling to 1 h by default) while it is valid.
   */
  private renewInBackground(name: string, now: number): void {
    if (this.inFlight.has(`${this.issuer.name}/${name}`)) return;
    const retry = this.renewRetry.get(name);
    if (retry && now < retry.atMs) return;
    this.issueOnce(name).catch((err: unknown) => {
      this.counts.renewErrorsTotal++;
      const delayMs = retry ? Math.min(retry.delayMs * 2, this.renewRetryMaxMs) : this.renewRetryMinMs;
      this.renewRetry.delete(name);
      this.renewRetry.set(name, { atMs: this.now() + delayMs, delayMs });
      if (this.renewRetry.size > MAX_RETRY_ENTRIES) {
        const oldest = this.renewRetry.keys().next();
        if (oldest.done !== true) this.renewRetry.delete(oldest.value);
      }
      this.log.warn({ err, name, retryInMs: delayMs }, 'renewal failed; keeping current certificate');
    });
  }
}

export interface OpenCertManagerOptions {
  /** Default /var/lib/jfe. */
  stateDir?: string;
  log: Logger;
  now?: () => number;
  maxStoredPerIssuer?: number;
  maxContexts?: number;
  contextOptions?: ContextOptions;
  issueTimeoutMs?: number;
  /** Issuance results and expiries for metrics. */
  events?: CertEvents;
}

/**
 * The default wiring for `jfe run`: state directory, internal CA, store and
 * manager. Throws JfeError (JFE_ERR_STATE) with what to do when the state
 * directory or the CA cannot be used.
 */
export async function openCertManager(opts: OpenCertManagerOptions): Promise<{ manager: CertManager; ca: InternalCa; store: CertStore }> {
  const stateDir = await StateDir.open(opts.stateDir ?? DEFAULT_STATE_DIR, opts.log);
  const ca = await InternalCa.open({ stateDir, log: opts.log, now: opts.now });
  const store = await CertStore.open({
    stateDir,
    log: opts.log,
    maxStoredPerIssuer: opts.maxStoredPerIssuer,
    maxContexts: opts.maxContexts,
    contextOptions: opts.contextOptions,
    events: opts.events,
  });
  const manager = new CertManager({ issuer: ca, store, log: opts.log, now: opts.now, issueTimeoutMs: opts.issueTimeoutMs, events: opts.events });
  return { manager, ca, store };
}

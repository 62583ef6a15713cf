// SPDX-License-Identifier: MIT
// The name policy for ACME: which SNI names (attacker input) may cost a
// request to a CA. Checks run cheapest first; the first refusal wins:
//   negative cache → syntax → --domain / --ask configured → rate limits (no
//   reservation) → dialled address is ours → --ask → DNS → rate limits
//   (reserving the slot).
// Nothing here talks to the CA: a refused name costs it nothing.
import type { Logger } from '../log';
import { LogThrottle } from '../log-throttle';
import { type AskOutcome, askAllows } from './ask-url';
import type { CertEvents, PolicyRefusal } from './cert-events';
import { canonicalIp, normaliseDnsName } from './cert-name';
import { LocalAddresses } from './local-addresses';
import { type ResolveAddresses, type Resolved, createNameResolver } from './name-resolver';
import type { NamePolicy, PolicyVerdict } from './name-policy';
import { clientKey, clientKeyText } from '../client-key';
import { OrderRateLimits, type RateLimitHit, type RateWindow } from './rate-limits';
import { SingleFlight } from './single-flight';
import { TtlLru } from './ttl-lru';

export type { RateWindow } from './rate-limits';

// The defaults below equal those of config/options.ts (a unit test holds them together).
/** Under Let's Encrypt's 50 certificates per registered domain per 7 days, with room for renewals and other tools. */
export const DEFAULT_RATE_LIMIT_DOMAIN: readonly RateWindow[] = [
  { count: 5, windowMs: 3_600_000 },
  { count: 40, windowMs: 7 * 86_400_000 },
];
/** Well under Let's Encrypt's 300 new orders per account per 3 hours. */
export const DEFAULT_RATE_LIMIT_TOTAL: readonly RateWindow[] = [
  { count: 50, windowMs: 3_600_000 },
  { count: 300, windowMs: 86_400_000 },
];
/**
 * A quarter: one stranger's names take at most a quarter of each window
 * (1 of the 5 hourly orders of a domain), three quarters stay for others.
 */
export const DEFAULT_RATE_LIMIT_CLIENT_SHARE = 0.25;
export const DEFAULT_NEGATIVE_CACHE_TTL_MS = 10 * 60_000;
export const DEFAULT_NEGATIVE_CACHE_SIZE = 10_000;
/** Failures (ask or DNS unreachable) may be passing: a refusal for one is remembered at most this long. */
export const ERROR_CACHE_TTL_MS = 60_000;
/** A passed check holds its rate-limit slot this long for the order that should follow. */
export const RESERVATION_MS = 5 * 60_000;

export interface NamePolicyOptions {
  /** Allowed names: exact ("example.com") or a suffix pattern ("*.example.com": any name below it). */
  domains: readonly string[];
  /** An URL asked `?domain=<name>`; 200 allows. Null: not configured. */
  askUrl: string | null;
  /** Addresses, besides the dialled one, that a name may resolve to (hosts behind NAT). */
  publicIps: readonly string[];
  askTimeoutMs?: number;
  /** "IP[:port]" for the A/AAAA lookups; null or absent: the system resolver. */
  dnsServer?: string | null;
  dnsTimeoutMs?: number;
  /** Orders per registered domain; [] is no limit. */
  rateLimitDomain?: readonly RateWindow[];
  /** Orders in total; [] is no limit. */
  rateLimitTotal?: readonly RateWindow[];
  /** The share of each window one client (IPv4 address, IPv6 /64) may take; 1: no share. */
  rateLimitClientShare?: number;
  negativeCacheTtlMs?: number;
  negativeCacheSize?: number;
}

export interface NamePolicyDeps {
  log: Logger;
  events: CertEvents;
  /** Seams for tests: the clock, the DNS lookup, the ask request, the host's addresses. */
  now?: () => number;
  resolve?: ResolveAddresses;
  ask?: (askUrl: string, name: string) => Promise<AskOutcome>;
  isLocalAddress?: (canonicalIp: string) => boolean;
}

/** "*.example.com" matches "a.example.com" and "b.a.example.com", not "example.com". */
export function matchesDomain(name: string, pattern: string): boolean {
  if (pattern.startsWith('*.')) return name.endsWith(pattern.slice(1));
  return name === pattern;
}

/** Why the refusal: the reason (a metric label) and, for the log only, what was seen. */
interface Refusal {
  reason: PolicyRefusal;
  detail?: Record<string, unknown>;
}
/** Not refused, but not now: a rate limit (or the client's share of one) is reached. */
interface Deferral {
  limit: RateLimitHit;
}

/** The client key (an IPv4 address or an IPv6 /64) whose share an order comes from; null: no client. */
function clientOf(address: string | null): string | null {
  const k = address === null ? null : clientKey(address);
  return k === null ? null : clientKeyText(k);
}

/** Refusals that depend on the name only, and those that also depend on the address dialled. */
function nameKey(name: string): string {
  return name;
}
function addressKey(name: string, ip: string | null): string {
  // A space never occurs in a name or an address; '*' stands for any local address.
  return `${name} ${ip ?? '*'}`;
}

class ConfiguredPolicy implements NamePolicy {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly resolve: ResolveAddresses;
  private readonly ask: (askUrl: string, name: string) => Promise<AskOutcome>;
  private readonly isLocal: (ip: string) => boolean;
  private readonly publicIps: ReadonlySet<string>;
  private readonly limits: OrderRateLimits;
  /**
   * Refused names, keyed by name (syntax, allow list, ask) or by name and
   * dialled address (DNS): an attacker dialling the wrong address must not
   * get a good name refused for the clients that dial the right one.
   */
  private readonly negative: TtlLru<PolicyRefusal>;
  private readonly negativeTtlMs: number;
  private readonly asks = new SingleFlight<AskOutcome>();
  private readonly lookups = new SingleFlight<Resolved>();
  /** Names are attacker input: a flood of refusals (or deferrals) must not flood the journal. */
  private readonly refusals: LogThrottle;
  private readonly deferrals: LogThrottle;

  constructor(
    private readonly opts: NamePolicyOptions,
    private readonly deps: NamePolicyDeps,
  ) {
    this.log = deps.log.child({ component: 'name-policy' });
    this.now = deps.now ?? Date.now;
    this.resolve = deps.resolve ?? createNameResolver({ server: opts.dnsServer ?? null, timeoutMs: opts.dnsTimeoutMs ?? 2000 });
    const askTimeoutMs = opts.askTimeoutMs ?? 3000;
    this.ask = deps.ask ?? ((url, name) => askAllows(url, name, { timeoutMs: askTimeoutMs }));
    if (deps.isLocalAddress !== undefined) {
      this.isLocal = deps.isLocalAddress;
    } else {
      const local = new LocalAddresses(undefined, this.now);
      this.isLocal = (ip) => local.has(ip);
    }
    this.publicIps = new Set(opts.publicIps.map((ip) => canonicalIp(ip) ?? ip));
    this.limits = new OrderRateLimits({
      perDomain: opts.rateLimitDomain ?? DEFAULT_RATE_LIMIT_DOMAIN,
      total: opts.rateLimitTotal ?? DEFAULT_RATE_LIMIT_TOTAL,
      clientShare: opts.rateLimitClientShare ?? DEFAULT_RATE_LIMIT_CLIENT_SHARE,
      reservationMs: RESERVATION_MS,
    });
    this.negative = new TtlLru(opts.negativeCacheSize ?? DEFAULT_NEGATIVE_CACHE_SIZE);
    this.negativeTtlMs = opts.negativeCacheTtlMs ?? DEFAULT_NEGATIVE_CACHE_TTL_MS;
    this.refusals = new LogThrottle(this.log, {
      level: 'info',
      msg: 'certificate name refused by policy',
      summaryMsg: 'more certificate names refused by policy than logged at info; the rest were logged at debug',
      perInterval: 30,
      intervalMs: 60_000,
      now: this.now,
    });
    this.deferrals = new LogThrottle(this.log, {
      level: 'info',
      msg: 'ACME order put off by a rate limit; the internal CA serves the name meanwhile',
      summaryMsg: 'more ACME orders put off by a rate limit than logged at info; the rest were logged at debug',
      perInterval: 30,
      intervalMs: 60_000,
      now: this.now,
    });
    this.describe();
  }

  async check(name: string, dialledAddress: string | null, clientAddress: string | null = null): Promise<PolicyVerdict> {
    const ip = dialledAddress === null ? null : (canonicalIp(dialledAddress) ?? dialledAddress);
    const client = clientOf(clientAddress);
    const cached = this.negative.get(nameKey(name), this.now()) ?? this.negative.get(addressKey(name, ip), this.now());
    if (cached !== undefined) {
      this.deps.events.policyRefused('negative-cache');
      // A repeat of a refusal already logged: debug only.
      this.log.debug({ name, dialledAddress: ip, reason: 'negative-cache', cachedReason: cached }, 'certificate name refused by policy');
      return { ok: false, reason: 'negative-cache' };
    }
    let refusal: Refusal | Deferral | null;
    try {
      refusal = await this.evaluate(name, ip, client);
    } catch (err) {
      // Never reached by design (each step catches its own failures); if it is,
      // refuse: the client still gets the internal CA's certificate.
      this.log.warn({ err, name }, 'name policy check failed unexpectedly; name refused');
      refusal = { reason: 'dns-error' };
    }
    if (refusal === null) {
      this.log.debug({ name, dialledAddress: ip, client }, 'certificate name allowed by policy');
      return { ok: true };
    }
    if ('limit' in refusal) return this.defer(name, client, refusal.limit);
    return this.refuse(name, ip, client, refusal);
  }

  recordOrder(name: string): void {
    this.limits.record(name, this.now());
  }

  private async evaluate(name: string, ip: string | null, client: string | null): Promise<Refusal | Deferral | null> {
    const syntax = this.syntax(name);
    if (syntax !== null) return this.remember(nameKey(name), { reason: syntax });
    const byDomain = this.opts.domains.some((d) => matchesDomain(name, d));
    if (!byDomain && this.opts.askUrl === null) return this.remember(nameKey(name), { reason: 'not-allowed' });
    // Before any request leaves the host: a name over the limit costs nothing.
    // Not remembered: the limit frees up on its own, and this check is cheap.
    const early = this.limits.wouldExceed(name, this.now(), client);
    if (early !== null) return { limit: early };
    if (ip !== null && !this.isLocal(ip)) return { reason: 'dialled-not-local' };
    if (!byDomain && this.opts.askUrl !== null) {
      const askUrl = this.opts.askUrl;
      const answer = await this.asks.run(name, () => this.ask(askUrl, name));
      if (answer.result === 'refused') {
        return this.remember(nameKey(name), { reason: 'ask-refused', detail: { status: answer.status, ...(answer.detail ? { why: answer.detail } : {}) } });
      }
      if (answer.result === 'error') return this.remember(nameKey(name), { reason: 'ask-error', detail: { why: answer.detail } }, ERROR_CACHE_TTL_MS);
    }
    const dns = await this.lookups.run(name, () => this.resolve(name));
    const pointsHere = (a: string): boolean => (ip === null ? this.isLocal(a) : a === ip) || this.publicIps.has(a);
    if (!dns.addresses.some(pointsHere)) {
      const detail = { resolved: dns.addresses.slice(0, 8), ...(this.publicIps.size > 0 ? { publicIps: [...this.publicIps] } : {}) };
      if (dns.error !== null) return this.remember(addressKey(name, ip), { reason: 'dns-error', detail: { ...detail, why: dns.error } }, ERROR_CACHE_TTL_MS);
      return this.remember(addressKey(name, ip), { reason: 'dns-mismatch', detail });
    }
    // Checked again, and the slot taken, now that the awaits are over: names
    // checked at the same time cannot all pass a limit that has room for one.
    const late = this.limits.reserve(name, this.now(), client);
    if (late !== null) return { limit: late };
    return null;
  }

  private syntax(name: string): PolicyRefusal | null {
    if (canonicalIp(name) !== null) return 'ip-literal';
    if (name.includes('*')) return 'wildcard';
    if (normaliseDnsName(name) !== name) return 'invalid-name';
    return null;
  }

  private remember(key: string, refusal: Refusal, maxTtlMs = Infinity): Refusal {
    this.negative.set(key, refusal.reason, Math.min(this.negativeTtlMs, maxTtlMs), this.now());
    return refusal;
  }

  private refuse(name: string, ip: string | null, client: string | null, r: Refusal): PolicyVerdict {
    this.deps.events.policyRefused(r.reason);
    // The name is attacker input: logged as a value (bounded), never a metric label.
    this.refusals.note({ name: name.slice(0, 253), dialledAddress: ip, client, reason: r.reason, ...r.detail });
    return { ok: false, reason: r.reason };
  }

  /** Not remembered in the negative cache: the window frees up on its own, and this check is cheap. */
  private defer(name: string, client: string | null, limit: RateLimitHit): PolicyVerdict {
    this.deps.events.acmeDeferred(`rate-limit-${limit}`);
    this.deferrals.note({ name: name.slice(0, 253), client, limit });
    return { ok: false, reason: 'rate-limited', limit };
  }

  private describe(): void {
    const o = this.opts;
    if (o.domains.length === 0 && o.askUrl === null) {
      this.log.warn({}, 'name policy allows no name (neither --domain nor --ask): ACME issues nothing, clients get the internal CA\'s certificates');
      return;
    }
    const notLocal = [...this.publicIps].filter((ip) => !this.isLocal(ip));
    this.log.info(
      { domains: o.domains, ask: o.askUrl !== null, publicIps: [...this.publicIps], publicIpsNotLocal: notLocal, dnsServer: o.dnsServer ?? 'system' },
      'name policy ready',
    );
  }
}

/** The policy for the configured options; with no domain and no ask URL, every name is refused. */
export function createNamePolicy(opts: NamePolicyOptions, deps: NamePolicyDeps): NamePolicy {
  return new ConfiguredPolicy(opts, deps);
}

// SPDX-License-Identifier: MIT
// Limits on ACME orders, per registered domain and in total, each a set of
// sliding windows ("5 in any hour, 40 in any 7 days"), and a share of each
// window per client (clientKey: an IPv4 address or an IPv6 /64), so that one
// stranger cannot spend the whole allowance on names of their choosing. A
// check that passes reserves its slot at once, so a burst of distinct names
// cannot all pass before the first order is recorded.
import { registeredDomain } from './registered-domain';

/** At most `count` orders in any window of `windowMs`. */
export interface RateWindow {
  count: number;
  windowMs: number;
}

export interface RateLimitOptions {
  perDomain: readonly RateWindow[];
  total: readonly RateWindow[];
  /** A reservation not followed by recordOrder within this long is released (the caller placed no order). */
  reservationMs: number;
  /**
   * The share of each window (per domain and total) that the orders for one
   * client may take, 0 < share ≤ 1: floor(count × share), at least 1. 1 (or
   * absent): no share.
   */
  clientShare?: number;
}

/** Which limit is reached: the domain's, the total, or the client's share of either. */
export type RateLimitHit = 'domain' | 'total' | 'client';

/** Order times of one group, oldest first; only the newest `keep` matter to any window. */
class OrderTimes {
  readonly times: number[] = [];
  reserved = 0;

  add(at: number, keep: number): void {
    this.times.push(at);
    if (this.times.length > keep) this.times.splice(0, this.times.length - keep);
  }

  prune(now: number, longestMs: number): void {
    let drop = 0;
    while (drop < this.times.length && (this.times[drop] ?? 0) <= now - longestMs) drop++;
    if (drop > 0) this.times.splice(0, drop);
  }

  full(windows: readonly RateWindow[], now: number): boolean {
    return windows.some((w) => this.times.filter((t) => t > now - w.windowMs).length + this.reserved >= w.count);
  }
}

function longest(windows: readonly RateWindow[]): number {
  return Math.max(0, ...windows.map((w) => w.windowMs));
}
function largest(...lists: (readonly RateWindow[])[]): number {
  return Math.max(0, ...lists.flat().map((w) => w.count));
}

/** One client's share of each window: floor(count × share), at least one order. */
export function shareOf(windows: readonly RateWindow[], share: number): RateWindow[] {
  return windows.map((w) => ({ count: Math.max(1, Math.floor(w.count * share)), windowMs: w.windowMs }));
}

/** What a reservation holds: its domain group and, for an order a client caused, that client's groups. */
interface Reservation {
  group: string;
  client: string | null;
  expiresAt: number;
}

/** Groups of the client's share: all its orders, and its orders per domain. A space never occurs in a name or a key. */
function clientGroup(client: string): string {
  return `client ${client}`;
}
function clientDomainGroup(client: string, group: string): string {
  return `client ${client} ${group}`;
}

export class OrderRateLimits {
  private readonly total = new OrderTimes();
  /** Per registered domain, and (keys from the functions above) per client and per client and domain. */
  private readonly groups = new Map<string, OrderTimes>();
  /** name → its reservation; insertion order is expiry order (reservationMs is constant). */
  private readonly reservations = new Map<string, Reservation>();
  private readonly clientPerDomain: readonly RateWindow[];
  private readonly clientTotal: readonly RateWindow[];
  private recordsSinceSweep = 0;

  constructor(
    private readonly opts: RateLimitOptions,
    private readonly groupOf: (name: string) => string = registeredDomain,
  ) {
    const share = opts.clientShare ?? 1;
    this.clientPerDomain = share < 1 ? shareOf(opts.perDomain, share) : [];
    this.clientTotal = share < 1 ? shareOf(opts.total, share) : [];
  }

  /**
   * The limit one more order for `name`, asked for by `client` (a clientKey
   * text; null: no client, a renewal), would break now, or null. Reserves
   * nothing: the cheap early check.
   */
  wouldExceed(name: string, now: number, client: string | null = null): RateLimitHit | null {
    this.expireReservations(now);
    if (this.reservations.has(name)) return null;
    return this.hit(this.groupOf(name), client, now);
  }

  /**
   * Takes a slot for `name` now, unless a limit is reached (then returns it).
   * A name that holds a reservation keeps it: one name, one slot.
   */
  reserve(name: string, now: number, client: string | null = null): RateLimitHit | null {
    this.expireReservations(now);
    if (this.reservations.has(name)) return null;
    // No limits: nothing to hold a slot against.
    if (this.opts.perDomain.length === 0 && this.opts.total.length === 0) return null;
    const group = this.groupOf(name);
    const hit = this.hit(group, client, now);
    if (hit !== null) return hit;
    const r: Reservation = { group, client, expiresAt: now + this.opts.reservationMs };
    this.reservations.set(name, r);
    for (const g of this.groupsOf(r)) this.groupTimes(g).reserved++;
    this.total.reserved++;
    return null;
  }

  /**
   * An order for `name` was placed: it counts, over the limit or not (it
   * happened), against the client whose request reserved it, if any.
   */
  record(name: string, now: number): void {
    this.expireReservations(now);
    const r = this.reservations.get(name) ?? { group: this.groupOf(name), client: null, expiresAt: 0 };
    if (this.reservations.has(name)) this.release(name, r);
    const [domain, ...client] = this.groupsOf(r);
    this.groupTimes(domain ?? r.group).add(now, largest(this.opts.perDomain));
    for (const g of client) this.groupTimes(g).add(now, largest(this.opts.perDomain, this.opts.total));
    this.total.add(now, largest(this.opts.total));
    if (++this.recordsSinceSweep >= 100) this.sweep(now);
  }

  /** Groups tracked (for tests of the memory bound). */
  get trackedGroups(): number {
    return this.groups.size;
  }

  private hit(group: string, client: string | null, now: number): RateLimitHit | null {
    this.total.prune(now, longest(this.opts.total));
    if (this.total.full(this.opts.total, now)) return 'total';
    if (this.full(group, this.opts.perDomain, now)) return 'domain';
    if (client === null) return null;
    if (this.full(clientGroup(client), this.clientTotal, now)) return 'client';
    return this.full(clientDomainGroup(client, group), this.clientPerDomain, now) ? 'client' : null;
  }

  private full(group: string, windows: readonly RateWindow[], now: number): boolean {
    const g = this.groups.get(group);
    if (g === undefined || windows.length === 0) return false;
    g.prune(now, longest(windows));
    return g.full(windows, now);
  }

  /** The domain group, then the client's two groups when a client caused the order and shares apply. */
  private groupsOf(r: Pick<Reservation, 'group' | 'client'>): string[] {
    if (r.client === null || (this.clientTotal.length === 0 && this.clientPerDomain.length === 0)) return [r.group];
    return [r.group, clientGroup(r.client), clientDomainGroup(r.client, r.group)];
  }

  private groupTimes(group: string): OrderTimes {
    let g = this.groups.get(group);
    if (g === undefined) {
      g = new OrderTimes();
      this.groups.set(group, g);
    }
    return g;
  }

  private release(name: string, r: Reservation): void {
    this.reservations.delete(name);
    for (const group of this.groupsOf(r)) {
      const g = this.groups.get(group);
      if (g === undefined) continue;
      g.reserved--;
      if (g.reserved === 0 && g.times.length === 0) this.groups.delete(group);
    }
    this.total.reserved--;
  }

  private expireReservations(now: number): void {
    for (const [name, r] of this.reservations) {
      if (r.expiresAt > now) break;
      this.release(name, r);
    }
  }

  /** Forgets groups with no order in their longest window and no reservation. */
  private sweep(now: number): void {
    this.recordsSinceSweep = 0;
    const keepMs = Math.max(longest(this.opts.perDomain), longest(this.opts.total));
    for (const [group, g] of this.groups) {
      g.prune(now, keepMs);
      if (g.times.length === 0 && g.reserved === 0) this.groups.delete(group);
    }
  }
}

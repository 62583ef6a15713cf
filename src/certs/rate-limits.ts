// SPDX-License-Identifier: MIT
// Limits on ACME orders, per registered domain and in total, each a set of
// sliding windows ("5 in any hour, 40 in any 7 days"). A check that passes
// reserves its slot at once, so a burst of distinct names cannot all pass
// before the first order is recorded.
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
}

export type RateLimitHit = 'domain' | 'total';

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
function largest(windows: readonly RateWindow[]): number {
  return Math.max(0, ...windows.map((w) => w.count));
}

export class OrderRateLimits {
  private readonly total = new OrderTimes();
  private readonly groups = new Map<string, OrderTimes>();
  /** name → its reservation; insertion order is expiry order (reservationMs is constant). */
  private readonly reservations = new Map<string, { group: string; expiresAt: number }>();
  private recordsSinceSweep = 0;

  constructor(
    private readonly opts: RateLimitOptions,
    private readonly groupOf: (name: string) => string = registeredDomain,
  ) {}

  /** The limit one more order for `name` would break now, or null. Reserves nothing: the cheap early check. */
  wouldExceed(name: string, now: number): RateLimitHit | null {
    this.expireReservations(now);
    if (this.reservations.has(name)) return null;
    return this.hit(this.groupOf(name), now);
  }

  /**
   * Takes a slot for `name` now, unless a limit is reached (then returns it).
   * A name that holds a reservation keeps it: one name, one slot.
   */
  reserve(name: string, now: number): RateLimitHit | null {
    this.expireReservations(now);
    if (this.reservations.has(name)) return null;
    // No limits: nothing to hold a slot against.
    if (this.opts.perDomain.length === 0 && this.opts.total.length === 0) return null;
    const group = this.groupOf(name);
    const hit = this.hit(group, now);
    if (hit !== null) return hit;
    this.reservations.set(name, { group, expiresAt: now + this.opts.reservationMs });
    this.groupTimes(group).reserved++;
    this.total.reserved++;
    return null;
  }

  /** An order for `name` was placed: it counts, over the limit or not (it happened). */
  record(name: string, now: number): void {
    this.expireReservations(now);
    const r = this.reservations.get(name);
    const group = r?.group ?? this.groupOf(name);
    if (r !== undefined) this.release(name, r.group);
    this.groupTimes(group).add(now, largest(this.opts.perDomain));
    this.total.add(now, largest(this.opts.total));
    if (++this.recordsSinceSweep >= 100) this.sweep(now);
  }

  /** Groups tracked (for tests of the memory bound). */
  get trackedGroups(): number {
    return this.groups.size;
  }

  private hit(group: string, now: number): RateLimitHit | null {
    this.total.prune(now, longest(this.opts.total));
    if (this.total.full(this.opts.total, now)) return 'total';
    const g = this.groups.get(group);
    if (g === undefined) return null;
    g.prune(now, longest(this.opts.perDomain));
    return g.full(this.opts.perDomain, now) ? 'domain' : null;
  }

  private groupTimes(group: string): OrderTimes {
    let g = this.groups.get(group);
    if (g === undefined) {
      g = new OrderTimes();
      this.groups.set(group, g);
    }
    return g;
  }

  private release(name: string, group: string): void {
    this.reservations.delete(name);
    const g = this.groups.get(group);
    if (g !== undefined) {
      g.reserved--;
      if (g.reserved === 0 && g.times.length === 0) this.groups.delete(group);
    }
    this.total.reserved--;
  }

  private expireReservations(now: number): void {
    for (const [name, r] of this.reservations) {
      if (r.expiresAt > now) break;
      this.release(name, r.group);
    }
  }

  /** Forgets groups with no order in their longest window and no reservation. */
  private sweep(now: number): void {
    this.recordsSinceSweep = 0;
    const keepMs = longest(this.opts.perDomain);
    for (const [group, g] of this.groups) {
      g.prune(now, keepMs);
      if (g.times.length === 0 && g.reserved === 0) this.groups.delete(group);
    }
  }
}

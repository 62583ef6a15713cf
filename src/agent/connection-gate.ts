// SPDX-License-Identifier: MIT
// The door of a worker: each new connection is counted (host-wide, per
// client) and admitted or refused (admission.ts decides); near the host's cap
// the worker samples which of its connections are silent, closes those silent
// longer than the shortened idle timeout, and lets a new connection at the cap
// close the longest-silent one rather than be refused.
import { type ClientKey, clientKey } from '../client-key';
import type { Logger } from '../log';
import { LogThrottle } from '../log-throttle';
import {
  type ConnectionCounter,
  type ConnectionCounts,
  type Eviction,
  MAKE_ROOM_MIN_IDLE_MS,
  OVERLOAD_END,
  OVERLOAD_START,
  type Refusal,
  admit,
  overloadIdleTimeoutMs,
} from './admission';
import { IdleTracker, type Tracked } from './idle-tracker';

/** Read at each decision, so a SIGHUP's new values apply at once. */
export interface GateLimits {
  maxConnections: number;
  maxConnectionsPerClient: number;
  idleTimeoutMs: number;
}

export interface GateEvents {
  refused(reason: Refusal): void;
  evicted(reason: Eviction): void;
}

/** A held connection, as the gate sees it. */
export interface Held extends Tracked {
  /** Closes it now (both sides reset). */
  destroy(): void;
}

/** The connections the native core holds: closed by how long they have been silent, which the core knows. */
export interface NativeHeld {
  /** Resets the connection silent longest, if silent at least minIdleMs. */
  closeLongestIdle(minIdleMs: number): boolean;
  /** Resets every connection silent at least idleMs; how many. */
  closeIdle(idleMs: number): number;
}

/** How often connections are sampled while the host is near its cap. */
export const SWEEP_INTERVAL_MS = 1000;

export class ConnectionGate {
  private readonly counts: ConnectionCounts = { client: 0, host: 0 };
  private readonly tracker = new IdleTracker<Held>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly refusedLog: LogThrottle;
  private readonly evictedLog: LogThrottle;
  private native: NativeHeld | undefined;

  constructor(
    private readonly counter: ConnectionCounter,
    private readonly limits: GateLimits,
    /** The connections this worker holds (sampled near the cap). */
    private readonly held: Iterable<Held>,
    private readonly events: GateEvents,
    log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.refusedLog = new LogThrottle(log, {
      level: 'warn',
      msg: 'connection limit reached; refusing connections',
      summaryMsg: 'connections refused at the limit since the last line',
      perInterval: 1,
      intervalMs: 10_000,
    });
    this.evictedLog = new LogThrottle(log, {
      level: 'warn',
      msg: 'near the connection limit; closing idle connections',
      summaryMsg: 'idle connections closed near the limit since the last line',
      perInterval: 1,
      intervalMs: 10_000,
    });
  }

  /**
   * Counts a new connection from `remoteAddress` and decides: a ticket (give
   * it to leave() when the connection ends), or null when it is refused (the
   * caller resets it; it is already counted out).
   */
  enter(remoteAddress: string | undefined): number | null {
    return this.enterKey(clientKey(remoteAddress ?? ''), () => remoteAddress);
  }

  /** The same for a client known by its key (the native core's connections); the address is only for the log. */
  enterKey(key: ClientKey | null, remoteAddress: () => string | undefined): number | null {
    const ticket = this.counter.acquire(key, this.counts);
    if (key === null) this.counts.client = 0;
    const { maxConnections, maxConnectionsPerClient } = this.limits;
    if (this.counts.host >= maxConnections * OVERLOAD_START) this.startSweeps();
    let verdict = admit(this.counts, { maxConnections, maxPerClient: maxConnectionsPerClient });
    if (verdict === 'host-limit' && this.makeRoom()) verdict = 'accept';
    if (verdict === 'accept') return ticket;
    this.counter.release(ticket);
    this.events.refused(verdict);
    this.refusedLog.note({ reason: verdict, client: remoteAddress(), clientConnections: this.counts.client, hostConnections: this.counts.host, maxConnections, maxConnectionsPerClient });
    return null;
  }

  /** Near the cap, the native core's connections are evicted too. */
  attachNative(native: NativeHeld): void {
    this.native = native;
  }

  /** The connection of `ticket` ended. */
  leave(ticket: number): void {
    this.counter.release(ticket);
  }

  stop(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.tracker.clear();
  }

  /** At the cap: closes the longest-silent connection of this worker, if one was silent long enough. */
  private makeRoom(): boolean {
    const victim = this.tracker.takeLongestSilent(MAKE_ROOM_MIN_IDLE_MS, this.now());
    if (victim !== null) victim.destroy();
    else if (this.native?.closeLongestIdle(MAKE_ROOM_MIN_IDLE_MS) !== true) return false;
    this.events.evicted('make-room');
    this.evictedLog.note({ reason: 'make-room', hostConnections: this.counts.host, maxConnections: this.limits.maxConnections });
    return true;
  }

  private startSweeps(): void {
    if (this.sweepTimer !== undefined) return;
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    this.sweep();
  }

  /** Near the cap: samples, and closes what is silent longer than the shortened idle timeout. */
  private sweep(): void {
    const host = this.counter.hostTotal();
    const { maxConnections, idleTimeoutMs } = this.limits;
    if (host < maxConnections * OVERLOAD_END) {
      this.stop();
      return;
    }
    const now = this.now();
    this.tracker.sample(this.held, now);
    const timeoutMs = overloadIdleTimeoutMs(host, maxConnections, idleTimeoutMs);
    if (timeoutMs >= idleTimeoutMs) return;
    const silent = this.tracker.silentFor(timeoutMs, now);
    for (const c of silent) {
      c.destroy();
      this.events.evicted('idle-overload');
    }
    const nativeClosed = this.native?.closeIdle(timeoutMs) ?? 0;
    for (let i = 0; i < nativeClosed; i++) this.events.evicted('idle-overload');
    const closed = silent.length + nativeClosed;
    if (closed > 0) this.evictedLog.note({ reason: 'idle-overload', closed, idleTimeoutMs: timeoutMs, hostConnections: host, maxConnections });
  }
}

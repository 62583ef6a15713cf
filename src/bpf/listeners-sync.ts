// SPDX-License-Identifier: MIT
// Keeps the listeners map equal to the namespace's listening TCP sockets, so
// that only destinations a service would accept are steered (a closed port
// still gets the kernel's reset). Polls sock_diag; cheap: listeners only.
import fs from 'node:fs';
import type { Logger } from '../log';
import { native } from '../native';
import type { ListenerEntry, SteeringMaps } from './maps';

const key = (e: ListenerEntry): string => `${e.family}|${e.addr ?? '*'}|${e.port}`;

function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1';
}

/**
 * The map entries for a set of listening sockets. Loopback-only services are
 * left out: remote clients can never reach them, and not listing them keeps
 * them unsteered whatever else is in the map. A dual-stack [::] socket also
 * accepts IPv4, so it also gets the IPv4 wildcard.
 */
export function listenerEntries(v4: { addr: string; port: number }[], v6: { addr: string; port: number; v6only: boolean }[]): ListenerEntry[] {
  const out = new Map<string, ListenerEntry>();
  const add = (e: ListenerEntry): void => void out.set(key(e), e);
  for (const l of v4) {
    if (isLoopback(l.addr)) continue;
    add({ family: 4, addr: l.addr === '0.0.0.0' ? null : l.addr, port: l.port });
  }
  for (const l of v6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(l.addr)?.[1];
    if (mapped !== undefined) {
      if (!isLoopback(mapped)) add({ family: 4, addr: mapped, port: l.port });
      continue;
    }
    if (isLoopback(l.addr)) continue;
    const wildcard = l.addr === '::';
    add({ family: 6, addr: wildcard ? null : l.addr, port: l.port });
    if (wildcard && !l.v6only) add({ family: 4, addr: null, port: l.port });
  }
  return [...out.values()];
}

export class ListenersSync {
  private readonly diagFd: number;
  private current = new Map<string, ListenerEntry>();
  private timer: NodeJS.Timeout | undefined;
  /** Ports steered even with no listener (any address, both families): ACME validation ports while a challenge is pending. */
  private pinned: ListenerEntry[] = [];

  constructor(
    private readonly maps: SteeringMaps,
    private readonly log: Logger,
  ) {
    this.diagFd = native().diagOpen();
    for (const e of maps.listeners()) this.current.set(key(e), e);
  }

  /** One pass: adds what appeared, deletes what went away. */
  syncOnce(): { added: number; removed: number } {
    const n = native();
    const wanted = new Map(listenerEntries(n.diagListeners(this.diagFd, 4), n.diagListeners(this.diagFd, 6)).map((e) => [key(e), e]));
    for (const e of this.pinned) wanted.set(key(e), e);
    let added = 0;
    let removed = 0;
    for (const [k, e] of wanted) {
      if (this.current.has(k)) continue;
      this.maps.addListener(e);
      added++;
    }
    for (const [k, e] of this.current) {
      if (wanted.has(k)) continue;
      this.maps.deleteListener(e);
      removed++;
    }
    this.current = wanted;
    if (added + removed > 0) this.log.debug({ added, removed, total: wanted.size }, 'listeners map updated');
    return { added, removed };
  }

  /** Polls every intervalMs; an error keeps the last state, is logged, and is retried next time. */
  start(intervalMs: number): void {
    this.syncOnce();
    this.startTimer(intervalMs);
  }

  private startTimer(intervalMs: number): void {
    this.timer = setInterval(() => {
      try {
        this.syncOnce();
      } catch (err) {
        this.log.warn({ err }, 'listeners sync failed; keeping the current map');
      }
    }, intervalMs);
  }

  /** Steers `ports` whether or not a service listens there, until set again; applied at once. */
  setPinned(ports: readonly number[]): void {
    this.pinned = ports.flatMap((port) => [{ family: 4, addr: null, port }, { family: 6, addr: null, port }] as ListenerEntry[]);
    try {
      this.syncOnce();
    } catch (err) {
      this.log.warn({ err }, 'listeners sync failed; the next pass retries');
    }
  }

  /** A new poll interval (SIGHUP), from the next tick. */
  setPollInterval(intervalMs: number): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.startTimer(intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    fs.closeSync(this.diagFd);
  }
}

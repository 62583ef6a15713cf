// SPDX-License-Identifier: MIT
// The native connection core of one worker (native/src/plane), typed: it
// accepts, dials and reads the first bytes itself, and asks TypeScript one
// question per connection through records in memory it reuses, once per batch
// of the loop: admit or refuse, then relay (natively), take over (Node), or
// reset. A plaintext connection creates no JS object of its own here beyond
// the views of its first bytes.
import type net from 'node:net';
import os from 'node:os';
import type { ClientKey } from '../client-key';
import type { Logger } from '../log';
import { LogThrottle } from '../log-throttle';
import { type Family, type Plane, native } from '../native';
import { type AdoptedConnection, type ConnectionEvents, socketFromFd, upstreamFailure } from './connection';
import { FIRST_VERDICT, decideFirstBytes } from './first-bytes';
import type { RelayReason, RelayResult } from './relay';
import type { Endpoint, UpstreamPorts, UpstreamSource } from './upstream';

/** native/src/plane/records.h, word for word. */
const W = 32;
const REC = { accepted: 1, takeoverAccepted: 2, firstBytes: 3, upstreamFailed: 4, dialFailed: 5, closed: 6 } as const;
const F = {
  type: 0,
  verdict: 1,
  ticket: 2,
  family: 3,
  srcPort: 4,
  dstPort: 5,
  flags: 6,
  srcAddr: 8,
  dstAddr: 12,
  clientFd: 16,
  upstreamFd: 17,
  sourcePort: 18,
  code: 19,
  clientOff: 20,
  clientLen: 21,
  serviceOff: 22,
  serviceLen: 23,
  bytesIn: 24,
  bytesOut: 26,
  kind: 28,
} as const;
const FLAG_CLIENT_EOF = 1;
const FLAG_UPSTREAM_EOF = 2;
const ADMIT = 0;
const REFUSE = 1;
const KIND_PLAIN = 1;
const STAT_COLLISIONS = 0;
const STAT_BACKOFFS = 1;
const STAT_BYTES_IN = 6;
const STAT_BYTES_OUT = 7;
/** RelayReason by its native value (relay.h), in order. */
const RELAY_REASONS: readonly RelayReason[] = ['done', 'idle', 'client-reset', 'upstream-reset', 'client-error', 'upstream-error', 'aborted'];

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

export interface DataPlaneOptions {
  bypassFd: number;
  mark: number;
  source: UpstreamSource;
  /** Source ports in 'original' mode ('host' mode leaves the choice to the kernel). */
  ports: UpstreamPorts;
  idleTimeoutMs: number;
  /** Ports whose clients go to Node at accept: upgrade dialogues, and 80/443 while ACME challenges are answered. */
  takeoverPorts: Iterable<number>;
}

/** A connection the core dialed and Node takes over after its first bytes (connection.ts, adoptConnection). */
export interface TakenOver extends Omit<AdoptedConnection, 'onUpstreamClosed'> {
  /** The upstream socket's bypass entry, Node's to delete when that socket closes. */
  bypass: { family: Family; address: string; port: number };
}

export interface DataPlaneDeps {
  events: Pick<ConnectionEvents, 'opened' | 'bytes' | 'upstreamFailed' | 'closed'> & { collision(): void };
  log: Logger;
  /** Admission: a ticket for leave(), or null to refuse (the core resets the client). */
  admit(key: ClientKey | null, clientAddress: () => string): number | null;
  /** The connection of `ticket` ended. */
  leave(ticket: number): void;
  /** A client on a take-over port, as accepted: today's path (handleConnection, its own admission). */
  acceptForNode(socket: net.Socket): void;
  /** Node takes the connection over; it calls leave(ticket) when it ends. */
  adopt(c: TakenOver, ticket: number): void;
}

export class DataPlane {
  private readonly plane: Plane;
  private readonly rec: Int32Array;
  private readonly view: DataView;
  private readonly bytes: Buffer;
  private readonly stats: Float64Array;
  private readonly transparent: boolean;
  /** Reused for every admission and every close: the events must not keep them. */
  private readonly key: ClientKey = { family: 4, hi: 0, lo: 0 };
  private readonly result: RelayResult = { reason: 'done', bytesIn: 0, bytesOut: 0 };
  /** A range run dry fails every dial at once: a line per dial would flood the log. */
  private readonly dialFailedLog: LogThrottle;
  private collisions = 0;
  private backoffs = 0;
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(
    opts: DataPlaneOptions,
    private readonly deps: DataPlaneDeps,
  ) {
    this.transparent = opts.source === 'original';
    this.plane = new (native().Plane)(
      { bypassFd: opts.bypassFd, mark: opts.mark, transparent: this.transparent, portLo: opts.ports.lo, portHi: opts.ports.hi, idleTimeoutMs: opts.idleTimeoutMs, takeover: portBitmap(opts.takeoverPorts) },
      this.onRecords,
    );
    this.rec = this.plane.records;
    this.view = new DataView(this.rec.buffer, this.rec.byteOffset, this.rec.byteLength);
    this.bytes = this.plane.bytes;
    this.stats = this.plane.stats;
    this.dialFailedLog = new LogThrottle(deps.log, {
      level: 'warn',
      msg: 'upstream socket failed',
      summaryMsg: 'upstream sockets failed since the last line',
      perInterval: 5,
      intervalMs: 10_000,
    });
  }

  /** Takes a listening fd (native.listenSocket's): the plane accepts on it and closes it. */
  listen(fd: number): void {
    this.plane.listen(fd);
  }

  stopListening(): void {
    this.plane.stopListening();
  }

  setIdleTimeout(ms: number): void {
    this.plane.setIdleTimeout(ms);
  }

  setTakeoverPorts(ports: Iterable<number>): void {
    this.plane.setTakeover(portBitmap(ports));
  }

  closeLongestIdle(minIdleMs: number): boolean {
    return this.plane.closeLongestIdle(minIdleMs);
  }

  closeIdle(idleMs: number): number {
    return this.plane.closeIdle(idleMs);
  }

  closeAll(): void {
    this.plane.closeAll();
  }

  close(): void {
    this.flushBytes();
    this.dialFailedLog.flush();
    this.plane.close();
  }

  /**
   * Reports the bytes relayed since the last call (open connections' so far
   * included) as events.bytes: called at scrape time, so a long transfer shows
   * while it runs, as with the Node relay, without a JS call per chunk.
   */
  flushBytes(): void {
    this.plane.bytesRelayed();
    const bytesIn = this.stats[STAT_BYTES_IN] as number;
    const bytesOut = this.stats[STAT_BYTES_OUT] as number;
    if (bytesIn > this.bytesIn) this.deps.events.bytes('in', bytesIn - this.bytesIn);
    if (bytesOut > this.bytesOut) this.deps.events.bytes('out', bytesOut - this.bytesOut);
    this.bytesIn = bytesIn;
    this.bytesOut = bytesOut;
  }

  get activeConnections(): number {
    return this.plane.activeConnections;
  }

  private readonly onRecords = (start: number, end: number): void => {
    for (let i = start; i < end; i++) {
      try {
        this.record(i * W);
      } catch (err) {
        // One connection's handling must not cost the rest of the batch theirs.
        this.deps.log.error({ err }, 'data plane record failed');
      }
    }
    const seen = this.stats[STAT_COLLISIONS] as number;
    for (; this.collisions < seen; this.collisions++) this.deps.events.collision();
    const backoffs = this.stats[STAT_BACKOFFS] as number;
    if (backoffs > this.backoffs) {
      // Told once the listeners accept again (no record comes while they cannot).
      this.deps.log.warn({ times: backoffs - this.backoffs }, 'out of file descriptors on accept; the listeners rested 100 ms each time (raise RLIMIT_NOFILE)');
      this.backoffs = backoffs;
    }
  };

  private record(b: number): void {
    const { rec, deps } = this;
    switch (rec[b + F.type]) {
      case REC.accepted: {
        const ticket = deps.admit(this.clientKey(b), () => this.address(b, F.srcAddr));
        if (ticket === null) {
          rec[b + F.verdict] = REFUSE;
        } else {
          rec[b + F.verdict] = ADMIT;
          rec[b + F.ticket] = ticket;
        }
        return;
      }
      case REC.takeoverAccepted:
        deps.acceptForNode(socketFromFd(rec[b + F.clientFd] as number));
        return;
      case REC.firstBytes:
        this.firstBytes(b);
        return;
      case REC.upstreamFailed:
        deps.events.upstreamFailed(upstreamFailure({ code: ERRNO_NAMES.get(rec[b + F.code] as number) }));
        deps.events.closed('none', null);
        deps.leave(rec[b + F.ticket] as number);
        return;
      case REC.dialFailed: {
        const code = ERRNO_NAMES.get(rec[b + F.code] as number) ?? String(rec[b + F.code]);
        this.dialFailedLog.note({ err: { code }, port: rec[b + F.dstPort] });
        deps.events.upstreamFailed('source-port');
        deps.events.closed('none', null);
        deps.leave(rec[b + F.ticket] as number);
        return;
      }
      case REC.closed:
        this.closed(b);
        return;
    }
  }

  private firstBytes(b: number): void {
    const { rec, bytes, deps } = this;
    const port = rec[b + F.dstPort] as number;
    const clientOff = rec[b + F.clientOff] as number;
    const serviceOff = rec[b + F.serviceOff] as number;
    const client = bytes.subarray(clientOff, clientOff + (rec[b + F.clientLen] as number));
    const service = bytes.subarray(serviceOff, serviceOff + (rec[b + F.serviceLen] as number));
    const flags = rec[b + F.flags] as number;
    const clientEof = (flags & FLAG_CLIENT_EOF) !== 0;
    const verdict = decideFirstBytes(port, client, service, clientEof, (flags & FLAG_UPSTREAM_EOF) !== 0);
    rec[b + F.verdict] = verdict;
    const ticket = rec[b + F.ticket] as number;
    if (verdict === FIRST_VERDICT.plain) {
      deps.events.opened('plain', port);
      return;
    }
    if (verdict === FIRST_VERDICT.reset) {
      deps.events.closed('none', null);
      deps.leave(ticket);
      return;
    }
    const family = rec[b + F.family] as Family;
    const src: Endpoint = { family, address: this.address(b, F.srcAddr), port: rec[b + F.srcPort] as number };
    const dst: Endpoint = { family, address: this.address(b, F.dstAddr), port };
    deps.adopt(
      {
        client: socketFromFd(rec[b + F.clientFd] as number),
        upstream: socketFromFd(rec[b + F.upstreamFd] as number),
        src,
        dst,
        // The byte area is reused by the next batch.
        clientBytes: Buffer.from(client),
        serviceBytes: Buffer.from(service),
        clientEof,
        bypass: { family, address: this.transparent ? src.address : dst.address, port: rec[b + F.sourcePort] as number },
      },
      ticket,
    );
  }

  private closed(b: number): void {
    const { rec, deps } = this;
    const ticket = rec[b + F.ticket] as number;
    if (rec[b + F.kind] !== KIND_PLAIN) {
      deps.events.closed('none', null);
      deps.leave(ticket);
      return;
    }
    const result = this.result;
    result.reason = RELAY_REASONS[rec[b + F.code] as number] ?? 'aborted';
    result.bytesIn = this.view.getFloat64((b + F.bytesIn) * 4, true);
    result.bytesOut = this.view.getFloat64((b + F.bytesOut) * 4, true);
    // Its bytes are reported by flushBytes(), with those of the open connections.
    if (deps.log.isLevelEnabled('debug')) deps.log.debug({ kind: 'plain', port: rec[b + F.dstPort], ...result }, 'connection closed');
    deps.events.closed('plain', result);
    deps.leave(ticket);
  }

  private clientKey(b: number): ClientKey {
    return keyOfAddress(this.rec[b + F.family] === 4 ? 4 : 6, this.view, (b + F.srcAddr) * 4, this.key);
  }

  private address(b: number, word: number): string {
    return addressText(this.rec[b + F.family] === 4 ? 4 : 6, new Uint8Array(this.rec.buffer, this.rec.byteOffset + (b + word) * 4, 16));
  }
}

/**
 * The key admission counts a client by, as client-key.ts makes it from the
 * address's text: an IPv4 address, an IPv6 /64. Read from the address's bytes
 * (network order, at byteOffset) into `out`: no string per connection.
 */
export function keyOfAddress(family: Family, view: DataView, byteOffset: number, out: ClientKey): ClientKey {
  out.family = family;
  out.hi = view.getUint32(byteOffset, false);
  out.lo = family === 4 ? 0 : view.getUint32(byteOffset + 4, false);
  return out;
}

/** An address's text, as Node prints remoteAddress (RFC 5952 for IPv6). */
export function addressText(family: Family, b: Uint8Array): string {
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return formatV6(b);
}

/** 65536 bits, LSB first: the ports given. */
function portBitmap(ports: Iterable<number>): Uint8Array {
  const bits = new Uint8Array(8192);
  for (const p of ports) {
    if (Number.isInteger(p) && p >= 0 && p < 65536) bits[p >> 3] = (bits[p >> 3] as number) | (1 << (p & 7));
  }
  return bits;
}

/** RFC 5952 text of 16 address bytes, as Node prints remoteAddress (glibc's inet_ntop, dotted tails included). */
function formatV6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i] as number) << 8) | (b[i + 1] as number));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  // IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d): the last 32 bits dotted.
  if (bestAt === 0 && (bestLen === 6 || (bestLen === 5 && g[5] === 0xffff))) {
    return `::${bestLen === 5 ? 'ffff:' : ''}${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

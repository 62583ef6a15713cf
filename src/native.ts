// SPDX-License-Identifier: MIT
// The only importer of the native addon: finds it, and types it by hand.
// Only bpf/*, agent/listener.ts, agent/upstream.ts and agent/data-plane.ts may import this module.
import path from 'node:path';
import { JfeError } from './errors';

export interface ProgramFds {
  prog: number;
  ports: number;
  config: number;
  sockets: number;
  bypass: number;
  listeners: number;
  counters: number;
}

export interface LinkInfo {
  id: number;
  progId: number;
  type: number;
  /** 0 once the link has been detached. */
  netnsIno: number;
  attachType: number;
}

export interface ProgInfo {
  id: number;
  type: number;
  name: string;
  /** The kernel's hash of the instructions, hex. */
  tag: string;
}

export interface MapInfo {
  id: number;
  type: number;
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface CounterIndexes {
  steered: number;
  passNotTcp: number;
  passPort: number;
  passLoopback: number;
  passBypass: number;
  passNoListener: number;
  passNoSocket: number;
  assignFailed: number;
}

/** Sizes and offsets from bpf/jfe.h, as compiled into the addon. */
export interface Layout {
  maxSlots: number;
  sockmapEntries: number;
  portWords: number;
  portsSize: number;
  configSize: number;
  configNslotsOffset: number;
  addrKeySize: number;
  addrKeyFamilyOffset: number;
  addrKeyPortOffset: number;
  addrKeyAddrOffset: number;
  maxBypass: number;
  maxListeners: number;
  counterMax: number;
  counters: CounterIndexes;
  updateFlags: { any: number; noexist: number; exist: number };
  attachTypeSkLookup: number;
}

export type Family = 4 | 6;

/** A mapping of the shared connection counts (native/src/conn_table.cc). */
export interface ConnTable {
  /**
   * One more connection held by this worker, of the client with key (kind,
   * hi, lo). Returns its slot for release (-1: this client is not counted
   * apart); writes [that client's connections, all connections] of every
   * worker, the new one included, into the `out` array given at open.
   */
  acquire(kind: number, hi: number, lo: number): number;
  /** One connection fewer: the slot acquire returned. */
  release(slot: number): void;
  /** Connections held by every worker. */
  hostTotal(): number;
  /** The primary: a column given to a worker (true) or free. */
  setInUse(column: number, on: boolean): void;
  /** The primary: zeroes the column of a worker that exited. */
  resetColumn(column: number): void;
  /** Unmaps now (the mapping also goes with the object). */
  close(): void;
}

/** Why a native relay ended: RelayReason of agent/relay.ts, the same values in the same order. */
export type NativeRelayReason = 'done' | 'idle' | 'client-reset' | 'upstream-reset' | 'client-error' | 'upstream-error' | 'aborted';

/** RelayConfig (native/src/plane/relay.h) and the relay's start state, for relayForTests. */
export interface RelayForTestsOptions {
  bufferBytes?: number;
  /** 0 disables splice. */
  spliceAfterBytes?: number;
  pipeBytes?: number;
  pipesMax?: number;
  pipesPooled?: number;
  /** Client bytes already read, written upstream first. */
  pendingUp?: Buffer;
  /** Service bytes already read, written to the client first. */
  pendingDown?: Buffer;
  clientEof?: boolean;
  upstreamEof?: boolean;
}

/** A native relay driven by a test; its getters keep their last values once it is gone. */
export interface RelayForTests {
  close(reason: 'idle' | 'aborted'): void;
  bytesIn(): number;
  bytesOut(): number;
  /** Bytes written out of a pipe, both ways: the splice path. */
  splicedBytes(): number;
  /** Bytes held in user space and in pipes, both ways. */
  bufferedBytes(): number;
  /** Pipes of this relay's own pool, in use or pooled. */
  pipesOpen(): number;
  lastActivityMs(): number;
  /** The poller's clock (uv_now), for lastActivityMs. */
  nowMs(): number;
  /** Times the sink was told. */
  toldCount(): number;
  closed(): boolean;
}

/** What a Plane is made with (native/src/plane/plane.cc). */
export interface PlaneOptions {
  /** The bypass map: each upstream source goes in before its connect (value: this pid). */
  bypassFd: number;
  /** SO_MARK of upstream sockets in 'original' mode. */
  mark: number;
  /** 'original' mode: bind to the client's address (IP_TRANSPARENT); false: the destination's ('host'). */
  transparent: boolean;
  /** Source ports of 'original' mode, both included (--upstream-ports); without them the kernel's ephemeral range. */
  portLo?: number;
  portHi?: number;
  /** A connection silent this long (sniffing or relaying) is closed. */
  idleTimeoutMs: number;
  /** 65536 bits, LSB first: ports whose clients go to TS at accept (TAKEOVER_ACCEPTED). */
  takeover: Uint8Array;
}

/**
 * The connection core of one worker (native/src/plane/core.h). Records reach
 * TS in `records` (rows of PLANE_RECORD_WORDS int32, layout in
 * agent/data-plane.ts) with first bytes in `bytes`; onRecords(start, end) is
 * called once per batch and may write verdicts into the rows before returning.
 */
export interface Plane {
  readonly records: Int32Array;
  readonly bytes: Buffer;
  /**
   * Totals since the plane began: [collisions, accept back-offs, accept errors, -,
   * bytes in and out of closed connections, bytes in and out (every connection, as of the last bytesRelayed())].
   */
  readonly stats: Float64Array;
  /** Connections the core holds now (admitted or not, sniffing, relaying). */
  readonly activeConnections: number;
  /** Takes the listening fd (closed by the plane). */
  listen(fd: number): void;
  /** Closes every listening fd. Not from inside onRecords (as close()). */
  stopListening(): void;
  setTakeover(bitmap: Uint8Array): void;
  setIdleTimeout(ms: number): void;
  /** Resets the connection silent longest, if it was silent at least minIdleMs. */
  closeLongestIdle(minIdleMs: number): boolean;
  /** Resets every connection silent at least idleMs; how many. */
  closeIdle(idleMs: number): number;
  /** Resets every connection. */
  closeAll(): void;
  /** Writes every byte relayed so far, open connections' included, into stats[6] (in) and stats[7] (out). */
  bytesRelayed(): void;
  /**
   * Everything closed, no record after this. Not from inside onRecords: a
   * batch may still be running on the plane's poller (the agent closes from
   * its own timers).
   */
  close(): void;
}

export interface Native {
  /** With `maps`, the program is loaded on those existing maps (each must match this build's definition). */
  loadProgram(maps?: Omit<ProgramFds, 'prog'>): ProgramFds;
  attachNetns(progFd: number, netnsFd: number): number;
  linkDetach(linkFd: number): void;
  linkUpdate(linkFd: number, progFd: number): void;
  objPin(fd: number, path: string): void;
  objGet(path: string): number;
  linkInfo(linkFd: number): LinkInfo;
  progInfo(progFd: number): ProgInfo;
  mapInfo(mapFd: number): MapInfo;
  mapLookup(mapFd: number, key: Buffer, value: Buffer): boolean;
  mapUpdate(mapFd: number, key: Buffer, value: Buffer, flags?: number): void;
  mapDelete(mapFd: number, key: Buffer): boolean;
  mapNextKey(mapFd: number, key: Buffer | null, next: Buffer): boolean;
  numPossibleCpus(): number;
  listenSocket(family: Family, addr: string, port: number, backlog: number, netnsFd?: number): number;
  tcpSocket(family: Family, netnsFd?: number): number;
  /** portLo..portHi: the source port's range (a bounded search, ip_local_reserved_ports skipped); without them the kernel's ephemeral range. */
  upstreamSocket(family: Family, sourceAddr: string, mark: number, transparent: boolean, portLo?: number, portHi?: number): { fd: number; port: number };
  flock(fd: number): boolean;
  diagOpen(): number;
  diagListeners(fd: number, family: Family): { addr: string; port: number; v6only: boolean }[];
  diagExists(fd: number, family: Family, localAddr: string, localPort: number, remoteAddr: string, remotePort: number): boolean;
  /** RLIMIT_NOFILE of this process. */
  nofileLimit(): { soft: number; hard: number };
  /** Sets the soft RLIMIT_NOFILE to the hard one; returns the limits after. */
  raiseNofileLimit(): { soft: number; hard: number };
  /** malloc_trim(0): freed heap pages back to the kernel; true if any were (false where libc is not glibc). */
  mallocTrim(): boolean;
  /** A new block of shared connection counts (memfd, close-on-exec): `columns` workers, `entries` per column (a power of two). */
  connTableCreate(columns: number, entries: number): number;
  /** Maps a block by its fd; column -1 for the primary's view. */
  ConnTable: new (fd: number, column: number, out: Uint32Array) => ConnTable;
  layout: Layout;
  Plane: new (options: PlaneOptions, onRecords: (start: number, end: number) => void) => Plane;
  /** Test only: a native relay on this thread's loop, with a poller and pipe pool of its own. Takes both fds. */
  relayForTests(
    clientFd: number,
    upstreamFd: number,
    options: RelayForTestsOptions,
    onClosed: (reason: NativeRelayReason, bytesIn: number, bytesOut: number) => void,
  ): RelayForTests;
  /** Test only: both ends of a TCP connection over 127.0.0.1, non-blocking. */
  tcpPairForTests(): [number, number];
}

/**
 * JFE_NATIVE_ADDON: another build of the addon to load instead, by path.
 * `npm run test:sanitize` points it at the ASan + UBSan build
 * (native/build/Sanitize/jfe_native.node), in the tests and in the agent and
 * workers they spawn, which inherit the environment. Read once, at load.
 */
export const ADDON_ENV = 'JFE_NATIVE_ADDON';
const ADDON = process.env[ADDON_ENV] ? path.resolve(process.env[ADDON_ENV]) : path.resolve(__dirname, '..', '..', 'native', 'build', 'Release', 'jfe_native.node');

let loaded: Native | undefined;

/** The addon, loaded on first use so that commands which need no kernel work without it. */
export function native(): Native {
  if (loaded) return loaded;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(ADDON) as Native;
  } catch (cause) {
    throw new JfeError(
      'JFE_ERR_NATIVE_MISSING',
      `native addon not built (${ADDON}): run "npm run build" (needs clang, libbpf-dev, bpftool)`,
      { cause },
    );
  }
  return loaded;
}

// SPDX-License-Identifier: MIT
// The only importer of the native addon: finds it, and types it by hand.
// Only bpf/*, agent/listener.ts and agent/upstream.ts may import this module.
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
  upstreamSocket(family: Family, sourceAddr: string, mark: number, transparent: boolean): { fd: number; port: number };
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

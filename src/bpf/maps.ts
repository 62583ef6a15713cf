// SPDX-License-Identifier: MIT
// Typed access to the program's maps: key and value encoding from the
// addon's layout (bpf/jfe.h), spec checks for pinned maps, and the steering
// handle the agent and tests use (sockets, bypass, listeners, ports, counters).
import fs from 'node:fs';
import { JfeError } from '../errors';
import { PortSet } from '../config/ports';
import { type Family, type Layout, type MapInfo, native } from '../native';
import { type IpBytes, bytesToIp, ipToBytes } from './ip-bytes';
import { type MapName, MAP_NAMES } from './pins';
import { callNative } from './native-error';

const MAP_TYPE = { hash: 1, array: 2, percpuArray: 6, sockmap: 15 } as const;
const AF_INET = 2;
const AF_INET6 = 10;

type MapSpec = Pick<MapInfo, 'type' | 'keySize' | 'valueSize' | 'maxEntries'>;

export function expectedSpecs(l: Layout): Record<MapName, MapSpec> {
  return {
    ports: { type: MAP_TYPE.array, keySize: 4, valueSize: l.portsSize, maxEntries: 1 },
    config: { type: MAP_TYPE.array, keySize: 4, valueSize: l.configSize, maxEntries: 1 },
    sockets: { type: MAP_TYPE.sockmap, keySize: 4, valueSize: 8, maxEntries: l.sockmapEntries },
    bypass: { type: MAP_TYPE.hash, keySize: l.addrKeySize, valueSize: 4, maxEntries: l.maxBypass },
    listeners: { type: MAP_TYPE.hash, keySize: l.addrKeySize, valueSize: 1, maxEntries: l.maxListeners },
    counters: { type: MAP_TYPE.percpuArray, keySize: 4, valueSize: 8, maxEntries: l.counterMax },
  };
}

/** Throws when a pinned map is not the map this build of jfe expects. */
export function checkMapSpec(name: MapName, info: MapInfo, want: MapSpec, dir: string): void {
  const bad = (Object.keys(want) as (keyof MapSpec)[]).filter((k) => info[k] !== want[k]);
  if (info.name !== name || bad.length > 0) {
    throw new JfeError(
      'JFE_ERR_BPF_MAP_MISMATCH',
      `pinned map ${dir}/${name} does not match this jfe build (${bad.join(', ') || 'name'} differ): run "jfe-bpf detach" then "jfe-bpf attach"`,
    );
  }
}

export type MapFds = Record<MapName, number>;

export interface ListenerEntry {
  family: Family;
  /** null: the wildcard address. */
  addr: string | null;
  port: number;
}

export type CounterName = keyof Layout['counters'];

const ONE = Buffer.from([1]);
const ZERO_KEY = Buffer.alloc(4);
/** Client addresses whose key bytes are remembered (see parseIp). */
const IP_CACHE_MAX = 4096;

/** An open set of the program's maps. Close it when done. */
export class SteeringMaps {
  private readonly l: Layout;
  private readonly key: Buffer;
  private readonly ipCache = new Map<string, IpBytes>();
  private readonly u32: Buffer;
  /** This process's pid: the owner written into its bypass entries. */
  private readonly owner: Buffer;

  constructor(readonly fds: MapFds) {
    this.l = native().layout;
    this.key = Buffer.alloc(this.l.addrKeySize);
    this.u32 = Buffer.alloc(4);
    this.owner = Buffer.alloc(4);
    this.owner.writeUInt32LE(process.pid);
  }

  static open(dir: string, pinPathOf: (name: MapName) => string): SteeringMaps {
    const n = native();
    const specs = expectedSpecs(n.layout);
    const fds: Partial<MapFds> = {};
    try {
      for (const name of MAP_NAMES) {
        const fd = callNative('JFE_ERR_BPF_NOT_ATTACHED', `open pinned map ${pinPathOf(name)}`, () => n.objGet(pinPathOf(name)));
        fds[name] = fd;
        checkMapSpec(name, n.mapInfo(fd), specs[name], dir);
      }
    } catch (err) {
      for (const fd of Object.values(fds)) fs.closeSync(fd);
      throw err;
    }
    return new SteeringMaps(fds as MapFds);
  }

  close(): void {
    for (const fd of Object.values(this.fds)) fs.closeSync(fd);
  }

  // --- agent sockets ---------------------------------------------------

  private slotKey(family: Family, slot: number): Buffer {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.l.maxSlots) {
      throw new JfeError('JFE_ERR_BPF_MAP', `slot ${slot} out of range 0..${this.l.maxSlots - 1}`);
    }
    // Keys are native-endian __u32; the platforms jfe builds for are little-endian.
    this.u32.writeUInt32LE((family === 4 ? 0 : this.l.maxSlots) + slot);
    return this.u32;
  }

  setSocket(family: Family, slot: number, fd: number): void {
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(BigInt(fd));
    const key = this.slotKey(family, slot);
    callNative('JFE_ERR_BPF_MAP', `register socket in slot ${slot} (IPv${family})`, () => native().mapUpdate(this.fds.sockets, key, value));
  }

  deleteSocket(family: Family, slot: number): boolean {
    const key = this.slotKey(family, slot);
    return callNative('JFE_ERR_BPF_MAP', `unregister slot ${slot}`, () => native().mapDelete(this.fds.sockets, key));
  }

  /** The socket cookie registered in a slot, or null when it is empty. */
  socketCookie(family: Family, slot: number): bigint | null {
    const key = this.slotKey(family, slot);
    const value = Buffer.alloc(8);
    return native().mapLookup(this.fds.sockets, key, value) ? value.readBigUInt64LE() : null;
  }

  /** How many slots the program's hash spreads connections over. */
  setSlotCount(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.l.maxSlots) {
      throw new JfeError('JFE_ERR_BPF_MAP', `slot count ${n} out of range 0..${this.l.maxSlots}`);
    }
    const value = Buffer.alloc(this.l.configSize);
    value.writeUInt32LE(n, this.l.configNslotsOffset);
    callNative('JFE_ERR_BPF_MAP', 'set slot count', () => native().mapUpdate(this.fds.config, ZERO_KEY, value));
  }

  slotCount(): number {
    const value = Buffer.alloc(this.l.configSize);
    native().mapLookup(this.fds.config, ZERO_KEY, value);
    return value.readUInt32LE(this.l.configNslotsOffset);
  }

  // --- bypass and listeners (same key layout) -----------------------------

  private addrKey(family: Family, addr: string | null, port: number): Buffer {
    const k = this.key;
    k.fill(0);
    k.writeUInt32LE(family === 4 ? AF_INET : AF_INET6, this.l.addrKeyFamilyOffset);
    k.writeUInt32LE(port, this.l.addrKeyPortOffset);
    if (addr !== null) {
      const ip = this.parseIp(addr);
      if (!ip || ip.family !== family) throw new JfeError('JFE_ERR_BPF_MAP', `not an IPv${family} address: ${addr}`);
      ip.bytes.copy(k, this.l.addrKeyAddrOffset);
    }
    return k;
  }

  /**
   * ipToBytes, remembered: every upstream connection adds and deletes a bypass
   * entry for its client's address, and parsing the text each time cost about
   * 10 µs per connection under load (perf, 2026-11-27). Bounded: cleared when full.
   */
  private parseIp(addr: string): IpBytes | null {
    let ip = this.ipCache.get(addr);
    if (ip === undefined) {
      const parsed = ipToBytes(addr);
      if (parsed === null) return null;
      if (this.ipCache.size >= IP_CACHE_MAX) this.ipCache.clear();
      this.ipCache.set(addr, parsed);
      ip = parsed;
    }
    return ip;
  }

  private decodeAddrKey(k: Buffer): ListenerEntry {
    const family: Family = k.readUInt32LE(this.l.addrKeyFamilyOffset) === AF_INET ? 4 : 6;
    const bytes = k.subarray(this.l.addrKeyAddrOffset, this.l.addrKeyAddrOffset + (family === 4 ? 4 : 16));
    return { family, addr: bytes.every((b) => b === 0) ? null : bytesToIp(family, bytes), port: k.readUInt32LE(this.l.addrKeyPortOffset) };
  }

  private keys(fd: number): ListenerEntry[] {
    const out: ListenerEntry[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.l.addrKeySize);
      if (!native().mapNextKey(fd, prev, next)) return out;
      out.push(this.decodeAddrKey(next));
      prev = next;
    }
  }

  /** Marks the agent's upstream source (the client's address and a port) as not to steer. */
  addBypass(family: Family, addr: string, port: number): void {
    const key = this.addrKey(family, addr, port);
    callNative('JFE_ERR_BPF_MAP', 'add bypass entry', () => native().mapUpdate(this.fds.bypass, key, this.owner));
  }

  deleteBypass(family: Family, addr: string, port: number): boolean {
    const key = this.addrKey(family, addr, port);
    return callNative('JFE_ERR_BPF_MAP', 'delete bypass entry', () => native().mapDelete(this.fds.bypass, key));
  }

  bypassEntries(): ListenerEntry[] {
    return this.keys(this.fds.bypass);
  }

  /**
   * Removes the bypass entries whose owner is gone: a worker that died cannot
   * remove its own, and a stale entry would exempt a later client that
   * happens to use the same address and source port. Returns how many.
   */
  removeBypassOf(isGone: (pid: number) => boolean): number {
    const value = Buffer.alloc(4);
    const stale: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.l.addrKeySize);
      if (!native().mapNextKey(this.fds.bypass, prev, next)) break;
      if (native().mapLookup(this.fds.bypass, next, value) && isGone(value.readUInt32LE())) stale.push(next);
      prev = next;
    }
    // Deleted after the walk: deleting the cursor's key restarts a hash map walk.
    for (const k of stale) native().mapDelete(this.fds.bypass, k);
    return stale.length;
  }

  addListener(e: ListenerEntry): void {
    const key = this.addrKey(e.family, e.addr, e.port);
    callNative('JFE_ERR_BPF_MAP', 'add listener entry', () => native().mapUpdate(this.fds.listeners, key, ONE));
  }

  deleteListener(e: ListenerEntry): boolean {
    const key = this.addrKey(e.family, e.addr, e.port);
    return callNative('JFE_ERR_BPF_MAP', 'delete listener entry', () => native().mapDelete(this.fds.listeners, key));
  }

  listeners(): ListenerEntry[] {
    return this.keys(this.fds.listeners);
  }

  // --- ports and counters ---------------------------------------------------

  ports(): PortSet {
    const value = Buffer.alloc(this.l.portsSize);
    native().mapLookup(this.fds.ports, ZERO_KEY, value);
    return PortSet.fromBitmap(value);
  }

  /** Swaps in a new port set with one map update: never half of one. */
  setPorts(ports: PortSet): void {
    const bitmap = ports.toBitmap();
    callNative('JFE_ERR_BPF_MAP', 'set port set', () => native().mapUpdate(this.fds.ports, ZERO_KEY, bitmap));
  }

  /** Every counter, summed over CPUs. */
  counters(): Record<CounterName, number> {
    const n = native();
    const cpus = n.numPossibleCpus();
    const value = Buffer.alloc(8 * cpus);
    const out = {} as Record<CounterName, number>;
    for (const [name, index] of Object.entries(n.layout.counters) as [CounterName, number][]) {
      this.u32.writeUInt32LE(index);
      value.fill(0);
      n.mapLookup(this.fds.counters, this.u32, value);
      let sum = 0n;
      for (let c = 0; c < cpus; c++) sum += value.readBigUInt64LE(c * 8);
      out[name] = Number(sum);
    }
    return out;
  }
}


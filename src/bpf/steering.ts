// SPDX-License-Identifier: MIT
// The steering lifecycle: attach (transactional, locked, idempotent), detach
// (exactly what attach added), status, and opening the pinned maps.
import fs from 'node:fs';
import path from 'node:path';
import { JfeError, isSystemError } from '../errors';
import type { Logger } from '../log';
import type { PortSet } from '../config/ports';
import { type ProgramFds, native } from '../native';
import { ensureBpffs, isBpffs } from './bpffs';
import { withLock, runDirFor } from './lock';
import { type CounterName, type ListenerEntry, SteeringMaps } from './maps';
import { callNative } from './native-error';
import { type Netns, closeNetns, openNetns, runInNetns } from './netns';
import { MAP_NAMES, type MapName, type PinName, netnsPinDir, pinPath, stagingPinDir } from './pins';
import { type RoutingOptions, ensureRouting, removeRouting, routingState, type Run } from './routing';

export interface SteeringOptions extends RoutingOptions {
  /** A network namespace file; the current namespace when undefined. */
  netnsPath?: string | undefined;
  pinDir: string;
  /** Where the lock and the record of routing changes live (not bpffs: it holds no files). */
  runDir: string;
}

export interface AttachResult {
  state: 'attached' | 'updated' | 'unchanged';
  /** An attached program of another jfe build was replaced by this one's, its maps kept. */
  programReplaced: boolean;
  netnsIno: number;
  progId: number;
  linkId: number;
  ports: string;
  routingAdded: string[];
}

export interface DetachResult {
  detached: boolean;
  netnsIno: number;
  routingRemoved: string[];
}

export interface SocketSlot {
  family: 4 | 6;
  slot: number;
  cookie: string;
}

export interface SteeringStatus {
  attached: boolean;
  netnsIno: number;
  pinDir: string;
  progId?: number;
  linkId?: number;
  ports?: string;
  slotCount?: number;
  sockets?: SocketSlot[];
  bypassEntries?: number;
  listeners?: ListenerEntry[];
  counters?: Record<CounterName, number>;
  routing: { change: string; present: boolean }[];
}

const recordPath = (o: SteeringOptions, ino: number): string => path.join(runDirFor(o.runDir, ino), 'routing.json');

function runner(ns: Netns): Run {
  return (argv) => runInNetns(ns, argv);
}

function hasIpv6(run: Run): boolean {
  const r = run(['cat', '/proc/sys/net/ipv6/conf/lo/disable_ipv6']);
  return r.status === 0 && r.stdout.trim() === '0';
}

interface Pinned {
  linkFd: number;
  maps: SteeringMaps;
  linkId: number;
  progId: number;
}

/**
 * Opens the pins of this namespace when they describe a live attachment.
 * Pins whose link was detached behind our back are stale: removed when
 * removeStale, else reported as not attached.
 */
function openPinned(dir: string, ns: Netns, removeStale: boolean): Pinned | null {
  const n = native();
  const linkPin = pinPath(dir, 'link');
  if (!fs.existsSync(linkPin)) {
    if (removeStale && fs.existsSync(dir)) fs.rmSync(dir, { recursive: true, force: true });
    return null;
  }
  const linkFd = callNative('JFE_ERR_BPF_NOT_ATTACHED', `open pinned link ${linkPin}`, () => n.objGet(linkPin));
  const info = n.linkInfo(linkFd);
  if (info.netnsIno !== ns.ino) {
    fs.closeSync(linkFd);
    if (removeStale) fs.rmSync(dir, { recursive: true, force: true });
    return null;
  }
  try {
    const maps = SteeringMaps.open(dir, (name) => pinPath(dir, name));
    return { linkFd, maps, linkId: info.id, progId: info.progId };
  } catch (err) {
    fs.closeSync(linkFd);
    throw err;
  }
}

/**
 * The verifier gives up with EAGAIN when a signal is pending (a profiler's
 * SIGPROF, say); libbpf retries a few times, and so do we, a few more.
 */
function loadRetrying<T>(load: () => T): T {
  for (let attempt = 1; ; attempt++) {
    try {
      return load();
    } catch (err) {
      if (!isSystemError(err, 'EAGAIN') || attempt >= 20) throw err;
    }
  }
}

/** The attached program's tag, and this build's program loaded on the attached maps (null when it does not load there). */
interface BesideAttached {
  attachedTag: string;
  thisBuild: ProgramFds | null;
  loadError: unknown;
  close(): void;
}

function loadBesideAttached(dir: string, pinDir: string): BesideAttached {
  const n = native();
  const open = (name: PinName): number => callNative('JFE_ERR_BPF_NOT_ATTACHED', `open pinned ${name}`, () => n.objGet(pinPath(dir, name)), pinDir);
  const fds: number[] = [];
  const close = (): void => {
    for (const fd of fds) fs.closeSync(fd);
  };
  try {
    const attachedProg = open('prog');
    fds.push(attachedProg);
    const maps: Partial<Record<MapName, number>> = {};
    for (const name of MAP_NAMES) fds.push((maps[name] = open(name)));
    const attachedTag = n.progInfo(attachedProg).tag;
    try {
      const thisBuild = loadRetrying(() => n.loadProgram(maps as Record<MapName, number>));
      fds.push(...Object.values(thisBuild));
      return { attachedTag, thisBuild, loadError: null, close };
    } catch (err) {
      return { attachedTag, thisBuild: null, loadError: err, close };
    }
  } catch (err) {
    close();
    throw err;
  }
}

/**
 * An attached program from another jfe build (an upgrade) would otherwise
 * steer on until someone detached it: this build's program takes its place
 * in the same link and on the same maps, so the sockets, ports, listeners and
 * bypass entries carry over and no lookup goes without a program. (Maps of
 * another definition are refused before this, when they are opened.)
 */
function replaceOutdatedProgram(dir: string, pinned: Pinned, pinDir: string, log: Logger): boolean {
  const n = native();
  const b = loadBesideAttached(dir, pinDir);
  try {
    const loaded = b.thisBuild;
    if (loaded === null) {
      log.warn(
        { err: b.loadError instanceof Error ? b.loadError.message : b.loadError, progId: pinned.progId },
        'this build\'s steering program does not load on the attached maps; the attached program stays until `jfe-bpf detach` and a new attach',
      );
      return false;
    }
    const newTag = n.progInfo(loaded.prog).tag;
    if (newTag === b.attachedTag) return false;
    callNative('JFE_ERR_BPF_ATTACH', 'replace the attached program', () => n.linkUpdate(pinned.linkFd, loaded.prog), pinDir);
    log.info({ fromTag: b.attachedTag, toTag: newTag }, 'steering program replaced by this build\'s; its maps kept');
    // The pin follows the link: pinned beside it, then renamed over the old one.
    // The link holds the program; the pin only tells the next attach what runs
    // (a stale one makes it swap the same program in again), so a failure is a warning.
    const next = path.join(dir, 'prog-next');
    try {
      fs.rmSync(next, { force: true });
      n.objPin(loaded.prog, next);
      fs.renameSync(next, pinPath(dir, 'prog'));
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : err }, 'the replaced program runs, but its pin still names the old one');
    }
    return true;
  } finally {
    b.close();
  }
}

/** Loads, pins into a staging directory, attaches, then renames into place. */
function createPins(dir: string, ns: Netns, opts: SteeringOptions, ports: PortSet, log: Logger): Pinned {
  const n = native();
  const fds = callNative('JFE_ERR_BPF_LOAD', 'load the sk_lookup program', () => loadRetrying(n.loadProgram), opts.pinDir);
  const staging = stagingPinDir(opts.pinDir, ns.ino);
  let linkFd = -1;
  const closeAll = (): void => {
    for (const fd of Object.values(fds)) fs.closeSync(fd);
  };
  try {
    const maps = new SteeringMaps({ ports: fds.ports, config: fds.config, sockets: fds.sockets, bypass: fds.bypass, listeners: fds.listeners, counters: fds.counters });
    maps.setPorts(ports);
    maps.setSlotCount(0);
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { mode: 0o700 });
    const pin = (fd: number, name: PinName): void =>
      callNative('JFE_ERR_BPF_ATTACH', `pin ${name} in ${staging}`, () => n.objPin(fd, pinPath(staging, name)), opts.pinDir);
    pin(fds.prog, 'prog');
    for (const name of MAP_NAMES) pin(fds[name], name);
    linkFd = callNative('JFE_ERR_BPF_ATTACH', `attach to network namespace ${ns.path}`, () => n.attachNetns(fds.prog, ns.fd));
    pin(linkFd, 'link');
    fs.renameSync(staging, dir);
  } catch (err) {
    // Undo in reverse: the link (it would otherwise live while we hold its fd
    // only until exit), then the staging pins.
    if (linkFd >= 0) {
      n.linkDetach(linkFd);
      fs.closeSync(linkFd);
    }
    fs.rmSync(staging, { recursive: true, force: true });
    closeAll();
    throw err;
  }
  const info = n.linkInfo(linkFd);
  fs.closeSync(fds.prog);
  const maps = new SteeringMaps({ ports: fds.ports, config: fds.config, sockets: fds.sockets, bypass: fds.bypass, listeners: fds.listeners, counters: fds.counters });
  log.info({ netnsIno: ns.ino, linkId: info.id, progId: info.progId, ports: ports.toString() }, 'steering attached');
  return { linkFd, maps, linkId: info.id, progId: info.progId };
}

function closePinned(p: Pinned): void {
  fs.closeSync(p.linkFd);
  p.maps.close();
}

function withNetns<T>(netnsPath: string | undefined, fn: (ns: Netns) => T): T {
  const ns = openNetns(netnsPath);
  try {
    return fn(ns);
  } finally {
    closeNetns(ns);
  }
}

/**
 * Attaches the steering to a namespace, with the routing original-source
 * upstream needs. Twice is the same as once; a changed port set is applied
 * in place, with no moment of no steering.
 */
export function attach(opts: SteeringOptions & { ports: PortSet }, log: Logger): AttachResult {
  ensureBpffs(opts.pinDir, log);
  return withNetns(opts.netnsPath, (ns) =>
    withLock(opts.runDir, ns.ino, () => {
      const dir = netnsPinDir(opts.pinDir, ns.ino);
      let pinned = openPinned(dir, ns, true);
      let state: AttachResult['state'] = 'unchanged';
      let programReplaced = false;
      if (pinned) {
        try {
          programReplaced = replaceOutdatedProgram(dir, pinned, opts.pinDir, log);
        } catch (err) {
          // The attached program keeps steering: an upgrade that cannot replace it is no reason not to run.
          log.warn({ err: err instanceof Error ? err.message : err }, 'could not check or replace the attached steering program; it stays');
        }
        if (!pinned.maps.ports().equals(opts.ports)) {
          pinned.maps.setPorts(opts.ports);
          state = 'updated';
          log.info({ ports: opts.ports.toString() }, 'port set updated');
        }
      } else {
        pinned = createPins(dir, ns, opts, opts.ports, log);
        state = 'attached';
      }
      const run = runner(ns);
      let routingAdded: string[];
      try {
        routingAdded = ensureRouting(run, opts, recordPath(opts, ns.ino), hasIpv6(run), log);
      } catch (err) {
        // A fresh attach that cannot route is undone entirely.
        if (state === 'attached') {
          native().linkDetach(pinned.linkFd);
          closePinned(pinned);
          fs.rmSync(dir, { recursive: true, force: true });
          removeRouting(run, recordPath(opts, ns.ino), log);
        } else {
          closePinned(pinned);
        }
        throw err;
      }
      const result: AttachResult = {
        state,
        programReplaced,
        netnsIno: ns.ino,
        progId: programReplaced ? native().linkInfo(pinned.linkFd).progId : pinned.progId,
        linkId: pinned.linkId,
        ports: opts.ports.toString(),
        routingAdded,
      };
      closePinned(pinned);
      return result;
    }),
  );
}

/** Removes the program, its pins and exactly the routing attach added. */
export function detach(opts: SteeringOptions, log: Logger): DetachResult {
  return withNetns(opts.netnsPath, (ns) =>
    withLock(opts.runDir, ns.ino, () => {
      const dir = netnsPinDir(opts.pinDir, ns.ino);
      let detached = false;
      if (fs.existsSync(dir) && isBpffs(dir)) {
        const linkPin = pinPath(dir, 'link');
        if (fs.existsSync(linkPin)) {
          const n = native();
          const fd = callNative('JFE_ERR_BPF_DETACH', `open pinned link ${linkPin}`, () => n.objGet(linkPin));
          try {
            // Detach even if an agent still holds the link open.
            if (n.linkInfo(fd).netnsIno !== 0) {
              callNative('JFE_ERR_BPF_DETACH', 'detach the link', () => n.linkDetach(fd));
              detached = true;
            }
          } finally {
            fs.closeSync(fd);
          }
        }
        fs.rmSync(dir, { recursive: true, force: true });
      }
      const routingRemoved = removeRouting(runner(ns), recordPath(opts, ns.ino), log);
      if (detached) log.info({ netnsIno: ns.ino }, 'steering detached');
      return { detached, netnsIno: ns.ino, routingRemoved };
    }),
  );
}

export function status(opts: SteeringOptions): SteeringStatus {
  return withNetns(opts.netnsPath, (ns) => {
    const dir = netnsPinDir(opts.pinDir, ns.ino);
    const run = runner(ns);
    const base = { netnsIno: ns.ino, pinDir: dir, routing: routingState(run, opts, hasIpv6(run)) };
    const pinned = fs.existsSync(dir) && isBpffs(dir) ? openPinned(dir, ns, false) : null;
    if (!pinned) return { attached: false, ...base };
    try {
      const m = pinned.maps;
      const l = native().layout;
      const sockets: SocketSlot[] = [];
      for (const family of [4, 6] as const) {
        for (let slot = 0; slot < l.maxSlots; slot++) {
          const cookie = m.socketCookie(family, slot);
          if (cookie !== null) sockets.push({ family, slot, cookie: cookie.toString() });
        }
      }
      return {
        attached: true,
        ...base,
        progId: pinned.progId,
        linkId: pinned.linkId,
        ports: m.ports().toString(),
        slotCount: m.slotCount(),
        sockets,
        bypassEntries: m.bypassEntries().length,
        listeners: m.listeners(),
        counters: m.counters(),
      };
    } finally {
      closePinned(pinned);
    }
  });
}

/**
 * Whether the attached program is this build's: the kernel's tag of the one
 * in the link equals that of this build's, loaded on the same maps. null when
 * nothing is attached. Costs a program load (a verifier run): not for hot paths.
 */
export function attachedProgramIsThisBuilds(opts: Pick<SteeringOptions, 'netnsPath' | 'pinDir'>): boolean | null {
  return withNetns(opts.netnsPath, (ns) => {
    const dir = netnsPinDir(opts.pinDir, ns.ino);
    const pinned = fs.existsSync(dir) && isBpffs(dir) ? openPinned(dir, ns, false) : null;
    if (!pinned) return null;
    closePinned(pinned);
    const b = loadBesideAttached(dir, opts.pinDir);
    try {
      return b.thisBuild !== null && native().progInfo(b.thisBuild.prog).tag === b.attachedTag;
    } finally {
      b.close();
    }
  });
}

/** The steering handle of an attached namespace: its maps, for the agent and tests. */
export function openSteering(opts: Pick<SteeringOptions, 'netnsPath' | 'pinDir'>): SteeringMaps {
  return withNetns(opts.netnsPath, (ns) => {
    const dir = netnsPinDir(opts.pinDir, ns.ino);
    const pinned = fs.existsSync(dir) && isBpffs(dir) ? openPinned(dir, ns, false) : null;
    if (!pinned) {
      throw new JfeError('JFE_ERR_BPF_NOT_ATTACHED', `steering is not attached to ${ns.path} (no live pins under ${dir}): run "jfe-bpf attach"`);
    }
    fs.closeSync(pinned.linkFd);
    return pinned.maps;
  });
}

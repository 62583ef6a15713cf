// SPDX-License-Identifier: MIT
// One agent worker: its listening sockets (one per family), registered in its
// sockmap slot, and the connections they accept: the native data plane
// (data-plane.ts) accepts, dials and relays plaintext; Node takes over what
// needs it (TLS, upgrade dialogues, ACME challenges). Stopping unregisters
// first, so new connections go to the other workers or straight to the services.
import type net from 'node:net';
import type { CertSource } from '../certs/cert-source';
import type { ChallengeResponder } from './acme-challenges';
import type { Logger } from '../log';
import { type ConnectionCounter, type Eviction, LocalConnectionCounter, type Refusal } from './admission';
import { ConnectionGate } from './connection-gate';
import { type ConnectionEvents, type ConnectionHandle, type ConnectionOptions, adoptConnection, handleConnection } from './connection';
import { DataPlane } from './data-plane';
import { resetSocket } from './reset-socket';
import { type AgentListener, openListener } from './listener';
import { HTTP01_PORT, TLS_ALPN01_PORT } from './acme-challenges';
import { TlsServiceCache } from './tls-services';
import { ALL_DIALOGUES } from './upgrades';
import { UpgradeRegistry } from './upgrades/registry';
import type { DialogueFactory } from './upgrades/upgrade';
import { type BypassHandle, type Family, type UpstreamPorts, type UpstreamSource, createDialer } from './upstream';

/** The steering the agent needs: its slot in the sockmap and the bypass map. */
export interface SteeringHandle extends BypassHandle {
  /** The bypass map's fd: the native data plane adds and deletes its entries itself. */
  readonly fds: { readonly bypass: number };
  setSocket(family: Family, slot: number, fd: number): void;
  deleteSocket(family: Family, slot: number): boolean;
  socketCookie(family: Family, slot: number): bigint | null;
}

export interface AgentOptions extends ConnectionOptions {
  slot: number;
  backlog: number;
  /** Connections the host holds at most (every worker, as the counter counts); near it idle ones go, past it new ones are refused. */
  maxConnections: number;
  /** Connections one client (IPv4 address, IPv6 /64) holds at most on the host. */
  maxConnectionsPerClient: number;
  upstreamSource: UpstreamSource;
  /** Source ports of the upstream legs in 'original' mode (--upstream-ports). */
  upstreamPorts: UpstreamPorts;
  mark: number;
  /** How long a verdict on whether a destination speaks TLS itself holds. */
  tlsProbeTtlMs: number;
  /** Ports with an in-band upgrade dialogue (parseUpgradePorts). */
  upgradePorts: ReadonlyMap<number, DialogueFactory>;
}

export interface AgentEvents extends ConnectionEvents {
  refused(reason: Refusal): void;
  /** A held connection closed before its idle timeout, near the host's cap. */
  evicted(reason: Eviction): void;
  collision(): void;
}

export interface AgentDeps {
  steering: SteeringHandle;
  certs: CertSource;
  /** ACME challenges answered on the intercepted ports 80 and 443 (only with an ACME issuer). */
  challenges?: ChallengeResponder;
  events: AgentEvents;
  log: Logger;
  /** Where connections are counted: shared by every worker in `jfe run`; this worker alone by default. */
  counter?: ConnectionCounter;
}

/** How long a stopping worker keeps accepting after it left its slot. */
const LISTEN_LINGER_MS = 1000;

export class Agent {
  private readonly listeners: AgentListener[] = [];
  private readonly cookies = new Map<Family, bigint | null>();
  private readonly connections = new Set<ConnectionHandle>();
  private dialer: ReturnType<typeof createDialer> | undefined;
  private gate: ConnectionGate | undefined;
  private plane: DataPlane | undefined;

  constructor(
    private readonly opts: AgentOptions,
    private readonly deps: AgentDeps,
  ) {}

  /**
   * Settings a SIGHUP may change: read by connections accepted from now on
   * (open ones keep theirs), and the connection limits, which the gate reads
   * at each decision.
   */
  reconfigure(change: Partial<Pick<AgentOptions, 'idleTimeoutMs' | 'helloTimeoutMs' | 'probeTimeoutMs' | 'maxConnections' | 'maxConnectionsPerClient'>>): void {
    Object.assign(this.opts, change);
    if (change.idleTimeoutMs !== undefined) this.plane?.setIdleTimeout(change.idleTimeoutMs);
  }

  /** Connections held now: the native core's and those Node holds. */
  get activeConnections(): number {
    return this.connections.size + (this.plane?.activeConnections ?? 0);
  }

  /** The native data plane's bytes so far, open connections' included, reported as events.bytes (at scrape time). */
  flushBytes(): void {
    this.plane?.flushBytes();
  }

  async start(): Promise<void> {
    const { opts, deps } = this;
    const log = deps.log.child({ component: 'agent' });
    this.dialer = createDialer({ source: opts.upstreamSource, ports: opts.upstreamPorts, mark: opts.mark, bypass: deps.steering, onCollision: deps.events.collision });
    const connDeps = {
      dial: this.dialer.dial,
      certs: deps.certs,
      ...(deps.challenges ? { challenges: deps.challenges } : {}),
      tlsServices: new TlsServiceCache({ ttlMs: opts.tlsProbeTtlMs }),
      upgrades: new UpgradeRegistry(opts.upgradePorts, ALL_DIALOGUES),
      events: deps.events,
      log,
      opts,
    };
    const gate = new ConnectionGate(deps.counter ?? new LocalConnectionCounter(), opts, this.connections, deps.events, log);
    this.gate = gate;
    const onConnection = (socket: net.Socket): void => {
      const ticket = gate.enter(socket.remoteAddress);
      if (ticket === null) {
        socket.on('error', () => undefined);
        resetSocket(socket);
        return;
      }
      // onDone may run before handleConnection returns (a connection that
      // fails at once), so the handle is only tracked if it is still open.
      let handle: ConnectionHandle | undefined;
      let done = false;
      handle = handleConnection(socket, connDeps, () => {
        done = true;
        gate.leave(ticket);
        if (handle) this.connections.delete(handle);
      });
      if (!done) this.connections.add(handle);
    };
    const plane = new DataPlane(
      {
        bypassFd: deps.steering.fds.bypass,
        mark: opts.mark,
        source: opts.upstreamSource,
        ports: opts.upstreamPorts,
        idleTimeoutMs: opts.idleTimeoutMs,
        takeoverPorts: [...opts.upgradePorts.keys(), ...(deps.challenges ? [HTTP01_PORT, TLS_ALPN01_PORT] : [])],
      },
      {
        events: deps.events,
        log,
        admit: (key, address) => gate.enterKey(key, address),
        leave: (ticket) => gate.leave(ticket),
        acceptForNode: onConnection,
        adopt: (c, ticket) => {
          const { bypass } = c;
          let handle: ConnectionHandle | undefined;
          let done = false;
          handle = adoptConnection(
            { ...c, onUpstreamClosed: () => deps.steering.deleteBypass(bypass.family, bypass.address, bypass.port) },
            connDeps,
            () => {
              done = true;
              gate.leave(ticket);
              if (handle) this.connections.delete(handle);
            },
          );
          if (!done) this.connections.add(handle);
        },
      },
    );
    this.plane = plane;
    gate.attachNative(plane);
    for (const family of [4, 6] as const) {
      let l: AgentListener;
      try {
        l = openListener(family, opts.backlog);
      } catch (err) {
        if (family === 6) {
          log.warn({ err }, 'no IPv6 listener (IPv6 disabled?); steering IPv4 only');
          continue;
        }
        throw err;
      }
      plane.listen(l.fd);
      this.listeners.push(l);
    }
    // Register only once every listener is ready.
    this.register();
    log.info({ families: this.listeners.map((l) => l.family) }, 'worker registered');
  }

  /**
   * Puts our sockets in our slot, replacing whatever is there: a
   * predecessor's socket (new connections come to us from now on), or the
   * socket of a successor whose start failed (a rollback).
   */
  register(): void {
    const { steering } = this.deps;
    for (const l of this.listeners) {
      steering.setSocket(l.family, this.opts.slot, l.fd);
      this.cookies.set(l.family, steering.socketCookie(l.family, this.opts.slot));
    }
  }

  /**
   * Unregisters (only if the slot still holds our socket: a successor may have
   * taken it over), stops accepting, lets open connections finish for up to
   * drainMs, then closes the rest.
   */
  async stop(drainMs: number): Promise<void> {
    const { steering } = this.deps;
    const log = this.deps.log.child({ component: 'agent' });
    log.info({ active: this.activeConnections, drainMs }, 'unregistered; draining');
    for (const l of this.listeners) {
      const mine = this.cookies.get(l.family);
      if (mine !== undefined && mine !== null && steering.socketCookie(l.family, this.opts.slot) === mine) {
        steering.deleteSocket(l.family, this.opts.slot);
      }
    }
    // Keep accepting a moment: a handshake that began before the slot changed
    // completes into our accept queue, and closing the listener at once would
    // reset it. No new SYN reaches us once we are out of the sockmap.
    const deadline = Date.now() + drainMs;
    await new Promise((r) => setTimeout(r, Math.min(LISTEN_LINGER_MS, drainMs)));
    this.plane?.stopListening();
    while (this.activeConnections > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const left = this.activeConnections;
    if (left > 0) log.warn({ closed: left }, 'drain timeout; closing remaining connections');
    for (const c of this.connections) c.destroy();
    if (this.plane !== undefined && this.plane.activeConnections > 0) {
      this.plane.closeAll();
      // Their closed records come at the next turn of the loop (counts, tickets).
      await new Promise((r) => setTimeout(r, 10));
    }
    this.plane?.close();
    this.gate?.stop();
    this.dialer?.close();
  }
}

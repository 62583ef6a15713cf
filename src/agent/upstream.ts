// SPDX-License-Identifier: MIT
// Connects to the original destination from the client's own address
// (transparent socket, firewall mark), so the service sees the real client;
// or from the host's address ('host' mode) where that routing is unavailable.
// The source is put in the bypass map between bind() and connect(), so the
// SYN reaches the service instead of coming back to the agent.
import fs from 'node:fs';
import type net from 'node:net';
import { JfeError } from '../errors';
import { type Family, native } from '../native';
import { socketWithReusedReads } from './reused-reads';

export type { Family };

export interface Endpoint {
  family: Family;
  address: string;
  port: number;
}

/** The part of the steering handle the agent needs for its own connections. */
export interface BypassHandle {
  addBypass(family: Family, addr: string, port: number): void;
  deleteBypass(family: Family, addr: string, port: number): boolean;
}

export type UpstreamSource = 'original' | 'host';

/** Source ports of the legs in 'original' mode, both included (--upstream-ports, src/config/upstream-ports.ts). */
export interface UpstreamPorts {
  lo: number;
  hi: number;
}

export interface UpstreamOptions {
  source: UpstreamSource;
  /** Source ports in 'original' mode; 'host' mode binds the host's own address, where the kernel shares ports out among all local sockets. */
  ports: UpstreamPorts;
  mark: number;
  bypass: BypassHandle;
  /** Called when a candidate source port would collide with a live client connection. */
  onCollision?: () => void;
}

export type Dial = (client: Endpoint, dst: Endpoint) => net.Socket;

/** How many source ports to try before giving up (each collision is counted). */
const MAX_TRIES = 8;

export function createDialer(opts: UpstreamOptions): { dial: Dial; close(): void } {
  const n = native();
  const diagFd = n.diagOpen();
  const transparent = opts.source === 'original';
  const mark = transparent ? opts.mark : 0;

  const dial: Dial = (client, dst) => {
    const sourceAddr = transparent ? client.address : dst.address;
    let bound: { fd: number; port: number } | undefined;
    for (let i = 0; i < MAX_TRIES && !bound; i++) {
      const candidate = transparent
        ? n.upstreamSocket(client.family, sourceAddr, mark, true, opts.ports.lo, opts.ports.hi)
        : n.upstreamSocket(client.family, sourceAddr, mark, false);
      // (source, port') -> (dst, P) must not be a connection the agent holds
      // from a client: the SYN would land on that socket instead of the service.
      if (n.diagExists(diagFd, client.family, dst.address, dst.port, sourceAddr, candidate.port)) {
        fs.closeSync(candidate.fd);
        opts.onCollision?.();
        continue;
      }
      bound = candidate;
    }
    if (!bound) throw new JfeError('JFE_ERR_UPSTREAM', `no free source port for ${sourceAddr} after ${MAX_TRIES} tries`);
    const { fd, port } = bound;
    opts.bypass.addBypass(client.family, sourceAddr, port);
    // noDelay belongs to the constructor: connect() ignores it (Node 20 to 26 alike).
    const sock = socketWithReusedReads({ fd, readable: true, writable: true, allowHalfOpen: true, noDelay: true });
    sock.once('close', () => {
      opts.bypass.deleteBypass(client.family, sourceAddr, port);
    });
    sock.connect({ host: dst.address, port: dst.port });
    return sock;
  };
  return {
    dial,
    close: () => fs.closeSync(diagFd),
  };
}

// SPDX-License-Identifier: MIT
// Sockets inside a test namespace, made from this process through the addon:
// tagged services (each writes its tag to whoever connects) and clients.
import net from 'node:net';
import { native, type Family } from '../../src/native';
import type { Ns } from './netns';

export interface TaggedServer {
  server: net.Server;
  fd: number;
  port: number;
  /** Local address and port each accepted connection saw (the original destination). */
  accepted: { localAddress: string; localPort: number; remoteAddress: string; remotePort: number }[];
  close(): Promise<void>;
}

/** A listener in `ns` that greets every connection with `${tag}\n` and closes. */
export async function taggedServer(ns: Ns, family: Family, addr: string, port: number, tag: string): Promise<TaggedServer> {
  const fd = native().listenSocket(family, addr, port, 511, ns.fd);
  const accepted: TaggedServer['accepted'] = [];
  const server = net.createServer((sock) => {
    accepted.push({
      localAddress: sock.localAddress ?? '',
      localPort: sock.localPort ?? 0,
      remoteAddress: sock.remoteAddress ?? '',
      remotePort: sock.remotePort ?? 0,
    });
    sock.on('error', () => undefined);
    sock.end(`${tag}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, resolve);
  });
  const a = server.address();
  const bound = typeof a === 'object' && a ? a.port : port;
  return {
    server,
    fd,
    port: bound,
    accepted,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type DialOutcome = { kind: 'answered'; tag: string } | { kind: 'refused' } | { kind: 'error'; code: string };

/** Connects from `ns` and reads what the other end says. */
export function dial(ns: Ns, family: Family, host: string, port: number, opts: { local?: { address: string; port: number }; timeoutMs?: number } = {}): Promise<DialOutcome> {
  return new Promise((resolve) => {
    const fd = native().tcpSocket(family, ns.fd);
    const sock = new net.Socket({ fd, readable: true, writable: true });
    let data = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ kind: 'error', code: 'TIMEOUT' });
    }, opts.timeoutMs ?? 5000);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (data += d));
    sock.on('end', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ kind: 'answered', tag: data.trim() });
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNREFUSED' ? { kind: 'refused' } : { kind: 'error', code: err.code ?? err.message });
    });
    const connectOpts: net.TcpSocketConnectOpts = { host, port };
    if (opts.local) {
      connectOpts.localAddress = opts.local.address;
      connectOpts.localPort = opts.local.port;
    }
    sock.connect(connectOpts);
  });
}

/** What a port scanner sees: the handshake completes (open) or is refused. */
export function portState(ns: Ns, family: Family, host: string, port: number, timeoutMs = 3000): Promise<'open' | 'refused' | string> {
  return new Promise((resolve) => {
    const sock = new net.Socket({ fd: native().tcpSocket(family, ns.fd), readable: true, writable: true });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve('timeout');
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve('open');
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNREFUSED' ? 'refused' : (err.code ?? 'error'));
    });
    sock.connect(port, host);
  });
}

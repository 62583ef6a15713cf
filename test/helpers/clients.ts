// SPDX-License-Identifier: MIT
// Clients made from the test process inside a world's client namespace (raw
// TCP, or TLS over it), how a connection ended, and the steering checks and
// process lookups that the data-path tests (bulk, hostile, crash) share.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { openSteering } from '../../src/bpf/steering';
import { type Family, native } from '../../src/native';
import type { RunningJfe } from './jfe';
import type { Ns, World } from './netns';
import { runSync } from './spawn';

/** A TCP connection from `ns` (allowHalfOpen: ending our side leaves theirs open), from `localAddress` when given. */
export function connectRaw(ns: Ns, host: string, port: number, timeoutMs = 10_000, localAddress?: string): Promise<net.Socket> {
  const family: Family = net.isIPv6(host) ? 6 : 4;
  return new Promise((resolve, reject) => {
    const sock = new net.Socket({ fd: native().tcpSocket(family, ns.fd), readable: true, writable: true, allowHalfOpen: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`connect to ${host}:${port} timed out`));
    }, timeoutMs);
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.connect({ port, host, ...(localAddress === undefined ? {} : { localAddress }) }, () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolve(sock);
    });
  });
}

export interface TlsConn {
  /** The TCP socket under the TLS layer (reset it with resetAndDestroy()). */
  raw: net.Socket;
  tls: tls.TLSSocket;
}

/**
 * TLS from `ns`, verified against `ca`; with `servername`, SNI and the identity check use it.
 * `extra` goes to tls.connect (e.g. maxVersion).
 */
export async function connectTls(ns: Ns, host: string, port: number, ca: string, servername?: string, timeoutMs = 10_000, extra: tls.ConnectionOptions = {}): Promise<TlsConn> {
  const raw = await connectRaw(ns, host, port, timeoutMs);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`TLS handshake with ${host}:${port} timed out`));
    }, timeoutMs);
    const s = tls.connect({ ...extra, socket: raw, ca, host, ...(servername ? { servername } : {}), allowHalfOpen: true } as tls.ConnectionOptions, () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve({ raw, tls: s });
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      raw.destroy();
      reject(err);
    });
  });
}

export type Ending = { kind: 'end' } | { kind: 'error'; code: string } | { kind: 'open' };

export interface Received {
  data: Buffer;
  ending: Ending;
  /** From the call to the ending (or the timeout). */
  ms: number;
}

/**
 * Collects what the socket receives until it ends: a clean EOF ('end'), an error
 * (its code: ECONNRESET for a reset), or still 'open' after timeoutMs. Then destroys it.
 */
export function receiveAll(sock: net.Socket, timeoutMs = 30_000): Promise<Received> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (ending: Ending): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), ending, ms: Date.now() - t0 });
      // Our side may still be open (allowHalfOpen): close it, or it holds the path open.
      sock.destroy();
    };
    const timer = setTimeout(() => finish({ kind: 'open' }), timeoutMs);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('end', () => finish({ kind: 'end' }));
    sock.on('error', (err: NodeJS.ErrnoException) => finish({ kind: 'error', code: err.code ?? err.message }));
    sock.on('close', () => finish({ kind: 'end' }));
    sock.resume();
  });
}

/** Exactly n bytes from s (then stops reading). */
export function readN(s: net.Socket, n: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`timed out after ${got.length}/${n} bytes`)), timeoutMs);
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      if (got.length >= n) done(null);
    };
    const onEnd = (): void => done(new Error(`closed after ${got.length}/${n} bytes`));
    const done = (err: Error | null): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onEnd);
      s.pause();
      if (got.length > n) s.unshift(got.subarray(n));
      if (err) reject(err);
      else resolve(got.subarray(0, n));
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.resume();
  });
}

/** One HTTP/1.0 GET over a fresh connection (TLS when `ca` is given); resolves with the body, rejects on anything else. */
export async function httpGet(ns: Ns, host: string, port: number, path: string, ca?: string, timeoutMs = 10_000): Promise<string> {
  const sock = ca ? (await connectTls(ns, host, port, ca, undefined, timeoutMs)).tls : await connectRaw(ns, host, port, timeoutMs);
  const got = receiveAll(sock, timeoutMs);
  sock.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
  const r = await got;
  if (r.ending.kind !== 'end') throw new Error(`GET ${path}: ${JSON.stringify(r.ending)} after ${r.data.length} bytes`);
  const text = r.data.toString('latin1');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
  if (status !== '200') throw new Error(`GET ${path}: ${text.slice(0, 200)}`);
  return text.slice(text.indexOf('\r\n\r\n') + 4);
}

/**
 * Resolves once jfe's listeners map (kept current by polling the namespace's
 * listening sockets) steers `port`: before that, connections to it would go
 * straight to the service and a plaintext test would pass without jfe.
 */
export function waitSteered(w: World, port: number, timeoutMs = 10_000): Promise<void> {
  return waitListed(w, port, true, timeoutMs);
}

/** Resolves once jfe's listeners map lists `port` (listed) or no longer does (!listed). */
export async function waitListed(w: World, port: number, listed: boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const maps = openSteering({ netnsPath: w.srv.path, pinDir: w.pinDir });
    let now: boolean;
    try {
      now = maps.listeners().some((e) => e.port === port);
    } finally {
      maps.close();
    }
    if (now === listed) return;
    if (Date.now() > deadline) throw new Error(`port ${port} is ${listed ? 'not yet' : 'still'} in jfe's listeners map after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every live process of this jfe instance: its command line names the world's state dir. */
export function jfePids(jfe: RunningJfe): number[] {
  const r = runSync('pgrep', ['-f', '--', `--state-dir ${jfe.stateDir} `]);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

/** The pid of the worker process that holds `slot` (from /proc/<pid>/environ), or undefined. */
export function workerPid(jfe: RunningJfe, slot: number): number | undefined {
  for (const pid of jfePids(jfe)) {
    let env: string;
    try {
      env = fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    if (env.split('\0').includes(`JFEWORKER_SLOT=${slot}`)) return pid;
  }
  return undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The leaf a TLS handshake with SNI `name` (null: none) gets on srv4:8080 (unverified: the test inspects it), from `localAddress` when given. */
export async function leafFor(w: World, name: string | null, timeoutMs = 30_000, localAddress?: string): Promise<X509Certificate> {
  const raw = await connectRaw(w.cli, w.srv4, 8080, timeoutMs, localAddress);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ socket: raw, rejectUnauthorized: false, ...(name === null ? {} : { servername: name }) }, () => {
      const der = s.getPeerCertificate().raw;
      s.destroy();
      resolve(new X509Certificate(der));
    });
    s.setTimeout(timeoutMs, () => s.destroy(new Error('handshake timed out')));
    s.once('error', reject);
  });
}

/** Polls `fn` until it resolves truthy or the time is up; returns the last value. */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined as T);
    if (v || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Resolves, once `s` has closed, with the code of the first error it saw (null if none).
 * At EOF it probes `tcp` (the TCP socket under `s`, `s` itself for plain TCP) with a
 * zero-length write: libuv reports a RST that arrives behind unread bytes as EOF, and
 * the probe surfaces the reset (see agent/relay.ts, confirmEof).
 */
export function errorCodeAtClose(s: net.Socket, tcp: net.Socket = s): Promise<string | null> {
  let code: string | null = null;
  const record = (err: NodeJS.ErrnoException): void => {
    code ??= err.code ?? err.message;
  };
  s.on('error', record);
  s.on('end', () => {
    if (s.writableEnded || tcp.destroyed) return;
    tcp.write(Buffer.alloc(0), (err) => {
      if (err) {
        record(err);
        s.destroy();
      }
    });
  });
  return new Promise((resolve) => s.once('close', () => resolve(code)));
}

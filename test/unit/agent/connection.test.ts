// SPDX-License-Identifier: MIT
// handleConnection() on real loopback sockets, as the agent runs it: a test listener hands
// each accepted socket over, `dial` connects to a test service, `certs` is a stub with a
// throwaway certificate. Each test asserts what the client and the service actually see,
// the events the connection reported, and that onDone and `closed` came exactly once.
// With RigOptions.core the rig plays the native core instead: it dials, reads the first
// bytes straight from the fds, and hands both over through socketFromFd/adoptConnection.
import assert from 'node:assert/strict';
import { X509Certificate, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { before, describe, test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { parseClientHello } from '../../../src/agent/client-hello';
import {
  type ConnectionEvents,
  type ConnectionHandle,
  type ConnectionOptions,
  adoptConnection,
  handleConnection,
  socketFromFd,
} from '../../../src/agent/connection';
import type { RelayResult } from '../../../src/agent/relay';
import { TlsServiceCache } from '../../../src/agent/tls-services';
import { UpgradeRegistry } from '../../../src/agent/upgrades/registry';
import { adoptWithReusedReads, readsOf, socketWithReusedReads } from '../../../src/agent/reused-reads';
import type { Dialogue, DialogueFactory, SessionTransform, UpgradeOutcome } from '../../../src/agent/upgrades/upgrade';
import type { CertRequest, CertSource } from '../../../src/certs/cert-source';
import { silentLogger } from '../../../src/log';
import { HOST, type Pem, listen, readAll, readN, selfSigned, sha } from './loopback';

const MiB = 1024 * 1024;
/** A hung test fails on its own instead of stalling the file. */
const LIMIT = { timeout: 15_000 };
const OPTS: ConnectionOptions = { idleTimeoutMs: 5000, helloTimeoutMs: 500, probeTimeoutMs: 300 };

/** The agent's certificate (what the stub CertSource serves) and a TLS service's own. */
let agentPem: Pem;
let servicePem: Pem;

before(() => {
  agentPem = selfSigned('test', 'DNS:test.example,IP:127.0.0.1');
  servicePem = selfSigned('upstream', 'DNS:upstream.example');
});

// ---------------------------------------------------------------------------------------
// Small async plumbing

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An append-only list whose n-th item can be awaited before it exists. */
class Sequence<T> {
  readonly items: T[] = [];
  private waiters: { n: number; resolve: (v: T) => void }[] = [];
  push(item: T): void {
    this.items.push(item);
    const n = this.items.length - 1;
    this.waiters = this.waiters.filter((w) => {
      if (w.n !== n) return true;
      w.resolve(item);
      return false;
    });
  }
  at(n: number): Promise<T> {
    const have = this.items[n];
    if (have !== undefined) return Promise.resolve(have);
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
}

/**
 * Resolves, once `s` has closed, with the code of the first error it saw (null if none).
 * At EOF it probes with a zero-length write: libuv reports a RST that arrives behind
 * unread bytes as EOF, and the probe surfaces the ECONNRESET a plain recv() would return.
 */
function errorCodeAtClose(s: net.Socket): Promise<string | null> {
  let code: string | null = null;
  const record = (err: NodeJS.ErrnoException): void => {
    code ??= err.code ?? err.message;
  };
  s.on('error', record);
  s.on('end', () => {
    if (s.writableEnded || s.destroyed || s instanceof tls.TLSSocket) return;
    s.write(Buffer.alloc(0), (err) => {
      if (err) {
        record(err);
        s.destroy();
      }
    });
  });
  return new Promise((resolve) => s.once('close', () => resolve(code)));
}

/**
 * How the peer ended `s`: the code of the first error (ECONNRESET for a reset), or 'EOF'
 * for a clean FIN (confirmed by the same zero-length write). Destroys `s` either way,
 * so a test that expects a reset fails at once on a FIN instead of hanging half-open.
 */
function howEnded(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.once('end', () => {
      if (s.writableEnded || s.destroyed) {
        resolve('EOF');
        s.destroy();
        return;
      }
      s.write(Buffer.alloc(0), (err) => {
        resolve(err ? ((err as NodeJS.ErrnoException).code ?? err.message) : 'EOF');
        s.destroy();
      });
    });
    s.once('close', () => resolve('EOF'));
    s.resume();
  });
}

// ---------------------------------------------------------------------------------------
// The service behind the agent

/** One TCP connection the service accepted. */
interface ServiceConn {
  /** The socket the handler got: a TLSSocket for a TLS service. */
  sock: net.Socket;
  /** Every byte received on it (plaintext, after decryption for a TLS service). */
  received: Buffer[];
  /** Error code seen by the time it closed, or null. */
  closed: Promise<string | null>;
}

interface Service {
  port: number;
  /** Every TCP connection accepted, in order: the count of upstream connections. */
  accepted: Sequence<ServiceConn>;
}

type Handler = (sock: net.Socket) => void;

/**
 * A plaintext service. Like redis or an HTTP server, it answers a first read that starts
 * like TLS with an error line (or, with `onTls: 'silence'`, not at all) and ignores the rest.
 * Everything else goes to `inner`.
 */
function plaintext(inner: Handler, onTls: 'error' | 'silence' = 'error'): Handler {
  return (sock) => {
    let first = true;
    const sniff = (chunk: Buffer): void => {
      if (!first) return;
      first = false;
      if (chunk[0] === 0x16) {
        if (onTls === 'error') sock.write('-ERR protocol error\r\n');
        return;
      }
      sock.off('data', sniff);
      // Hand the first read to the listeners the handler adds (only to those).
      const before = sock.listeners('data');
      inner(sock);
      for (const l of sock.listeners('data')) if (!before.includes(l)) (l as (c: Buffer) => void).call(sock, chunk);
    };
    sock.on('data', sniff);
  };
}

/** Answers every CRLF-terminated line L with "+L\r\n"; EOF is answered with EOF. */
const echoLines: Handler = (sock) => {
  let buf = '';
  sock.on('data', (chunk: Buffer) => {
    buf += chunk.toString('latin1');
    let i: number;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      sock.write(`+${buf.slice(0, i)}\r\n`);
      buf = buf.slice(i + 2);
    }
  });
  sock.on('end', () => sock.end());
};

/** Writes back every byte it reads (an echo service); EOF is answered with EOF. */
const echoBytes: Handler = (sock) => {
  sock.on('data', (chunk: Buffer) => sock.write(chunk));
  sock.on('end', () => sock.end());
};

/** Reads to EOF, then answers `answer(received)` and ends. */
function answerAtEof(answer: (received: Buffer) => Buffer | string): Handler {
  return (sock) => {
    const parts: Buffer[] = [];
    sock.on('data', (chunk: Buffer) => parts.push(chunk));
    sock.on('end', () => sock.end(answer(Buffer.concat(parts))));
  };
}

async function startService(t: TestContext, kind: 'plain' | 'tls', handler: Handler): Promise<Service> {
  const accepted = new Sequence<ServiceConn>();
  const sockets: net.Socket[] = [];
  let server: net.Server;
  const track = (raw: net.Socket, sock: net.Socket): ServiceConn => {
    const conn: ServiceConn = { sock, received: [], closed: errorCodeAtClose(raw) };
    sockets.push(raw);
    return conn;
  };
  if (kind === 'plain') {
    server = net.createServer({ allowHalfOpen: true }, (sock) => {
      const conn = track(sock, sock);
      sock.on('data', (chunk: Buffer) => conn.received.push(chunk));
      accepted.push(conn);
      handler(sock);
    });
  } else {
    const conns = new Map<number | undefined, ServiceConn>(); // by client port
    server = tls.createServer({ ...servicePem, allowHalfOpen: true }, (sock) => {
      sock.on('error', () => undefined);
      sockets.push(sock);
      const conn = conns.get(sock.remotePort);
      if (conn) {
        conn.sock = sock;
        sock.on('data', (chunk: Buffer) => conn.received.push(chunk));
      }
      handler(sock);
    });
    server.on('connection', (raw: net.Socket) => {
      const conn = track(raw, raw);
      conns.set(raw.remotePort, conn);
      accepted.push(conn);
    });
    server.on('tlsClientError', () => undefined);
  }
  const port = await listen(server);
  t.after(() => {
    server.close();
    for (const s of sockets) s.destroy();
  });
  return { port, accepted };
}

// ---------------------------------------------------------------------------------------
// The agent side: a listener that hands each accepted socket to handleConnection

type Call = [name: keyof ConnectionEvents, ...args: unknown[]];

/** One connection as handleConnection reported it. */
interface Conn {
  /** Every event call, in order (bytes included). */
  calls: Call[];
  doneCount: number;
  done: Promise<void>;
  /** 'data' events on the accepted socket (only with RigOptions.countReads). */
  reads: number;
  handle: ConnectionHandle | null;
  /** onUpstreamClosed calls (adopted connections only). */
  upstreamClosed: number;
  /** What the core read before the handover (adopted connections only). */
  adopted: { clientBytes: Buffer; serviceBytes: Buffer; clientEof: boolean } | null;
}

interface RigOptions {
  service?: Service;
  /** Dial this port instead of the service's (a port nothing listens on). */
  dialPort?: number;
  opts?: Partial<ConnectionOptions>;
  countReads?: boolean;
  /** Upgrade dialogues by the rig's port (the destination port the connection sees). */
  upgrades?: (port: number) => UpgradeRegistry;
  /** The certificate side (default: the stub with the agent's certificate). */
  certs?: CertSource;
  /** Play the native core: dial, read the first bytes as planned, then adoptConnection. */
  core?: CorePlan;
}

/** What the rig, playing the native core, reads before it hands a connection over. */
interface CorePlan {
  /** From the client: this many bytes (read no further), or up to a whole ClientHello. */
  client?: number | 'hello';
  /** Then the client's FIN too. */
  clientEof?: boolean;
  /** From the service: this many bytes. */
  service?: number;
  /** The fds go through socketFromFd (default); false: handleConnection on socketFromFd(client fd), as for a port handed over at accept. */
  dial?: boolean;
  /** Wait this long between socketFromFd and adoptConnection: what arrived meanwhile waits in the socket. */
  handOverAfterMs?: number;
}

interface Rig {
  /** The agent's listening port: what clients connect to, and the cache key's port. */
  port: number;
  cache: TlsServiceCache;
  conns: Sequence<Conn>;
  /** Every socket of the test on either side of the agent: destroyed at teardown. */
  sockets: net.Socket[];
}

function recorder(conn: Conn): ConnectionEvents {
  const rec =
    (name: keyof ConnectionEvents) =>
    (...args: unknown[]): void => {
      conn.calls.push([name, ...args]);
    };
  return {
    opened: rec('opened'),
    bytes: rec('bytes'),
    handshakeFailed: rec('handshakeFailed'),
    sessionWithoutData: rec('sessionWithoutData'),
    upstreamFailed: rec('upstreamFailed'),
    closed: rec('closed'),
  };
}

const certs: CertSource = {
  contextFor: () => Promise.resolve(tls.createSecureContext(agentPem)),
};

async function makeRig(t: TestContext, o: RigOptions): Promise<Rig> {
  const upstreamPort = o.dialPort ?? o.service?.port;
  assert.ok(upstreamPort !== undefined);
  const cache = new TlsServiceCache({ ttlMs: 60_000 });
  const conns = new Sequence<Conn>();
  const opts = { ...OPTS, ...o.opts };
  const sockets: net.Socket[] = [];
  const dial = (): net.Socket => {
    // Made as the agent's dialer makes it: reads through reused-reads.ts.
    const s = socketWithReusedReads({ allowHalfOpen: true }).connect({ port: upstreamPort, host: HOST });
    sockets.push(s);
    return s;
  };
  // Accepted as the agent's listener accepts: paused, then adopted (reused-reads.ts).
  const agent = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (accepted) => {
    if (o.core) {
      asCore(accepted, o.core);
      return;
    }
    const sock = adoptWithReusedReads(accepted);
    let markDone = (): void => undefined;
    const conn: Conn = {
      calls: [],
      doneCount: 0,
      done: new Promise((r) => (markDone = r)),
      reads: 0,
      handle: null,
      upstreamClosed: 0,
      adopted: null,
    };
    sockets.push(sock);
    if (o.countReads) sock.on('data', () => conn.reads++);
    conns.push(conn);
    const deps = { dial, certs: o.certs ?? certs, tlsServices: cache, events: recorder(conn), log: silentLogger, opts, upgrades };
    conn.handle = handleConnection(sock, deps, () => {
      conn.doneCount++;
      markDone();
    });
  });
  /**
   * The native core's part, played with the kernel's own sockets: the accepted socket
   * is never read by Node; the core dials (a paused socket Node never reads either),
   * reads the planned first bytes straight from the fds, and hands both fds over.
   */
  const asCore = (accepted: net.Socket, plan: CorePlan): void => {
    let markDone = (): void => undefined;
    const conn: Conn = { calls: [], doneCount: 0, done: new Promise((r) => (markDone = r)), reads: 0, handle: null, upstreamClosed: 0, adopted: null };
    conns.push(conn);
    const onDone = (): void => {
      conn.doneCount++;
      markDone();
    };
    const deps = { dial, certs: o.certs ?? certs, tlsServices: cache, events: recorder(conn), log: silentLogger, opts, upgrades };
    const src = { family: 4 as const, address: HOST, port: accepted.remotePort as number };
    const dst = { family: 4 as const, address: HOST, port };
    const clientFd = fdOf(accepted);
    park(accepted);
    if (plan.dial === false) {
      const sock = socketFromFd(clientFd);
      sockets.push(sock);
      conn.handle = handleConnection(sock, deps, onDone);
      return;
    }
    const up = new net.Socket({ allowHalfOpen: true });
    up.pause();
    up.connect({ port: upstreamPort, host: HOST });
    park(up);
    void (async (): Promise<void> => {
      await once(up, 'connect');
      const upFd = fdOf(up);
      const fromClient = await readFd(clientFd, plan.client === 'hello' ? helloDone : (plan.client ?? 0), plan.clientEof ?? false);
      const fromService = await readFd(upFd, plan.service ?? 0, false);
      const client = socketFromFd(clientFd);
      const upstream = socketFromFd(upFd);
      sockets.push(client, upstream);
      if (plan.handOverAfterMs !== undefined) await delay(plan.handOverAfterMs);
      conn.adopted = { clientBytes: fromClient.bytes, serviceBytes: fromService.bytes, clientEof: fromClient.eof };
      conn.handle = adoptConnection(
        { client, upstream, src, dst, ...conn.adopted, onUpstreamClosed: () => conn.upstreamClosed++ },
        deps,
        onDone,
      );
    })();
  };
  let upgrades: UpgradeRegistry | undefined;
  const port = await listen(agent);
  upgrades = o.upgrades?.(port);
  t.after(() => {
    agent.close();
    for (const c of conns.items) c.handle?.destroy();
    for (const s of sockets) s.destroy();
  });
  return { port, cache, conns, sockets };
}

/**
 * Sockets whose fd was handed on (socketFromFd) and which must never close it: kept
 * here, unread and unwritten, for the life of the test process. Node has no way to
 * let a handle go without closing its fd; the core's fds have no Node handle at all.
 */
const parked: net.Socket[] = [];
function park(s: net.Socket): void {
  s.on('error', () => undefined);
  parked.push(s);
}

function fdOf(s: net.Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  assert.ok(typeof fd === 'number' && fd >= 0, 'a socket with an fd');
  return fd;
}

const helloDone = (b: Buffer): boolean => parseClientHello(b).kind !== 'need-more';

/**
 * Reads from a non-blocking fd as the core does (read(2), bounded): `want` bytes and
 * no more, or until `want` says the bytes are enough; then, with `eof`, the FIN.
 */
async function readFd(fd: number, want: number | ((b: Buffer) => boolean), eof: boolean): Promise<{ bytes: Buffer; eof: boolean }> {
  const parts: Buffer[] = [];
  let n = 0;
  let sawEof = false;
  const enough = (): boolean => (typeof want === 'number' ? n >= want : n > 0 && want(Buffer.concat(parts, n)));
  const deadline = Date.now() + 5000;
  while (!sawEof && !(enough() && !eof)) {
    const room = typeof want === 'number' && !enough() ? want - n : 64 * 1024;
    const buf = Buffer.alloc(room);
    let got: number;
    try {
      got = fs.readSync(fd, buf, 0, room, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      if (Date.now() > deadline) assert.fail(`the core's read timed out with ${n} bytes`);
      await delay(2);
      continue;
    }
    if (got === 0) sawEof = true;
    else {
      parts.push(buf.subarray(0, got));
      n += got;
    }
  }
  return { bytes: Buffer.concat(parts, n), eof: sawEof };
}

/**
 * Waits for the connection's onDone, then a little longer for anything late, and checks
 * that onDone and `closed` came exactly once. Returns the calls other than `bytes`.
 */
async function finished(conn: Conn): Promise<Call[]> {
  await within(conn.done, 10_000, 'onDone');
  await delay(50);
  assert.equal(conn.doneCount, 1, 'onDone called exactly once');
  assert.equal(conn.calls.filter((c) => c[0] === 'closed').length, 1, 'closed reported exactly once');
  return conn.calls.filter((c) => c[0] !== 'bytes');
}

/** Every connection the rig accepted finished, each with one onDone and one `closed`. */
async function allFinished(rig: Rig): Promise<void> {
  for (const conn of rig.conns.items) await finished(conn);
}

/** The `bytes` events summed per direction. */
function bytesCounted(conn: Conn): { in: number; out: number } {
  const sum = { in: 0, out: 0 };
  for (const [name, dir, n] of conn.calls) if (name === 'bytes') sum[dir as 'in' | 'out'] += n as number;
  return sum;
}

/** A plain TCP client of the agent, with its error code at close. */
function plainClient(rig: Rig): { sock: net.Socket; saw: Promise<string | null> } {
  const sock = net.connect({ host: HOST, port: rig.port, allowHalfOpen: true });
  rig.sockets.push(sock);
  return { sock, saw: errorCodeAtClose(sock) };
}

/** A TCP client of the agent that expects to be cut off: how the agent ended it. */
function rawClient(rig: Rig): { sock: net.Socket; ended: Promise<string> } {
  const sock = net.connect({ host: HOST, port: rig.port, allowHalfOpen: true });
  rig.sockets.push(sock);
  return { sock, ended: howEnded(sock) };
}

interface TlsClient {
  sock: tls.TLSSocket;
  /** The client_random of its hello, from the keylog (hex). */
  random: Promise<string>;
}

/** A TLS client of the agent; resolves after its handshake. */
async function tlsClient(rig: Rig, o: tls.ConnectionOptions = {}): Promise<TlsClient> {
  // allowHalfOpen reaches the TLSSocket at runtime, though @types/node leaves it out.
  const sock = tls.connect({
    host: HOST,
    port: rig.port,
    ca: agentPem.cert,
    servername: 'test.example',
    allowHalfOpen: true,
    ...o,
  } as tls.ConnectionOptions);
  rig.sockets.push(sock);
  sock.on('error', () => undefined);
  const random = new Promise<string>((resolve) =>
    sock.on('keylog', (line: Buffer) => resolve(line.toString('latin1').split(' ')[1] ?? '')),
  );
  await once(sock, 'secureConnect');
  return { sock, random };
}

/** A TLS client over a TCP socket of its own, so a test can reset the connection under it; resolves after the handshake. */
async function scannerClient(rig: Rig, maxVersion: tls.SecureVersion): Promise<{ sock: net.Socket; tlsSock: tls.TLSSocket }> {
  const sock = net.connect({ host: HOST, port: rig.port });
  rig.sockets.push(sock);
  await once(sock, 'connect');
  const { sock: tlsSock } = await tlsClient(rig, { maxVersion, socket: sock });
  return { sock, tlsSock };
}

/** Every byte the service received on `conn`. */
function bytesOf(conn: ServiceConn): Buffer {
  return Buffer.concat(conn.received);
}

/** The ClientHello a Node TLS client for test.example sends (captured, never delivered). */
function captureHello(): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const wire = new Duplex({
      write(chunk: Buffer, _enc, cb): void {
        parts.push(Buffer.from(chunk));
        const all = Buffer.concat(parts);
        if (parseClientHello(all).kind === 'hello') {
          resolve(all);
          setImmediate(() => sock.destroy());
        }
        cb();
      },
      read(): void {},
    });
    const sock = tls.connect({ socket: wire, servername: 'test.example' });
    sock.on('error', () => undefined);
  });
}

// ---------------------------------------------------------------------------------------

describe('handleConnection, plaintext', () => {
  test('bytes reach the service byte-exact and the answer comes back; opened/closed plain with the counts', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    const rig = await makeRig(t, { service });
    const { sock, saw } = plainClient(rig);
    const request = 'PING hello\r\n';
    sock.write(request);
    assert.equal((await readN(sock, 13)).toString(), '+PING hello\r\n');
    const up = await service.accepted.at(0);
    assert.equal(bytesOf(up).toString(), request);
    const atClient = readAll(sock);
    sock.end();
    assert.equal((await atClient).length, 0, 'nothing more after the answer');
    assert.equal(await saw, null);
    assert.equal(await up.closed, null);
    const conn = await rig.conns.at(0);
    assert.deepEqual(await finished(conn), [
      ['opened', 'plain', rig.port],
      ['closed', 'plain', { bytesIn: 12, bytesOut: 13, reason: 'done' } satisfies RelayResult],
    ]);
    assert.deepEqual(bytesCounted(conn), { in: 12, out: 13 });
    assert.equal(service.accepted.items.length, 1);
  });

  test('activity (what the idle tracker watches) grows with each byte either way, sniffed or relayed, and not otherwise', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    const rig = await makeRig(t, { service });
    const { sock } = plainClient(rig);
    await once(sock, 'connect');
    const conn = await rig.conns.at(0);
    const handle = conn.handle;
    assert.ok(handle);
    await delay(50);
    assert.equal(handle.activity(), 0, 'a silent client: nothing moved');
    assert.ok(Date.now() - handle.openedAt < 5000);
    sock.write('PING\r\n');
    await readN(sock, 7);
    const after = handle.activity();
    assert.ok(after >= 6 + 7, `sniffed and relayed bytes counted (${after})`);
    await delay(50);
    assert.equal(handle.activity(), after, 'silence moves nothing');
    sock.write('PONG\r\n');
    await readN(sock, 7);
    assert.equal(handle.activity(), after + 6 + 7);
    sock.destroy();
  });

  test('5 MB client→service arrive byte-exact (sha256); closed counts every byte', LIMIT, async (t) => {
    const service = await startService(t, 'plain', answerAtEof((got) => `${got.length} ${sha(got)}\n`));
    const rig = await makeRig(t, { service });
    const payload = randomBytes(5 * MiB);
    payload[0] = 0x50; // not 0x16: this is plaintext whatever the random bytes say
    const answer = `${payload.length} ${sha(payload)}\n`;
    const { sock, saw } = plainClient(rig);
    const atClient = readAll(sock);
    sock.end(payload);
    assert.equal((await atClient).toString(), answer);
    assert.equal(await saw, null);
    const up = await service.accepted.at(0);
    assert.equal(sha(bytesOf(up)), sha(payload));
    const conn = await rig.conns.at(0);
    assert.deepEqual(await finished(conn), [
      ['opened', 'plain', rig.port],
      ['closed', 'plain', { bytesIn: payload.length, bytesOut: answer.length, reason: 'done' }],
    ]);
    assert.deepEqual(bytesCounted(conn), { in: payload.length, out: answer.length });
  });

  test('a service that speaks first: its banner reaches a silent client at once, no sniff wait', LIMIT, async (t) => {
    const banner = '220 smtp.test ESMTP ready\r\n';
    const service = await startService(t, 'plain', (sock) => {
      sock.write(banner);
      sock.on('data', (chunk: Buffer) => {
        if (chunk.toString() === 'QUIT\r\n') sock.end('221 bye\r\n');
      });
    });
    // A hello timeout far longer than the bound below: any wait for the client would show.
    const rig = await makeRig(t, { service, opts: { helloTimeoutMs: 5000 } });
    const { sock, saw } = plainClient(rig);
    await once(sock, 'connect');
    const t0 = Date.now();
    const got = await readN(sock, banner.length);
    const elapsed = Date.now() - t0;
    assert.equal(got.toString(), banner);
    assert.ok(elapsed < 400, `banner took ${elapsed} ms`);
    const rest = readAll(sock);
    sock.write('QUIT\r\n');
    assert.equal((await rest).toString(), '221 bye\r\n');
    sock.end();
    assert.equal(await saw, null);
    assert.deepEqual(await finished(await rig.conns.at(0)), [
      ['opened', 'plain', rig.port],
      ['closed', 'plain', { bytesIn: 6, bytesOut: banner.length + 9, reason: 'done' }],
    ]);
  });

  test('a client that half-closes before its first byte: the service sees EOF, its answer still arrives', LIMIT, async (t) => {
    const service = await startService(t, 'plain', answerAtEof((got) => `got ${got.length}\r\n`));
    const rig = await makeRig(t, { service });
    const { sock, saw } = plainClient(rig);
    const got = readAll(sock);
    sock.end();
    assert.equal((await got).toString(), 'got 0\r\n');
    assert.equal(await saw, null);
    const calls = await finished(await rig.conns.at(0));
    assert.deepEqual(calls[0], ['opened', 'plain', rig.port]);
    assert.deepEqual(calls[1]?.slice(0, 2), ['closed', 'plain']);
    assert.equal(calls.length, 2);
  });

  test('a service that half-closes before its first byte: the client sees EOF and can still send', LIMIT, async (t) => {
    let seen: Buffer | null = null;
    const service = await startService(t, 'plain', (sock) => {
      sock.end();
      void readAll(sock).then((b) => (seen = b));
    });
    const rig = await makeRig(t, { service });
    const { sock, saw } = plainClient(rig);
    assert.equal((await readAll(sock)).length, 0);
    const upload = randomBytes(256 * 1024);
    upload[0] = 0x50; // plaintext whatever the random bytes say
    sock.end(upload);
    assert.equal(await saw, null);
    const calls = await finished(await rig.conns.at(0));
    assert.ok(seen !== null && sha(seen) === sha(upload), 'the service got the upload whole');
    assert.deepEqual(calls[0], ['opened', 'plain', rig.port]);
    assert.deepEqual(calls[1]?.slice(0, 2), ['closed', 'plain']);
  });
});

describe('handleConnection, TLS', () => {
  for (const onTls of ['error', 'silence'] as const) {
    test(`TLS client, plaintext service (answers a hello with ${onTls}): terminated here, probed once, then cached`, LIMIT, async (t) => {
      const service = await startService(t, 'plain', plaintext(echoLines, onTls));
      const rig = await makeRig(t, { service });

      const c1 = await tlsClient(rig);
      assert.equal(c1.sock.getPeerX509Certificate()?.fingerprint256, new X509Certificate(agentPem.cert).fingerprint256);
      c1.sock.write('PING\r\n');
      assert.equal((await readN(c1.sock, 7)).toString(), '+PING\r\n');
      // Two upstream connections: the probe, which got this client's own hello, once and
      // whole; then the one the terminated session uses, which got plaintext only.
      assert.equal(service.accepted.items.length, 2);
      const [probe, session] = service.accepted.items as [ServiceConn, ServiceConn];
      const hello = bytesOf(probe);
      const parsed = parseClientHello(hello);
      assert.equal(parsed.kind, 'hello');
      assert.ok(parsed.kind === 'hello');
      assert.equal(parsed.hello.recordsLength, hello.length, 'one hello, nothing else');
      assert.equal(parsed.hello.sni, 'test.example');
      // Record header (5) + handshake header (4) + legacy_version (2), then the random.
      assert.equal(hello.subarray(11, 43).toString('hex'), await c1.random, "the client's own hello");
      assert.equal(bytesOf(session).toString(), 'PING\r\n');
      assert.equal(rig.cache.get(HOST, rig.port), 'plain');

      // Second connection: no probe, one more upstream connection only.
      const c2 = await tlsClient(rig);
      c2.sock.write('PONG\r\n');
      assert.equal((await readN(c2.sock, 7)).toString(), '+PONG\r\n');
      assert.equal(service.accepted.items.length, 3);
      assert.equal(bytesOf(service.accepted.items[2] as ServiceConn).toString(), 'PONG\r\n');

      for (const c of [c1, c2]) {
        const ended = readAll(c.sock);
        c.sock.end();
        assert.equal((await ended).length, 0);
      }
      for (const i of [0, 1]) {
        assert.deepEqual(await finished(await rig.conns.at(i)), [
          ['opened', 'tls', rig.port],
          ['closed', 'tls', { bytesIn: 6, bytesOut: 7, reason: 'done' }],
        ]);
      }
      assert.equal(await session.closed, null);
    });
  }

  test('TLS client, TLS service: passed through untouched (the service\'s certificate), cached as tls', LIMIT, async (t) => {
    const service = await startService(t, 'tls', echoLines);
    const rig = await makeRig(t, { service });
    const serviceFingerprint = new X509Certificate(servicePem.cert).fingerprint256;
    assert.notEqual(serviceFingerprint, new X509Certificate(agentPem.cert).fingerprint256);
    const clientOpts = { ca: servicePem.cert, servername: 'upstream.example' };

    const c1 = await tlsClient(rig, clientOpts);
    assert.equal(c1.sock.getPeerX509Certificate()?.fingerprint256, serviceFingerprint);
    c1.sock.write('PING\r\n');
    assert.equal((await readN(c1.sock, 7)).toString(), '+PING\r\n');
    assert.equal(rig.cache.get(HOST, rig.port), 'tls');
    assert.equal(service.accepted.items.length, 1, 'the probe connection is the session');
    assert.equal(bytesOf(service.accepted.items[0] as ServiceConn).toString(), 'PING\r\n');

    // Second connection: straight through from the cache, still one upstream connection.
    const c2 = await tlsClient(rig, clientOpts);
    assert.equal(c2.sock.getPeerX509Certificate()?.fingerprint256, serviceFingerprint);
    c2.sock.write('PONG\r\n');
    assert.equal((await readN(c2.sock, 7)).toString(), '+PONG\r\n');
    assert.equal(service.accepted.items.length, 2);

    for (const c of [c1, c2]) {
      const ended = readAll(c.sock);
      c.sock.end();
      assert.equal((await ended).length, 0);
    }
    for (const i of [0, 1]) {
      const calls = await finished(await rig.conns.at(i));
      assert.deepEqual(calls[0], ['opened', 'passthrough', rig.port]);
      assert.equal(calls.length, 2);
      const [name, kind, result] = calls[1] as [string, string, RelayResult];
      assert.deepEqual([name, kind, result.reason], ['closed', 'passthrough', 'done']);
      assert.ok(result.bytesIn > 6 && result.bytesOut > 7, 'TLS records, not plaintext, were counted');
    }
  });

  test('TLS client, echo service (sends the hello back): not TLS, terminated here, cached plain', LIMIT, async (t) => {
    const service = await startService(t, 'plain', echoBytes);
    const rig = await makeRig(t, { service });
    for (const i of [0, 1]) {
      const c = await tlsClient(rig);
      assert.equal(c.sock.getPeerX509Certificate()?.fingerprint256, new X509Certificate(agentPem.cert).fingerprint256, `client ${i}: the agent's certificate`);
      c.sock.write('PING\r\n');
      assert.equal((await readN(c.sock, 6)).toString(), 'PING\r\n');
      assert.equal(rig.cache.get(HOST, rig.port), 'plain');
      c.sock.destroy();
    }
    // The probe (which echoed the hello), then one session per client: no second probe.
    assert.equal(service.accepted.items.length, 3);
    assert.equal(parseClientHello(bytesOf(service.accepted.items[0] as ServiceConn)).kind, 'hello');
  });

  test('TLS service whose answer arrives split (inside the record header, the handshake header, the body): passed through', LIMIT, async (t) => {
    const tlsService = await startService(t, 'tls', echoLines);
    // A TCP relay in front of it that writes the service's first answer in pieces, each its own segment.
    const splitter = await startService(t, 'plain', (sock) => {
      sock.setNoDelay(true);
      const up = net.connect({ host: HOST, port: tlsService.port, noDelay: true });
      up.on('error', () => sock.destroy());
      sock.on('error', () => up.destroy());
      sock.on('data', (c: Buffer) => up.write(c));
      let first = true;
      up.on('data', (c: Buffer) => {
        if (!first) {
          sock.write(c);
          return;
        }
        first = false;
        up.pause();
        void (async () => {
          for (const [from, to] of [[0, 3], [3, 7], [7, 60], [60, c.length]] as const) {
            sock.write(c.subarray(from, to));
            await delay(30);
          }
          up.resume();
        })();
      });
    });
    const rig = await makeRig(t, { service: splitter, opts: { probeTimeoutMs: 5000 } });
    const c = await tlsClient(rig, { ca: servicePem.cert, servername: 'upstream.example' });
    assert.equal(c.sock.getPeerX509Certificate()?.fingerprint256, new X509Certificate(servicePem.cert).fingerprint256);
    c.sock.write('PING\r\n');
    assert.equal((await readN(c.sock, 7)).toString(), '+PING\r\n');
    assert.equal(rig.cache.get(HOST, rig.port), 'tls');
    assert.equal(splitter.accepted.items.length, 1, 'the probe connection is the session');
  });

  test('TLS client, a service that answers a truncated ServerHello and closes: not TLS, terminated here, cached plain', LIMIT, async (t) => {
    const truncated = Buffer.from('160303007a020000760303' + 'ab'.repeat(32), 'hex');
    const service = await startService(t, 'plain', (sock) => sock.once('data', () => sock.end(truncated)));
    const rig = await makeRig(t, { service });
    const c = await tlsClient(rig);
    assert.equal(c.sock.getPeerX509Certificate()?.fingerprint256, new X509Certificate(agentPem.cert).fingerprint256);
    c.sock.write('PING\r\n');
    assert.deepEqual(await readAll(c.sock), truncated, 'the session got the same answer, inside TLS');
    assert.equal(rig.cache.get(HOST, rig.port), 'plain');
    assert.equal(service.accepted.items.length, 2);
  });

  test('after termination, a service that answers plaintext with a TLS alert is taken for TLS next time; one that echoes an alert-like plaintext is not', LIMIT, async (t) => {
    const alert = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]);
    for (const [what, handler, request, verdict] of [
      ['answers an alert', (sock: net.Socket) => sock.once('data', () => sock.end(alert)), Buffer.from('PING\r\n'), 'tls'],
      ['echoes', echoBytes, alert, 'plain'],
    ] as const) {
      const service = await startService(t, 'plain', handler);
      const rig = await makeRig(t, { service });
      rig.cache.set(HOST, rig.port, 'plain'); // as after a probe that timed out
      const c = await tlsClient(rig);
      c.sock.write(request);
      assert.deepEqual(await readN(c.sock, alert.length), alert, what);
      c.sock.destroy();
      await finished(await rig.conns.at(0));
      assert.equal(rig.cache.get(HOST, rig.port), verdict, what);
      assert.equal(service.accepted.items.length, 1, `${what}: no probe`);
    }
  });

  test('the certificate request carries the SNI, the address dialled and the client\'s address (for its share of the ACME allowance)', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    const asked: CertRequest[] = [];
    const rig = await makeRig(t, { service, certs: { contextFor: (req) => (asked.push(req), certs.contextFor(req)) } });
    const c = await tlsClient(rig);
    assert.deepEqual(asked, [{ servername: 'test.example', localAddress: HOST, clientAddress: c.sock.localAddress }]);
    c.sock.destroy();
  });

  test('ALPN: h2 is never offered to a plaintext service; http/1.1 is', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    const rig = await makeRig(t, { service });
    const both = await tlsClient(rig, { ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(both.sock.alpnProtocol, 'http/1.1');
    const h2only = await tlsClient(rig, { ALPNProtocols: ['h2'] });
    assert.equal(h2only.sock.alpnProtocol, false);
    for (const c of [both, h2only]) {
      c.sock.write('PING\r\n');
      assert.equal((await readN(c.sock, 7)).toString(), '+PING\r\n');
      c.sock.end();
    }
    for (const i of [0, 1]) {
      const calls = await finished(await rig.conns.at(i));
      assert.deepEqual(calls[0], ['opened', 'tls', rig.port]);
    }
  });

  test('a ClientHello that arrives one byte at a time is still recognised and terminated', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    // The hello takes a few hundred ms to trickle in; the timeout is not under test here.
    const rig = await makeRig(t, { service, countReads: true, opts: { helloTimeoutMs: 5000 } });
    const tcp = net.connect({ host: HOST, port: rig.port, allowHalfOpen: true });
    tcp.setNoDelay(true);
    tcp.on('error', () => undefined);
    t.after(() => tcp.destroy());
    // Until the agent first answers, every byte the TLS client writes goes out on its own.
    let trickle = true;
    let pieces = 0;
    const wire = new Duplex({
      allowHalfOpen: true,
      write(chunk: Buffer, _enc, cb): void {
        if (!trickle) {
          tcp.write(chunk, cb);
          return;
        }
        void (async () => {
          for (let i = 0; i < chunk.length; i++) {
            tcp.write(chunk.subarray(i, i + 1));
            pieces++;
            await delay(1);
          }
        })().then(() => cb(), cb);
      },
      read(): void {
        tcp.resume();
      },
      final(cb): void {
        tcp.end();
        cb();
      },
    });
    tcp.on('data', (chunk: Buffer) => {
      trickle = false;
      if (!wire.push(chunk)) tcp.pause();
    });
    tcp.on('end', () => wire.push(null));
    const sock = tls.connect({ socket: wire, ca: agentPem.cert, servername: 'test.example' });
    sock.on('error', () => undefined);
    await once(sock, 'secureConnect');
    const conn = await rig.conns.at(0);
    assert.ok(pieces > 100, `hello written in ${pieces} pieces`);
    assert.ok(conn.reads > 100, `agent read the hello in ${conn.reads} reads`);
    sock.write('PING\r\n');
    assert.equal((await readN(sock, 7)).toString(), '+PING\r\n');
    const probe = bytesOf(service.accepted.items[0] as ServiceConn);
    const parsed = parseClientHello(probe);
    assert.ok(parsed.kind === 'hello' && parsed.hello.recordsLength === probe.length, 'the probe got the whole hello');
    sock.end();
    const calls = await finished(conn);
    assert.deepEqual(calls, [
      ['opened', 'tls', rig.port],
      ['closed', 'tls', { bytesIn: 6, bytesOut: 7, reason: 'done' }],
    ]);
  });

  test('half-close through termination: the client ends after its request and still gets a 1 MB answer', LIMIT, async (t) => {
    const response = randomBytes(MiB);
    const request = 'GET /big HTTP/1.0\r\n\r\n';
    let seen = '';
    const service = await startService(
      t,
      'plain',
      plaintext(
        answerAtEof((got) => {
          seen = got.toString();
          return response;
        }),
      ),
    );
    const rig = await makeRig(t, { service });
    const c = await tlsClient(rig);
    const got = readAll(c.sock);
    c.sock.end(request);
    const body = await got;
    assert.equal(body.length, response.length);
    assert.equal(sha(body), sha(response));
    assert.equal(seen, request, 'the service saw the request, then EOF');
    assert.deepEqual(await finished(await rig.conns.at(0)), [
      ['opened', 'tls', rig.port],
      ['closed', 'tls', { bytesIn: request.length, bytesOut: response.length, reason: 'done' }],
    ]);
  });
});

describe('handleConnection, failures', () => {
  const invalid: [string, number[]][] = [
    // A record that carries a server_hello (type 2), not a client_hello.
    ['a handshake that is not a client_hello', [0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00]],
    ['a record length beyond 2^14 + 256', [0x16, 0x03, 0x01, 0xff, 0xff, 0x01]],
    ['a 16 MB client_hello', [0x16, 0x03, 0x01, 0x00, 0x10, 0x01, 0xff, 0xff, 0xff]],
  ];
  for (const [what, bytes] of invalid) {
    test(`invalid hello (${what}): client reset at once, nothing reaches the service`, LIMIT, async (t) => {
      const service = await startService(t, 'plain', echoLines);
      const rig = await makeRig(t, { service });
      const { sock, ended } = rawClient(rig);
      await once(sock, 'connect');
      const t0 = Date.now();
      sock.write(Buffer.from(bytes));
      assert.equal(await ended, 'ECONNRESET');
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 400, `closed after ${elapsed} ms`);
      assert.deepEqual(await finished(await rig.conns.at(0)), [
        ['handshakeFailed', 'hello-invalid'],
        ['closed', 'none', null],
      ]);
      // The upstream connection made at accept is torn down without a byte.
      const up = await within(service.accepted.at(0), 2000, 'upstream accepted');
      await within(up.closed, 2000, 'upstream closed');
      assert.equal(bytesOf(up).length, 0);
      assert.equal(service.accepted.items.length, 1);
    });
  }

  test('a stalled partial hello (0x16 only): closed after helloTimeoutMs, hello-timeout', LIMIT, async (t) => {
    const service = await startService(t, 'plain', echoLines);
    const rig = await makeRig(t, { service });
    const { sock, ended } = rawClient(rig);
    await once(sock, 'connect');
    const t0 = Date.now();
    sock.write(Buffer.from([0x16]));
    assert.equal(await ended, 'ECONNRESET');
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= OPTS.helloTimeoutMs - 20 && elapsed < OPTS.helloTimeoutMs + 400, `closed after ${elapsed} ms`);
    assert.deepEqual(await finished(await rig.conns.at(0)), [
      ['handshakeFailed', 'hello-timeout'],
      ['closed', 'none', null],
    ]);
    const up = await service.accepted.at(0);
    await within(up.closed, 2000, 'upstream closed');
    assert.equal(bytesOf(up).length, 0);
  });

  test('a broken handshake (garbage after the hello): handshake-error, the upstream torn down unused', LIMIT, async (t) => {
    const hello = await captureHello();
    const service = await startService(t, 'plain', plaintext(echoLines));
    const rig = await makeRig(t, { service });
    const { sock, ended } = rawClient(rig);
    sock.write(hello);
    const [first] = (await once(sock, 'data')) as [Buffer];
    assert.equal(first[0], 0x16, 'the agent answered with TLS');
    // A plaintext handshake record where the client's (encrypted) Finished belongs.
    sock.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x03, 0x00, 0x20]), randomBytes(0x20)]));
    await ended;
    assert.deepEqual(await finished(await rig.conns.at(0)), [
      ['handshakeFailed', 'handshake-error'],
      ['closed', 'none', null],
    ]);
    // The probe and the connection made for the session; the latter never got a byte.
    assert.equal(service.accepted.items.length, 2);
    const session = service.accepted.items[1] as ServiceConn;
    await within(session.closed, 2000, 'upstream closed');
    assert.equal(bytesOf(session).length, 0);
  });

  test('a scanner on TLS 1.2 (handshake done, then a reset): counted as a session without data', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    const rig = await makeRig(t, { service });
    const { sock } = await scannerClient(rig, 'TLSv1.2');
    sock.resetAndDestroy();
    assert.deepEqual(await finished(await rig.conns.at(0)), [
      ['opened', 'tls', rig.port],
      ['sessionWithoutData'],
      ['closed', 'tls', { bytesIn: 0, bytesOut: 0, reason: 'client-reset' }],
    ]);
  });

  for (const how of ['reset', 'FIN'] as const) {
    test(`a scanner on TLS 1.3 (its handshake done, then a ${how}): counted, as client-closed or as a session without data`, LIMIT, async (t) => {
      const service = await startService(t, 'plain', plaintext(echoLines));
      const rig = await makeRig(t, { service });
      const { sock, tlsSock } = await scannerClient(rig, 'TLSv1.3');
      if (how === 'reset') sock.resetAndDestroy();
      else tlsSock.destroy(); // a FIN with no close_notify
      const calls = await finished(await rig.conns.at(0));
      // Whether jfe read the client's Finished before the reset is a race the client wins or loses.
      const counted = calls.filter((c) => c[0] === 'sessionWithoutData' || (c[0] === 'handshakeFailed' && c[1] === 'client-closed'));
      assert.equal(counted.length, 1, JSON.stringify(calls));
      assert.ok(!calls.some((c) => c[0] === 'handshakeFailed' && c[1] !== 'client-closed'), JSON.stringify(calls));
    });
  }

  test('a TLS client that sends a byte, then resets: not a session without data', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    const rig = await makeRig(t, { service });
    const { sock, tlsSock } = await scannerClient(rig, 'TLSv1.3');
    tlsSock.write('PING\r\n');
    await readN(tlsSock, 7);
    sock.resetAndDestroy();
    const calls = await finished(await rig.conns.at(0));
    assert.deepEqual(calls.map((c) => c[0]), ['opened', 'closed']);
  });

  test('a corrupt record after the handshake: both sides closed at once, closed tls client-error', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    const rig = await makeRig(t, { service });
    // The first client pays for the probe, so the second is terminated without one.
    (await tlsClient(rig)).sock.destroy();
    const raw = net.connect({ host: HOST, port: rig.port });
    rig.sockets.push(raw);
    const ended = howEnded(raw);
    const c = tls.connect({ socket: raw, ca: agentPem.cert, servername: 'test.example' });
    c.on('error', () => undefined);
    await once(c, 'secureConnect');
    c.write('PING\r\n');
    assert.equal((await readN(c, 7)).toString(), '+PING\r\n');
    const t0 = Date.now();
    // Application data that no key decrypts: the agent's TLS layer must fail the connection.
    raw.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), randomBytes(0x40)]));
    await within(ended, 2000, 'client cut off');
    const session = service.accepted.items.at(-1) as ServiceConn;
    await within(session.closed, 2000, 'upstream closed');
    const elapsed = Date.now() - t0;
    assert.ok(elapsed < 1000, `closed after ${elapsed} ms, not at the idle timeout`);
    const calls = await finished(await rig.conns.at(1));
    assert.deepEqual(calls.at(-1), ['closed', 'tls', { bytesIn: 6, bytesOut: 7, reason: 'client-error' }]);
  });

  for (const when of ['right behind the hello', 'after the server\'s first flight'] as const) {
    test(`a client that sends FIN mid-handshake (${when}) is closed at once, not at the hello timeout`, LIMIT, async (t) => {
      const hello = await captureHello();
      const service = await startService(t, 'plain', plaintext(echoLines));
      const rig = await makeRig(t, { service, opts: { helloTimeoutMs: 3000 } });
      const { sock, ended } = rawClient(rig);
      await once(sock, 'connect');
      const t0 = Date.now();
      if (when === 'right behind the hello') {
        sock.end(hello);
      } else {
        sock.write(hello);
        const [first] = (await once(sock, 'data')) as [Buffer];
        assert.equal(first[0], 0x16, 'the agent answered with TLS');
        sock.end();
      }
      await ended;
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 1000, `closed after ${elapsed} ms`);
      const calls = await finished(await rig.conns.at(0));
      assert.deepEqual(calls, [['handshakeFailed', 'client-closed'], ['closed', 'none', null]], 'counted: a client that leaves mid-handshake');
      assert.equal(bytesOf(service.accepted.items[1] as ServiceConn).length, 0, 'no byte reached the service');
    });
  }

  test('destroy() while the close_notify of a terminated session is still being sent: every socket closes', LIMIT, async (t) => {
    // The service answers and half-closes: the relay ends the client side (close_notify, then FIN).
    const service = await startService(t, 'plain', (sock) => sock.once('data', () => sock.end('bye\r\n')));
    const rig = await makeRig(t, { service });
    rig.cache.set(HOST, rig.port, 'plain');
    const c = await tlsClient(rig);
    const conn = await rig.conns.at(0);
    const accepted = rig.sockets.find((s) => s.localPort === rig.port);
    assert.ok(accepted, "the agent's side of the client connection");
    const closed = once(accepted, 'close');
    c.sock.write('PING\r\n');
    assert.equal((await readAll(c.sock)).toString(), 'bye\r\n');
    // Right at the client's end: the agent's shutdown may not have completed yet (a drain's destroy() can come then).
    conn.handle?.destroy();
    await within(closed, 2000, "the agent's client socket closed");
    await finished(conn);
  });

  test('upstream refused: the client gets a reset, not a clean close; upstreamFailed refused', LIMIT, async (t) => {
    const probe = net.createServer();
    const deadPort = await listen(probe);
    await new Promise((r) => probe.close(r));
    const rig = await makeRig(t, { dialPort: deadPort });
    const { sock, ended } = rawClient(rig);
    assert.equal(await ended, 'ECONNRESET');
    assert.deepEqual(await finished(await rig.conns.at(0)), [
      ['upstreamFailed', 'refused'],
      ['closed', 'none', null],
    ]);
    assert.ok(sock.destroyed);
  });

  test('every connection of a busy rig finishes once: plain, TLS and failed side by side', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    const rig = await makeRig(t, { service });
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) {
      const { sock, saw } = plainClient(rig);
      sock.end(`P${i}\r\n`);
      work.push(readAll(sock), saw);
      work.push(
        tlsClient(rig).then(async (c) => {
          const got = readAll(c.sock);
          c.sock.end(`T${i}\r\n`);
          assert.equal((await got).toString(), `+T${i}\r\n`);
        }),
      );
      const bad = rawClient(rig);
      bad.sock.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00]));
      work.push(bad.ended.then((how) => assert.equal(how, 'ECONNRESET')));
    }
    await Promise.all(work);
    assert.equal(rig.conns.items.length, 15);
    await allFinished(rig);
    const kinds = rig.conns.items.map((c) => c.calls.find((x) => x[0] === 'closed')?.[1]).sort();
    assert.deepEqual(kinds, [...Array(5).fill('none'), ...Array(5).fill('plain'), ...Array(5).fill('tls')]);
  });
});

// ---------------------------------------------------------------------------------------
// In-band upgrades, with two toy protocols that exercise the wiring (the real
// dialogues have their own tests): the connection's side of the contract.

/** Reads one LF-terminated line from `sock` (after `pending`); null on close or abort. */
function toyLine(sock: net.Socket, pending: Buffer, signal: AbortSignal): Promise<{ line: string; rest: Buffer } | null> {
  return new Promise((resolve) => {
    let buf = pending;
    const settle = (r: { line: string; rest: Buffer } | null): void => {
      sock.off('data', onData);
      sock.off('close', onGone);
      signal.removeEventListener('abort', onGone);
      sock.pause();
      resolve(r);
    };
    const check = (): void => {
      const i = buf.indexOf(0x0a);
      if (i >= 0) settle({ line: buf.subarray(0, i + 1).toString('latin1'), rest: buf.subarray(i + 1) });
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      check();
    };
    const onGone = (): void => settle(null);
    sock.on('data', onData);
    sock.once('close', onGone);
    signal.addEventListener('abort', onGone);
    sock.resume();
    check();
  });
}

/** Client first: "UP\n" asks for TLS, answered "OK\n". */
const toyClientFirst: DialogueFactory = {
  protocol: 'postgres',
  firstSpeaker: 'client',
  defaultPorts: [],
  detectAnywhere: false,
  detect: (first) => {
    const want = Buffer.from('UP\n');
    if (first.length < want.length) return want.subarray(0, first.length).equals(first) ? 'need-more' : 'no';
    return first.subarray(0, want.length).equals(want) ? 'yes' : 'no';
  },
  create: (): Dialogue => ({
    protocol: 'postgres',
    run: (client, _upstream, first) => {
      client.write('OK\n');
      return Promise.resolve({ kind: 'tls', clientRest: first.subarray(3), upstreamRest: Buffer.alloc(0) });
    },
  }),
};

/** Server first ("220 …"): the client's STARTTLS gets "GO", PLAIN steps aside, BAD fails. */
function toyServerFirst(transform?: () => SessionTransform): DialogueFactory {
  return {
    protocol: 'smtp',
    firstSpeaker: 'server',
    defaultPorts: [],
    detectAnywhere: false,
    detect: (first) => (first.length < 3 ? 'need-more' : first.subarray(0, 3).toString() === '220' ? 'yes' : 'no'),
    create: (): Dialogue => ({
      protocol: 'smtp',
      run: async (client, _upstream, first, signal): Promise<UpgradeOutcome> => {
        client.write(first);
        const got = await toyLine(client, Buffer.alloc(0), signal);
        if (got === null) return { kind: 'failed', reason: 'aborted' };
        if (got.line === 'STARTTLS\r\n') {
          client.write('GO\r\n');
          return { kind: 'tls', clientRest: got.rest, upstreamRest: Buffer.alloc(0), ...(transform ? { transform: transform() } : {}) };
        }
        if (got.line.startsWith('PLAIN')) return { kind: 'passthrough', clientRest: Buffer.concat([Buffer.from(got.line), got.rest]), upstreamRest: Buffer.alloc(0) };
        return { kind: 'failed', reason: 'bad command' };
      },
    }),
  };
}

const bannerThenEcho: Handler = (sock) => {
  sock.write('220 hi\r\n');
  echoLines(sock);
};

/** Reads until `text` has arrived (and nothing past it). */
async function expectText(sock: net.Socket, text: string): Promise<void> {
  assert.equal((await readN(sock, text.length)).toString(), text);
}

function registryFor(factory: DialogueFactory): (port: number) => UpgradeRegistry {
  return (port) => new UpgradeRegistry(new Map([[port, factory]]), [factory]);
}

/**
 * A client of the agent that goes through `dialogue` in plaintext, then does its TLS
 * handshake with the agent on the same connection; resolves after the handshake.
 */
async function upgradedClient(rig: Rig, dialogue: (raw: net.Socket) => Promise<void>): Promise<tls.TLSSocket> {
  const raw = net.connect({ host: HOST, port: rig.port });
  rig.sockets.push(raw);
  await dialogue(raw);
  const c = tls.connect({ socket: raw, ca: agentPem.cert, servername: 'test.example' });
  await once(c, 'secureConnect');
  return c;
}

/** The toy server-first dialogue's way to TLS: the banner, STARTTLS, GO. */
async function starttls(raw: net.Socket): Promise<void> {
  await expectText(raw, '220 hi\r\n');
  raw.write('STARTTLS\r\n');
  await expectText(raw, 'GO\r\n');
}

describe('handleConnection, in-band upgrades', () => {
  test('client asks first: answered by the dialogue, TLS terminated here, the service sees only the session', LIMIT, async (t) => {
    const service = await startService(t, 'plain', echoLines);
    const rig = await makeRig(t, { service, upgrades: registryFor(toyClientFirst) });
    const c = await upgradedClient(rig, async (raw) => {
      // The request split across two writes: detection waits for the rest.
      raw.write('U');
      await delay(20);
      raw.write('P\n');
      await expectText(raw, 'OK\n');
    });
    c.write('PING\r\n');
    assert.equal((await readN(c, 7)).toString(), '+PING\r\n');
    const ended = readAll(c);
    c.end();
    await ended;
    const calls = await finished(await rig.conns.at(0));
    assert.deepEqual(calls, [
      ['opened', 'upgrade', rig.port, 'postgres'],
      ['closed', 'upgrade', { bytesIn: 6, bytesOut: 7, reason: 'done' }],
    ]);
    assert.equal(bytesOf(await service.accepted.at(0)).toString(), 'PING\r\n');
    assert.equal(service.accepted.items.length, 1, 'no probe: the dialogue said the service is plaintext');
  });

  test('server speaks first: its banner reaches the client, STARTTLS is answered here, then TLS to a plaintext session', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    const rig = await makeRig(t, { service, upgrades: registryFor(toyServerFirst()) });
    const c = await upgradedClient(rig, starttls);
    c.write('PING\r\n');
    assert.equal((await readN(c, 7)).toString(), '+PING\r\n');
    c.destroy();
    const calls = await finished(await rig.conns.at(0));
    assert.deepEqual(calls[0], ['opened', 'upgrade', rig.port, 'smtp']);
    assert.equal(bytesOf(await service.accepted.at(0)).toString(), 'PING\r\n', 'STARTTLS never reached the service');
  });

  test('a transform rewrites the first plaintext the client sends after the handshake', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    const prefix = (): SessionTransform => ({ clientData: (chunk) => ({ forward: Buffer.concat([Buffer.from('T:'), chunk]), done: true }) });
    const rig = await makeRig(t, { service, upgrades: registryFor(toyServerFirst(prefix)) });
    const c = await upgradedClient(rig, starttls);
    c.write('PING\r\n');
    assert.equal((await readN(c, 9)).toString(), '+T:PING\r\n');
    c.write('AGAIN\r\n');
    assert.equal((await readN(c, 8)).toString(), '+AGAIN\r\n', 'only the first data is transformed');
    c.destroy();
    await finished(await rig.conns.at(0));
  });

  test('a transform with upstreamData rewrites both ways until the service\'s answer ends it; an idle client then stays', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    // Like MySQL's sequence shift: the client side never says done; the service's answer ends the phase.
    const both = (): SessionTransform => ({
      // No bytes: the call at the phase's end, with nothing held back.
      clientData: (chunk) => ({ forward: chunk.length === 0 ? chunk : Buffer.concat([Buffer.from('C:'), chunk]), done: false }),
      upstreamData: (chunk) => ({ forward: Buffer.concat([Buffer.from('S:'), chunk]), done: chunk.includes('END') }),
    });
    const rig = await makeRig(t, { service, upgrades: registryFor(toyServerFirst(both)) });
    const c = await upgradedClient(rig, starttls);
    c.write('ONE\r\n');
    assert.equal((await readN(c, 10)).toString(), 'S:+C:ONE\r\n');
    c.write('END\r\n');
    assert.equal((await readN(c, 10)).toString(), 'S:+C:END\r\n');
    await delay(OPTS.helloTimeoutMs + 200);
    c.write('AFTER\r\n');
    assert.equal((await readN(c, 8)).toString(), '+AFTER\r\n', 'unchanged once done, and not closed while idle');
    c.destroy();
    const calls = await finished(await rig.conns.at(0));
    assert.deepEqual(calls[0], ['opened', 'upgrade', rig.port, 'smtp']);
  });

  // Found by the mysql-auth-shift fuzz target: MySQL's sequence shift holds back a client
  // packet header cut short, and when the service's OK ended the phase those bytes were lost.
  test('when the service\'s answer ends the phase, what the client\'s side held back goes on', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    // Forwards whole lines and holds a partial one, as the sequence shift holds a partial header.
    const lines = (): SessionTransform => {
      let held = Buffer.alloc(0);
      let over = false;
      return {
        clientData: (chunk) => {
          held = Buffer.concat([held, chunk]);
          const cut = over ? held.length : held.lastIndexOf('\n') + 1;
          const forward = held.subarray(0, cut);
          held = held.subarray(cut);
          return { forward, done: over };
        },
        upstreamData: (chunk) => {
          over = chunk.includes('ONE');
          return { forward: chunk, done: over };
        },
      };
    };
    const rig = await makeRig(t, { service, upgrades: registryFor(toyServerFirst(lines)) });
    const c = await upgradedClient(rig, starttls);
    c.write('ONE\r\nPART');
    assert.equal((await readN(c, 6)).toString(), '+ONE\r\n');
    c.write('IAL\r\n');
    assert.equal((await readN(c, 10)).toString(), '+PARTIAL\r\n', 'the held "PART" reached the service before the relay went on');
    c.destroy();
    await finished(await rig.conns.at(0));
  });

  test('the dialogue steps aside: everything is relayed unchanged as plaintext', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    const rig = await makeRig(t, { service, upgrades: registryFor(toyServerFirst()) });
    const { sock, saw } = plainClient(rig);
    await expectText(sock, '220 hi\r\n');
    sock.write('PLAIN one\r\nPLAIN two\r\n');
    assert.equal((await readN(sock, 24)).toString(), '+PLAIN one\r\n+PLAIN two\r\n');
    const ended = readAll(sock);
    sock.end();
    await ended;
    assert.equal(await saw, null);
    const calls = await finished(await rig.conns.at(0));
    assert.deepEqual(calls[0], ['opened', 'plain', rig.port]);
    assert.equal(bytesOf(await service.accepted.at(0)).toString(), 'PLAIN one\r\nPLAIN two\r\n');
  });

  test('a malformed request: both sides closed cleanly (FIN, not reset), upgrade-invalid', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    const rig = await makeRig(t, { service, upgrades: registryFor(toyServerFirst()) });
    const { sock, ended } = rawClient(rig);
    await expectText(sock, '220 hi\r\n');
    sock.write('BAD\r\n');
    assert.equal(await ended, 'EOF');
    assert.deepEqual(await finished(await rig.conns.at(0)), [
      ['handshakeFailed', 'upgrade-invalid'],
      ['closed', 'none', null],
    ]);
    const up = await service.accepted.at(0);
    assert.equal(await within(up.closed, 2000, 'upstream closed'), null, 'the service saw a clean close');
    assert.equal(bytesOf(up).length, 0);
  });

  test('a client that stalls in the dialogue: closed at upgradeTimeoutMs, upgrade-timeout', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    const rig = await makeRig(t, { service, upgrades: registryFor(toyServerFirst()), opts: { upgradeTimeoutMs: 300 } });
    const { sock, ended } = rawClient(rig);
    await expectText(sock, '220 hi\r\n');
    const t0 = Date.now();
    assert.equal(await ended, 'EOF');
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 250 && elapsed < 2000, `closed after ${elapsed} ms`);
    assert.deepEqual(await finished(await rig.conns.at(0)), [
      ['handshakeFailed', 'upgrade-timeout'],
      ['closed', 'none', null],
    ]);
  });

  test('no dialogue for the port: a banner service stays plain with no added wait', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    const rig = await makeRig(t, { service, upgrades: () => new UpgradeRegistry(new Map(), [toyServerFirst()]) });
    const { sock } = plainClient(rig);
    await expectText(sock, '220 hi\r\n');
    sock.write('STARTTLS\r\n');
    assert.equal((await readN(sock, 11)).toString(), '+STARTTLS\r\n', 'relayed to the service');
    sock.destroy();
    await finished(await rig.conns.at(0));
  });
});

describe('handleConnection, half-closed while sniffing, and passthrough counts', () => {
  test('a client that half-closes before its first byte, to a silent service: closed at the idle timeout, counted', LIMIT, async (t) => {
    // The service reads, never answers and never closes: only the idle timeout ends this.
    const service = await startService(t, 'plain', (sock) => sock.resume());
    const rig = await makeRig(t, { service, opts: { idleTimeoutMs: 300 } });
    const { sock } = plainClient(rig);
    sock.on('error', () => undefined);
    sock.resume();
    await once(sock, 'connect');
    sock.end();
    const calls = await finished(await rig.conns.at(0));
    assert.deepEqual(calls, [
      ['opened', 'plain', rig.port],
      ['closed', 'plain', { bytesIn: 0, bytesOut: 0, reason: 'idle' }],
    ]);
  });

  test('a client that sends, then half-closes before the agent decided: every byte counted both ways', LIMIT, async (t) => {
    const service = await startService(t, 'plain', answerAtEof((got) => `got ${got.length}\r\n`));
    const rig = await makeRig(t, { service });
    const { sock, saw } = plainClient(rig);
    const got = readAll(sock);
    // One byte that could start a hello: the agent waits for more, then sees the EOF.
    sock.end(Buffer.from([0x16]));
    assert.equal((await got).toString(), 'got 1\r\n');
    assert.equal(await saw, null);
    const conn = await rig.conns.at(0);
    assert.deepEqual(await finished(conn), [
      ['opened', 'plain', rig.port],
      ['closed', 'plain', { bytesIn: 1, bytesOut: 7, reason: 'done' }],
    ]);
    assert.deepEqual(bytesCounted(conn), { in: 1, out: 7 });
  });

  test('a service that half-closes before its first byte: the upload after it is counted', LIMIT, async (t) => {
    const service = await startService(t, 'plain', (sock) => {
      sock.end();
      sock.resume();
    });
    const rig = await makeRig(t, { service });
    const { sock, saw } = plainClient(rig);
    assert.equal((await readAll(sock)).length, 0);
    const upload = randomBytes(256 * 1024);
    upload[0] = 0x50; // plaintext whatever the random bytes say
    sock.end(upload);
    assert.equal(await saw, null);
    const conn = await rig.conns.at(0);
    assert.deepEqual(await finished(conn), [
      ['opened', 'plain', rig.port],
      ['closed', 'plain', { bytesIn: upload.length, bytesOut: 0, reason: 'done' }],
    ]);
    assert.deepEqual(bytesCounted(conn), { in: upload.length, out: 0 });
  });

  test('TLS passthrough counts every byte on the wire, the probed hello included', LIMIT, async (t) => {
    const service = await startService(t, 'tls', echoLines);
    const rig = await makeRig(t, { service });
    // The first connection is probed (its hello goes upstream before the relay), the second cached.
    for (const i of [0, 1]) {
      const raw = net.connect({ host: HOST, port: rig.port, allowHalfOpen: true });
      rig.sockets.push(raw);
      const c = tls.connect({ socket: raw, ca: servicePem.cert, servername: 'upstream.example' });
      c.on('error', () => undefined);
      await once(c, 'secureConnect');
      c.write('PING\r\n');
      assert.equal((await readN(c, 7)).toString(), '+PING\r\n');
      const ended = readAll(c);
      c.end();
      await ended;
      const conn = await rig.conns.at(i);
      const calls = await finished(conn);
      if (!raw.destroyed) await once(raw, 'close');
      const [name, kind, result] = calls.at(-1) as [string, string, RelayResult];
      assert.deepEqual([name, kind, result.reason], ['closed', 'passthrough', 'done']);
      assert.deepEqual(
        { in: result.bytesIn, out: result.bytesOut },
        { in: raw.bytesWritten, out: raw.bytesRead },
        `connection ${i}: the counts are the client's own TCP byte counts`,
      );
      assert.deepEqual(bytesCounted(conn), { in: raw.bytesWritten, out: raw.bytesRead });
    }
  });
});

describe('socketFromFd', () => {
  test('an accepted fd and a dialed fd: sockets readable and writable at once, half-open both ways, reads through reused-reads.ts', LIMIT, async (t) => {
    const accepted = new Sequence<net.Socket>();
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => accepted.push(s));
    const port = await listen(server);
    // The dialed side: connected by a socket Node never reads (as the core dials).
    const dialer = new net.Socket({ allowHalfOpen: true });
    dialer.pause();
    dialer.connect({ port, host: HOST });
    await once(dialer, 'connect');
    park(dialer);
    const acceptedRaw = await accepted.at(0);
    park(acceptedRaw);
    const a = socketFromFd(fdOf(acceptedRaw));
    const d = socketFromFd(fdOf(dialer));
    t.after(() => {
      server.close();
      a.destroy();
      d.destroy();
    });
    for (const s of [a, d]) {
      assert.ok(readsOf(s) !== undefined, 'reads through reused-reads.ts');
      assert.equal(s.allowHalfOpen, true);
      assert.equal(s.connecting, false);
    }
    assert.equal(a.remotePort, d.localPort);
    assert.equal(d.remotePort, port);
    // Written at once, no 'connect' awaited on either side.
    a.write('from the accepted side');
    d.write('from the dialed side');
    assert.equal((await readN(d, 22)).toString(), 'from the accepted side');
    assert.equal((await readN(a, 20)).toString(), 'from the dialed side');
    // Half-close: each side's FIN arrives as 'end', and the other direction still flows.
    const atA = readAll(a);
    d.end();
    assert.equal((await atA).length, 0);
    const atD = readAll(d);
    a.end('after the FIN');
    assert.equal((await atD).toString(), 'after the FIN');
  });
});

describe('adoptConnection: the Sniffer started from the core\'s sockets and the bytes it read', () => {
  /** The same scenario through handleConnection and through adoptConnection with `plan`: the same calls each way. */
  const WAYS: Array<[string, CorePlan | undefined]> = [['handleConnection', undefined]];

  test('plaintext, 8 of 12 bytes read by the core (the rest in the kernel, or already read by the new socket): every byte in order, events as handleConnection\'s', LIMIT, async (t) => {
    const adopted: Array<[string, CorePlan]> = [['adopted', { client: 8 }], ['adopted, the rest read by the socket first', { client: 8, handOverAfterMs: 30 }]];
    for (const [way, core] of [...WAYS, ...adopted]) {
      const service = await startService(t, 'plain', plaintext(echoLines));
      const rig = await makeRig(t, { service, ...(core ? { core } : {}) });
      const { sock, saw } = plainClient(rig);
      sock.write('PING hello\r\n');
      assert.equal((await readN(sock, 13)).toString(), '+PING hello\r\n', way);
      assert.equal(bytesOf(await service.accepted.at(0)).toString(), 'PING hello\r\n', way);
      const atClient = readAll(sock);
      sock.end();
      assert.equal((await atClient).length, 0);
      assert.equal(await saw, null);
      const conn = await rig.conns.at(0);
      assert.deepEqual(await finished(conn), [
        ['opened', 'plain', rig.port],
        ['closed', 'plain', { bytesIn: 12, bytesOut: 13, reason: 'done' }],
      ], way);
      assert.deepEqual(bytesCounted(conn), { in: 12, out: 13 }, way);
      if (core) {
        assert.equal(conn.adopted?.clientBytes.toString(), 'PING hel', 'the core read 8 bytes');
        assert.equal(conn.upstreamClosed, 1, 'onUpstreamClosed once');
      }
    }
  });

  test('a port handed over at accept: handleConnection on socketFromFd(the client fd) dials and relays as ever', LIMIT, async (t) => {
    const service = await startService(t, 'plain', plaintext(echoLines));
    const rig = await makeRig(t, { service, core: { dial: false } });
    const { sock, saw } = plainClient(rig);
    sock.write('PING\r\n');
    assert.equal((await readN(sock, 7)).toString(), '+PING\r\n');
    sock.end();
    assert.equal(await saw, null);
    assert.deepEqual(await finished(await rig.conns.at(0)), [
      ['opened', 'plain', rig.port],
      ['closed', 'plain', { bytesIn: 6, bytesOut: 7, reason: 'done' }],
    ]);
  });

  for (const client of ['hello', 3] as const) {
    const read = client === 'hello' ? 'the whole ClientHello' : 'only its first 3 bytes';
    test(`TLS termination with ${read} read by the core: probed, terminated, the core's upstream released once`, LIMIT, async (t) => {
      const service = await startService(t, 'plain', plaintext(echoLines));
      const rig = await makeRig(t, { service, core: { client } });
      const c = await tlsClient(rig);
      assert.equal(c.sock.getPeerX509Certificate()?.fingerprint256, new X509Certificate(agentPem.cert).fingerprint256);
      c.sock.write('PING\r\n');
      assert.equal((await readN(c.sock, 7)).toString(), '+PING\r\n');
      const conn = await rig.conns.at(0);
      // The probe went out on the core's connection; the session on one Node dialed.
      assert.equal(service.accepted.items.length, 2);
      const [probe, session] = service.accepted.items as [ServiceConn, ServiceConn];
      assert.equal(parseClientHello(bytesOf(probe)).kind, 'hello', 'the probe got the whole hello, the core\'s bytes first');
      assert.equal(bytesOf(session).toString(), 'PING\r\n');
      await probe.closed;
      await delay(20);
      assert.equal(conn.upstreamClosed, 1, 'the core\'s upstream, dropped after the probe: onUpstreamClosed once');
      const ended = readAll(c.sock);
      c.sock.end();
      await ended;
      assert.deepEqual(await finished(conn), [
        ['opened', 'tls', rig.port],
        ['closed', 'tls', { bytesIn: 6, bytesOut: 7, reason: 'done' }],
      ]);
      assert.equal(conn.upstreamClosed, 1);
      if (client === 3) assert.equal(conn.adopted?.clientBytes.length, 3);
    });

    test(`TLS termination to a service cached plaintext with ${read} read: the core's upstream carries the session`, LIMIT, async (t) => {
      const service = await startService(t, 'plain', plaintext(echoLines));
      const rig = await makeRig(t, { service, core: { client } });
      rig.cache.set(HOST, rig.port, 'plain');
      const c = await tlsClient(rig);
      c.sock.write('PING\r\n');
      assert.equal((await readN(c.sock, 7)).toString(), '+PING\r\n');
      assert.equal(service.accepted.items.length, 1, 'no probe, no dial of its own');
      const conn = await rig.conns.at(0);
      assert.equal(conn.upstreamClosed, 0, 'the session still holds it');
      c.sock.end();
      assert.deepEqual(await finished(conn), [
        ['opened', 'tls', rig.port],
        ['closed', 'tls', { bytesIn: 6, bytesOut: 7, reason: 'done' }],
      ]);
      assert.equal(conn.upstreamClosed, 1);
    });
  }

  test('TLS passthrough with 3 bytes of the hello read: the service\'s own certificate, every byte on the wire counted', LIMIT, async (t) => {
    const service = await startService(t, 'tls', echoLines);
    const rig = await makeRig(t, { service, core: { client: 3 } });
    const raw = net.connect({ host: HOST, port: rig.port, allowHalfOpen: true });
    rig.sockets.push(raw);
    const c = tls.connect({ socket: raw, ca: servicePem.cert, servername: 'upstream.example' });
    c.on('error', () => undefined);
    await once(c, 'secureConnect');
    assert.equal(c.getPeerX509Certificate()?.fingerprint256, new X509Certificate(servicePem.cert).fingerprint256);
    c.write('PING\r\n');
    assert.equal((await readN(c, 7)).toString(), '+PING\r\n');
    const ended = readAll(c);
    c.end();
    await ended;
    const conn = await rig.conns.at(0);
    const calls = await finished(conn);
    if (!raw.destroyed) await once(raw, 'close');
    const [name, kind, result] = calls.at(-1) as [string, string, RelayResult];
    assert.deepEqual([name, kind, result.reason], ['closed', 'passthrough', 'done']);
    assert.deepEqual({ in: result.bytesIn, out: result.bytesOut }, { in: raw.bytesWritten, out: raw.bytesRead });
    assert.equal(conn.upstreamClosed, 1);
  });

  test('a service that spoke first, its banner read by the core: the client gets it first, then the dialogue goes on; events as handleConnection\'s', LIMIT, async (t) => {
    const banner = '220 smtp.test ESMTP ready\r\n';
    for (const [way, core] of [...WAYS, ['adopted', { service: banner.length }] as [string, CorePlan]]) {
      const service = await startService(t, 'plain', (sock) => {
        sock.write(banner);
        sock.on('data', (chunk: Buffer) => {
          if (chunk.toString() === 'QUIT\r\n') sock.end('221 bye\r\n');
        });
      });
      const rig = await makeRig(t, { service, ...(core ? { core } : {}) });
      const { sock, saw } = plainClient(rig);
      assert.equal((await readN(sock, banner.length)).toString(), banner, way);
      const rest = readAll(sock);
      sock.write('QUIT\r\n');
      assert.equal((await rest).toString(), '221 bye\r\n', way);
      sock.end();
      assert.equal(await saw, null);
      const conn = await rig.conns.at(0);
      assert.deepEqual(await finished(conn), [
        ['opened', 'plain', rig.port],
        ['closed', 'plain', { bytesIn: 6, bytesOut: banner.length + 9, reason: 'done' }],
      ], way);
      if (core) {
        assert.equal(conn.adopted?.serviceBytes.toString(), banner);
        assert.equal(conn.upstreamClosed, 1);
      }
    }
  });

  test('the banner and the client\'s first bytes both read by the core: the banner first, the client\'s bytes after it, in order', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    const rig = await makeRig(t, { service, core: { service: 8, client: 6 } });
    const { sock, saw } = plainClient(rig);
    sock.write('PING\r\n');
    assert.equal((await readN(sock, 8 + 7)).toString(), '220 hi\r\n+PING\r\n');
    sock.end();
    assert.equal(await saw, null);
    const conn = await rig.conns.at(0);
    assert.deepEqual(await finished(conn), [
      ['opened', 'plain', rig.port],
      ['closed', 'plain', { bytesIn: 6, bytesOut: 15, reason: 'done' }],
    ]);
    assert.equal(bytesOf(await service.accepted.at(0)).toString(), 'PING\r\n');
    assert.equal(conn.upstreamClosed, 1);
  });

  test('a server-first upgrade with the banner read by the core: STARTTLS answered here, TLS to a plaintext session', LIMIT, async (t) => {
    const service = await startService(t, 'plain', bannerThenEcho);
    const rig = await makeRig(t, { service, upgrades: registryFor(toyServerFirst()), core: { service: 8 } });
    const c = await upgradedClient(rig, starttls);
    c.write('PING\r\n');
    assert.equal((await readN(c, 7)).toString(), '+PING\r\n');
    c.destroy();
    const conn = await rig.conns.at(0);
    const calls = await finished(conn);
    assert.deepEqual(calls[0], ['opened', 'upgrade', rig.port, 'smtp']);
    assert.equal(bytesOf(await service.accepted.at(0)).toString(), 'PING\r\n', 'STARTTLS never reached the service');
    assert.equal(conn.upstreamClosed, 1);
  });

  for (const [what, payload, answer] of [
    ['bytes, then its FIN', Buffer.from('PING\r\n'), 'got 6\r\n'],
    ['its FIN and nothing else', Buffer.alloc(0), 'got 0\r\n'],
    ['one byte that could start a hello, then its FIN', Buffer.from([0x16]), 'got 1\r\n'],
  ] as const) {
    test(`the core read from the client ${what}: the service gets them and the EOF, its answer arrives; events as handleConnection's`, LIMIT, async (t) => {
      for (const [way, core] of [...WAYS, ['adopted', { client: payload.length, clientEof: true }] as [string, CorePlan]]) {
        const service = await startService(t, 'plain', answerAtEof((got) => `got ${got.length}\r\n`));
        const rig = await makeRig(t, { service, ...(core ? { core } : {}) });
        const { sock, saw } = plainClient(rig);
        const got = readAll(sock);
        sock.end(payload);
        assert.equal((await got).toString(), answer, way);
        assert.equal(await saw, null);
        const conn = await rig.conns.at(0);
        assert.deepEqual(await finished(conn), [
          ['opened', 'plain', rig.port],
          ['closed', 'plain', { bytesIn: payload.length, bytesOut: answer.length, reason: 'done' }],
        ], way);
        assert.deepEqual(bytesCounted(conn), { in: payload.length, out: answer.length }, way);
        assert.equal(bytesOf(await service.accepted.at(0)).toString('hex'), payload.toString('hex'), way);
        if (core) {
          assert.equal(conn.adopted?.clientEof, true, 'the core saw the FIN');
          assert.equal(conn.upstreamClosed, 1);
        }
      }
    });
  }

  test('an invalid hello read by the core: hello-invalid, both reset, onUpstreamClosed once', LIMIT, async (t) => {
    const service = await startService(t, 'plain', echoLines);
    const rig = await makeRig(t, { service, core: { client: 5 } });
    const { sock, ended } = rawClient(rig);
    sock.write(Buffer.from('1603010000', 'hex'));
    assert.equal(await ended, 'ECONNRESET');
    const conn = await rig.conns.at(0);
    assert.deepEqual(await finished(conn), [
      ['handshakeFailed', 'hello-invalid'],
      ['closed', 'none', null],
    ]);
    assert.equal(conn.upstreamClosed, 1);
  });
});

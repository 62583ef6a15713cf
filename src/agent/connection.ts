// SPDX-License-Identifier: MIT
// The life of one steered connection: dial upstream at once, read the first
// bytes of whichever side speaks first, then relay plaintext, pass TLS
// through to a service that terminates it itself, or terminate TLS here.
import net from 'node:net';
import tls from 'node:tls';
import type { CertSource } from '../certs/cert-source';
import type { Logger } from '../log';
import { ACME_TLS_ALPN, type ChallengeResponder, HTTP01_PORT, TLS_ALPN01_PORT, http01Response, matchHttp01 } from './acme-challenges';
import { DEFAULT_MAX_HELLO_BYTES, type ClientHello, parseClientHello } from './client-hello';
import { type RelayResult, relay } from './relay';
import { resetSocket } from './reset-socket';
import { socketWithReusedReads } from './reused-reads';
import { SENT_PREFIX_BYTES, tlsAnswer } from './tls-answer';
import type { TlsServiceCache } from './tls-services';
import { NO_UPGRADES, type UpgradeRegistry } from './upgrades/registry';
import type { DialogueFactory, SessionTransform, UpgradeProtocol } from './upgrades/upgrade';
import type { Tracked } from './idle-tracker';
import type { Dial, Endpoint } from './upstream';

/** What startRelay() needs beyond the two sockets, when it needs it. */
interface RelayStart {
  /** For kind 'upgrade'. */
  protocol?: UpgradeProtocol;
  /** Bytes this connection already wrote itself before the relay, counted as relayed. */
  sentIn?: number;
  sentOut?: number;
  /** See the client's first bytes and the service's first answer (RelayOptions.onFirstIn, onFirstOut). */
  onFirstIn?: (chunk: Buffer) => void;
  onFirstOut?: (chunk: Buffer) => void;
}

/** tls: terminated here; passthrough: TLS of the service's own; upgrade: terminated after an in-band request. */
export type ConnectionKind = 'tls' | 'plain' | 'passthrough' | 'upgrade';

/** Closed sets: these become metric labels. */
export type HandshakeFailure =
  | 'hello-invalid'
  | 'hello-timeout'
  | 'handshake-timeout'
  | 'handshake-error'
  | 'no-certificate'
  | 'upgrade-invalid'
  | 'upgrade-timeout'
  /** The client closed or reset during the handshake (in TLS 1.3 this includes a client that sent its Finished and left at once). */
  | 'client-closed';
export type UpstreamFailure = 'refused' | 'reset' | 'timeout' | 'unreachable' | 'source-port' | 'other';

/** What the connection reports; metrics/ implements it. Every hook must be cheap. */
export interface ConnectionEvents {
  /** protocol: set for kind 'upgrade' only. */
  opened(kind: ConnectionKind, port: number, protocol?: UpgradeProtocol): void;
  bytes(direction: 'in' | 'out', n: number): void;
  /** A TLS handshake terminated here completed: seconds from the complete ClientHello (certificate wait included). */
  handshake?(seconds: number): void;
  handshakeFailed(reason: HandshakeFailure): void;
  /**
   * A TLS session terminated here completed its handshake, and the client
   * closed or reset it before sending one byte of application data (what a
   * scanner or a TLS health check does).
   */
  sessionWithoutData(): void;
  upstreamFailed(reason: UpstreamFailure): void;
  closed(kind: ConnectionKind | 'none', result: RelayResult | null): void;
}

export const NO_EVENTS: ConnectionEvents = {
  opened: () => undefined,
  bytes: () => undefined,
  handshakeFailed: () => undefined,
  sessionWithoutData: () => undefined,
  upstreamFailed: () => undefined,
  closed: () => undefined,
};

export interface ConnectionOptions {
  /** No byte either way for this long: the connection is closed. Also bounds a silent sniff. */
  idleTimeoutMs: number;
  /** From the first byte of a ClientHello to the end of the TLS handshake. */
  helloTimeoutMs: number;
  maxHelloBytes?: number;
  /** How long a service may take to answer a ClientHello before it is taken for plaintext. */
  probeTimeoutMs: number;
  /** Bounds an in-band upgrade dialogue, from the first byte to the client's request for TLS. */
  upgradeTimeoutMs?: number;
}

const DEFAULT_UPGRADE_TIMEOUT_MS = 30_000;
/** How a relay ends when the client closed it (FIN, reset or a TLS error of its own): not idle, not the service. */
const CLIENT_ENDINGS: ReadonlySet<RelayResult['reason']> = new Set(['done', 'client-reset', 'client-error']);
/** Plaintext a SessionTransform may see before it must be done. */
const MAX_TRANSFORM_BYTES = 64 * 1024;
/**
 * ALPN protocols offered to a client when TLS is terminated here: only those
 * whose plaintext form the service speaks unchanged (never h2 to an HTTP/1.1
 * service). PostgreSQL 17's direct TLS requires "postgresql".
 */
const PLAINTEXT_SAFE_ALPN = ['http/1.1', 'postgresql'];

export interface ConnectionDeps {
  dial: Dial;
  certs: CertSource;
  tlsServices: TlsServiceCache;
  /** In-band upgrades (PostgreSQL SSLRequest, STARTTLS, …); none when absent. */
  upgrades?: UpgradeRegistry;
  /** ACME validation requests answered here (http-01 on 80, tls-alpn-01 on 443); none when absent. */
  challenges?: ChallengeResponder;
  events: ConnectionEvents;
  log: Logger;
  opts: ConnectionOptions;
}

/** The metric label of a failed connection to the service, by its error code. */
export function upstreamFailure(err: { code?: string | undefined }): UpstreamFailure {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return 'unreachable';
    default:
      return 'other';
  }
}

/** Closes with a TCP reset (SO_LINGER 0), as the host does for a refused or broken connection. */
function reset(sock: net.Socket): void {
  resetSocket(sock);
}

const ignore = (): void => undefined;
const EMPTY = Buffer.alloc(0);

/** A connection in progress, as the agent tracks it for drain and shutdown. */
export interface ConnectionHandle extends Tracked {
  /** Resets both sides now. */
  destroy(): void;
}

/** A connection that ended before it began. */
const GONE: ConnectionHandle = { destroy: ignore, activity: () => 0, openedAt: 0 };

/**
 * Handles one accepted connection. Never throws; every error closes and is
 * counted. onDone is called exactly once, when both sides are closed.
 */
export function handleConnection(client: net.Socket, deps: ConnectionDeps, onDone: () => void = ignore): ConnectionHandle {
  const family = client.remoteFamily === 'IPv6' ? 6 : 4;
  const { remoteAddress, remotePort, localAddress, localPort } = client;
  if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined) {
    client.destroy(); // already gone
    onDone();
    return GONE;
  }
  client.on('error', ignore);
  const src: Endpoint = { family, address: remoteAddress, port: remotePort };
  const dst: Endpoint = { family, address: localAddress, port: localPort };
  let upstream: net.Socket;
  try {
    upstream = deps.dial(src, dst);
  } catch (err) {
    deps.log.warn({ err, port: dst.port }, 'upstream socket failed');
    deps.events.upstreamFailed('source-port');
    deps.events.closed('none', null);
    reset(client);
    onDone();
    return GONE;
  }
  const sniffer = new Sniffer(client, upstream, src, dst, deps, onDone);
  sniffer.start();
  return sniffer;
}

/**
 * A connection the native core accepted, dialed and read the first bytes of,
 * handed over for Node to decide (first-bytes.ts said takeOver). Both sockets
 * are connected (socketFromFd): no 'connect' event comes.
 */
export interface AdoptedConnection {
  client: net.Socket;
  upstream: net.Socket;
  src: Endpoint;
  dst: Endpoint;
  /** What the core read from the client, in order; seen here first, as if just read. */
  clientBytes: Buffer;
  /** What the core read from the service: a service that spoke first. */
  serviceBytes: Buffer;
  /** The core read the client's FIN after clientBytes. */
  clientEof: boolean;
  /**
   * The core's upstream socket closed (the caller removes its bypass entry). Called
   * once, also when Node drops that connection for a fresh one of its own (a probe
   * that found plaintext), whose entry its own dialer keeps.
   */
  onUpstreamClosed: () => void;
}

/**
 * handleConnection() for a connection the core already dialed: the same
 * Sniffer, fed the bytes the core read. Never throws; onDone is called
 * exactly once, when both sides are closed, and every event is reported as
 * handleConnection reports it.
 */
export function adoptConnection(a: AdoptedConnection, deps: ConnectionDeps, onDone: () => void = ignore): ConnectionHandle {
  const { client, upstream } = a;
  client.on('error', ignore);
  if (upstream.closed) a.onUpstreamClosed();
  else upstream.once('close', a.onUpstreamClosed);
  const sniffer = new Sniffer(client, upstream, a.src, a.dst, deps, onDone);
  sniffer.adopt(a.clientBytes, a.serviceBytes, a.clientEof);
  return sniffer;
}

/**
 * A socket over a connected TCP fd the native core hands over (either side:
 * accepted from a client, or dialed to a service): readable and writable at
 * once, half-open allowed (the relay carries each FIN on), no Nagle delay,
 * and its reads through reused-reads.ts as the agent's other sockets. The
 * socket owns the fd from now on: destroying it closes the fd. The core must
 * have stopped watching the fd first. Throws if the fd is not a stream socket
 * (the fd is then still the caller's to close).
 */
export function socketFromFd(fd: number): net.Socket {
  return socketWithReusedReads({ fd, readable: true, writable: true, allowHalfOpen: true, noDelay: true });
}

/**
 * Reads the first bytes of either side and decides. Holds everything it read
 * and hands it on untouched (unshift), so no byte is lost or reordered.
 */
class Sniffer implements ConnectionHandle {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** What a server that speaks first sent while an upgrade opening is still undecided. */
  private upChunks: Buffer[] = [];
  private upBuffered = 0;
  private upTimer: NodeJS.Timeout | undefined;
  private readonly upgrades: UpgradeRegistry;
  private decided = false;
  /** The service refused while a challenge may still come (see mayBeChallenge). */
  private upstreamRefused = false;
  private ended = false;
  private helloTimer: NodeJS.Timeout | undefined;
  private readonly maxHelloBytes: number;
  /** The outermost client-side socket: the TLSSocket once TLS is terminated. */
  private outer: net.Socket;
  readonly openedAt = Date.now();
  /** Bytes the service sent while sniffing, and bytes relayed (plaintext) once relaying. */
  private upSeen = 0;
  private relayed = 0;

  constructor(
    private readonly client: net.Socket,
    private upstream: net.Socket,
    private readonly src: Endpoint,
    private readonly dst: Endpoint,
    private readonly deps: ConnectionDeps,
    private readonly onDone: () => void,
  ) {
    this.maxHelloBytes = deps.opts.maxHelloBytes ?? DEFAULT_MAX_HELLO_BYTES;
    this.upgrades = deps.upgrades ?? NO_UPGRADES;
    this.outer = client;
  }

  /** Grows with every byte read either way (sniffed or relayed): what the idle tracker watches. */
  activity(): number {
    return this.buffered + this.upSeen + this.relayed;
  }

  destroy(): void {
    // The outermost socket: resetting a TLSSocket reaches the TCP socket under it and
    // waits out the shutdown of a close_notify still in flight. Reset directly, the TCP
    // socket's handle would be dropped unclosed then (reset-socket.ts): it never emits
    // 'close', and the process spins at exit waiting for it.
    reset(this.outer);
    reset(this.upstream);
  }

  /** The one way a connection ends: counted once, reported once. */
  private end(kind: ConnectionKind | 'none', result: RelayResult | null): void {
    if (this.ended) return;
    this.ended = true;
    this.deps.events.closed(kind, result);
    this.onDone();
  }

  start(): void {
    const { client, upstream } = this;
    client.on('data', this.onClientData);
    client.on('end', this.onClientEnd);
    client.on('close', this.onClose);
    client.setTimeout(this.deps.opts.idleTimeoutMs, this.onIdle);
    upstream.on('data', this.onUpstreamData);
    upstream.on('end', this.onUpstreamEnd);
    upstream.on('error', this.onUpstreamError);
    upstream.on('close', this.onClose);
  }

  /**
   * Starts where the core's wait for the first bytes ended: what it read is
   * seen as if read here, in the order adoptConnection documents and
   * first-bytes.ts assumes. Bytes the sockets read after that are emitted
   * asynchronously, so they come behind.
   */
  adopt(clientBytes: Buffer, serviceBytes: Buffer, clientEof: boolean): void {
    this.start();
    if (serviceBytes.length > 0) {
      // The service spoke first. The client's bytes wait in the sniff buffer, as if
      // read just after it: whatever the service's opening decides, they go with it.
      if (clientBytes.length > 0) {
        this.chunks.push(clientBytes);
        this.buffered += clientBytes.length;
      }
      this.onUpstreamData(serviceBytes);
      // An undecided server opening, and the client spoke: plaintext, as onClientData decides.
      if (!this.decided && clientBytes.length > 0) this.plain(this.finish(), this.takeUpstream());
    } else if (clientBytes.length > 0) {
      this.onClientData(clientBytes);
    }
    // The socket reads the FIN again (a TCP EOF stays readable), but too late: the Sniffer
    // must see it now, in order, as it would have.
    if (clientEof && !this.decided) this.onClientEnd();
  }

  /** Stops sniffing: listeners off, both sides paused until the next stage reads them. */
  private finish(): Buffer {
    this.decided = true;
    if (this.helloTimer) clearTimeout(this.helloTimer);
    if (this.upTimer) clearTimeout(this.upTimer);
    const { client, upstream } = this;
    client.pause();
    upstream.pause();
    client.off('data', this.onClientData);
    client.off('end', this.onClientEnd);
    client.off('close', this.onClose);
    client.setTimeout(0);
    upstream.off('data', this.onUpstreamData);
    upstream.off('end', this.onUpstreamEnd);
    upstream.off('error', this.onUpstreamError);
    upstream.off('close', this.onClose);
    upstream.on('error', ignore);
    const data = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    return data;
  }

  /** The server's bytes read while sniffing (empty when it has not spoken). */
  private takeUpstream(): Buffer {
    const data = this.upChunks.length === 1 ? (this.upChunks[0] as Buffer) : Buffer.concat(this.upChunks, this.upBuffered);
    this.upChunks = [];
    this.upBuffered = 0;
    return data;
  }

  private fail(): void {
    this.finish();
    reset(this.client);
    reset(this.upstream);
    this.end('none', null);
  }

  private readonly onClientData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.upBuffered > 0) {
      // The server already spoke: whatever the client says, this is its protocol's business.
      const clientBytes = this.finish();
      this.plain(clientBytes, this.takeUpstream());
      return;
    }
    const all = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.buffered);
    const r = parseClientHello(all, this.maxHelloBytes);
    switch (r.kind) {
      case 'need-more':
        this.helloTimer ??= setTimeout(this.onHelloTimeout, this.deps.opts.helloTimeoutMs);
        return;
      case 'not-tls': {
        if (this.deps.challenges && this.dst.port === HTTP01_PORT && this.http01(all)) return;
        if (this.upstreamRefused) return this.refuseNoService();
        const m = this.upgrades.match('client', this.dst.port, all);
        if (m === 'need-more') {
          // An undecided upgrade opening that stalls is plaintext, not an error.
          this.helloTimer ??= setTimeout(() => this.plain(this.finish(), null), this.deps.opts.helloTimeoutMs);
          return;
        }
        const data = this.finish();
        if (m === null) this.plain(data, null);
        else void this.upgrade(m, data);
        return;
      }
      case 'invalid':
        if (this.deps.log.isLevelEnabled('debug')) this.deps.log.debug({ reason: r.reason, port: this.dst.port }, 'invalid client hello');
        this.deps.events.handshakeFailed('hello-invalid');
        this.fail();
        return;
      case 'hello': {
        const challenge = this.tlsAlpn01Context(r.hello);
        if (challenge) this.answerTlsAlpn01(this.finish(), challenge);
        else if (this.upstreamRefused) this.refuseNoService();
        else void this.tls(this.finish(), r.hello);
        return;
      }
    }
  };

  /** True when the bytes are (or may still become) an http-01 validation request that jfe answers. */
  private http01(all: Buffer): boolean {
    const m = matchHttp01(all);
    if (m.kind === 'need-more') {
      this.helloTimer ??= setTimeout(() => this.plain(this.finish(), null), this.deps.opts.helloTimeoutMs);
      return true;
    }
    const keyAuthorization = m.kind === 'token' ? (this.deps.challenges?.http01(m.token) ?? null) : null;
    if (keyAuthorization === null) return false; // not ours: the service gets every byte
    this.finish();
    reset(this.upstream);
    this.closeAfter(this.client);
    this.client.end(http01Response(keyAuthorization));
    this.client.resume();
    return true;
  }

  private tlsAlpn01Context(hello: ClientHello): tls.SecureContext | null {
    const { challenges } = this.deps;
    if (!challenges || this.dst.port !== TLS_ALPN01_PORT || !hello.alpn.includes(ACME_TLS_ALPN) || hello.sni === null) return null;
    return challenges.tlsAlpn01(hello.sni);
  }

  /** RFC 8737: the challenge certificate, ALPN acme-tls/1, and a close once the handshake is done. */
  private answerTlsAlpn01(hello: Buffer, context: tls.SecureContext): void {
    reset(this.upstream);
    this.client.unshift(hello);
    const secure = new tls.TLSSocket(this.client, { isServer: true, secureContext: context, ALPNProtocols: [ACME_TLS_ALPN] });
    this.outer = secure;
    secure.on('error', () => reset(this.client));
    secure.once('secure', () => secure.end());
    secure.resume();
    this.closeAfter(secure);
  }

  /** A challenge answer: bounded in time, reported once when the client side closes. */
  private closeAfter(sock: net.Socket): void {
    const timer = setTimeout(() => this.destroy(), this.deps.opts.helloTimeoutMs);
    sock.once('close', () => {
      clearTimeout(timer);
      this.end('none', null);
    });
  }

  private readonly onHelloTimeout = (): void => {
    this.deps.events.handshakeFailed('hello-timeout');
    this.fail();
  };

  private readonly onIdle = (): void => {
    this.fail();
  };

  /** The service spoke first (SMTP, SSH, MySQL, …): plaintext, or an upgrade dialogue. */
  private readonly onUpstreamData = (chunk: Buffer): void => {
    this.upSeen += chunk.length;
    this.upChunks.push(chunk);
    this.upBuffered += chunk.length;
    const all = this.upChunks.length === 1 ? chunk : Buffer.concat(this.upChunks, this.upBuffered);
    const m = this.upgrades.match('server', this.dst.port, all);
    if (m === 'need-more') {
      this.upTimer ??= setTimeout(() => {
        const clientBytes = this.finish();
        this.plain(clientBytes, this.takeUpstream());
      }, this.deps.opts.helloTimeoutMs);
      return;
    }
    const clientBytes = this.finish();
    const upstreamBytes = this.takeUpstream();
    if (m === null) {
      this.plain(clientBytes, upstreamBytes);
      return;
    }
    if (clientBytes.length > 0) this.client.unshift(clientBytes);
    void this.upgrade(m, upstreamBytes);
  };

  /**
   * A side closed before anyone decided: plaintext, with that direction already ended.
   * The relay passes the EOF on (it sees readableEnded) and keeps its idle timeout and
   * byte counts for the direction left.
   */
  private readonly onClientEnd = (): void => {
    const data = this.finish();
    const said = this.takeUpstream();
    if (said.length > 0) this.upstream.unshift(said);
    // Too late to unshift into the ended client: written here, counted by startRelay.
    if (data.length > 0) this.upstream.write(data);
    this.startRelay('plain', this.client, this.upstream, { sentIn: data.length });
  };

  private readonly onUpstreamEnd = (): void => {
    const data = this.finish();
    const said = this.takeUpstream();
    if (data.length > 0) this.client.unshift(data);
    // Too late to unshift into the ended upstream: written here, counted by startRelay.
    if (said.length > 0) this.client.write(said);
    this.startRelay('plain', this.client, this.upstream, { sentOut: said.length });
  };

  private readonly onUpstreamError = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'ECONNREFUSED' && this.mayBeChallenge()) {
      // No service on 80/443, steered while a challenge is pending: the client may be the CA.
      this.upstreamRefused = true;
      this.upstream.off('close', this.onClose);
      return;
    }
    this.deps.events.upstreamFailed(upstreamFailure(err));
    this.fail();
  };

  private mayBeChallenge(): boolean {
    return this.deps.challenges !== undefined && !this.decided && (this.dst.port === HTTP01_PORT || this.dst.port === TLS_ALPN01_PORT);
  }

  /** Not a challenge after all, and no service to take it: refused, as the closed port would. */
  private refuseNoService(): void {
    this.deps.events.upstreamFailed('refused');
    this.fail();
  }

  private readonly onClose = (): void => {
    if (!this.decided) this.fail();
  };

  private plain(clientBytes: Buffer, upstreamBytes: Buffer | null): void {
    if (clientBytes.length > 0) this.client.unshift(clientBytes);
    if (upstreamBytes) this.upstream.unshift(upstreamBytes);
    this.startRelay('plain', this.client, this.upstream);
  }

  private async tls(hello: Buffer, parsed: ClientHello): Promise<void> {
    const kind = this.deps.tlsServices.get(this.dst.address, this.dst.port);
    if (kind === 'tls') {
      this.client.unshift(hello);
      this.startRelay('passthrough', this.client, this.upstream);
      return;
    }
    if (kind === undefined && (await this.probe(hello))) return;
    await this.terminate(hello, parsed);
  }

  /**
   * Sends the client's own hello to the service. A service that answers with
   * TLS (a ServerHello or an alert, see tls-answer.ts) keeps the connection,
   * untouched (returns true). Any other answer, an echo, a TLS answer cut short
   * by a close or by probeTimeoutMs, or silence means plaintext: that upstream
   * connection is dropped and a fresh one made for the terminated session.
   */
  private probe(hello: Buffer): Promise<boolean> {
    const { upstream, client, dst, deps } = this;
    return new Promise((resolve) => {
      let done = false;
      let answer: Buffer = EMPTY;
      /** tlsAnswerBytes: the service's bytes when they are a TLS answer, else null. */
      const settle = (tlsAnswerBytes: Buffer | null, err: NodeJS.ErrnoException | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        upstream.off('data', onData);
        upstream.off('end', onEnd);
        upstream.off('error', onError);
        upstream.pause();
        if (err?.code === 'ECONNREFUSED') {
          deps.events.upstreamFailed('refused');
          reset(client);
          this.end('none', null);
          resolve(true);
          return;
        }
        if (tlsAnswerBytes !== null) {
          deps.tlsServices.set(dst.address, dst.port, 'tls');
          upstream.unshift(tlsAnswerBytes);
          // The hello went upstream here, before the relay: count it.
          this.startRelay('passthrough', client, upstream, { sentIn: hello.length });
          resolve(true);
          return;
        }
        deps.tlsServices.set(dst.address, dst.port, 'plain');
        reset(upstream);
        try {
          this.upstream = deps.dial(this.src, dst);
          this.upstream.on('error', ignore);
        } catch {
          deps.events.upstreamFailed('source-port');
          reset(client);
          this.end('none', null);
          resolve(true);
          return;
        }
        resolve(false);
      };
      // TCP may split the answer: a prefix that can still become a TLS answer waits for more.
      const onData = (chunk: Buffer): void => {
        answer = answer.length === 0 ? chunk : Buffer.concat([answer, chunk]);
        const verdict = tlsAnswer(answer, hello);
        if (verdict !== 'need-more') settle(verdict === 'tls' ? answer : null, null);
      };
      const onEnd = (): void => settle(null, null);
      const onError = (err: NodeJS.ErrnoException): void => settle(null, err);
      const timer = setTimeout(() => settle(null, null), deps.opts.probeTimeoutMs);
      upstream.on('data', onData);
      upstream.on('end', onEnd);
      upstream.on('error', onError);
      upstream.write(hello);
      upstream.resume();
    });
  }

  /**
   * Runs an upgrade dialogue, then does what it decided: terminate TLS after
   * the client's in-band request, step aside, or close cleanly.
   */
  private async upgrade(factory: DialogueFactory, first: Buffer): Promise<void> {
    const { client, upstream, deps } = this;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), deps.opts.upgradeTimeoutMs ?? DEFAULT_UPGRADE_TIMEOUT_MS);
    const outcome = await factory.create().run(client, upstream, first, abort.signal);
    clearTimeout(timer);
    if (this.ended) return;
    if (outcome.kind === 'failed') {
      if (deps.log.isLevelEnabled('debug')) deps.log.debug({ protocol: factory.protocol, reason: outcome.reason, port: this.dst.port }, 'upgrade failed');
      deps.events.handshakeFailed(abort.signal.aborted ? 'upgrade-timeout' : 'upgrade-invalid');
      this.closeCleanly();
      return;
    }
    if (client.destroyed || upstream.destroyed) {
      this.destroy();
      this.end('none', null);
      return;
    }
    if (outcome.clientRest.length > 0) client.unshift(outcome.clientRest);
    if (outcome.kind === 'passthrough') {
      if (outcome.upstreamRest.length > 0) upstream.unshift(outcome.upstreamRest);
      this.startRelay('plain', client, upstream);
      return;
    }
    const hello = await this.readHello();
    if (hello === null) return;
    await this.terminate(hello.bytes, hello.parsed, { protocol: factory.protocol, upstreamRest: outcome.upstreamRest, transform: outcome.transform });
  }

  /** After an upgrade: the ClientHello that must follow, bounded like any other. Null: handled and closed. */
  private readHello(): Promise<{ bytes: Buffer; parsed: ClientHello } | null> {
    const { client, deps } = this;
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let n = 0;
      const settle = (r: { bytes: Buffer; parsed: ClientHello } | null, failure: HandshakeFailure | null): void => {
        clearTimeout(timer);
        client.off('data', onData);
        client.off('end', onGone);
        client.off('close', onGone);
        client.pause();
        if (r === null) {
          if (failure) deps.events.handshakeFailed(failure);
          this.destroy();
          this.end('none', null);
        }
        resolve(r);
      };
      const onData = (chunk: Buffer): void => {
        chunks.push(chunk);
        n += chunk.length;
        const all = Buffer.concat(chunks, n);
        const r = parseClientHello(all, this.maxHelloBytes);
        if (r.kind === 'need-more') return;
        if (r.kind === 'hello') settle({ bytes: all, parsed: r.hello }, null);
        else settle(null, 'hello-invalid');
      };
      const onGone = (): void => settle(null, null);
      const timer = setTimeout(() => settle(null, 'hello-timeout'), deps.opts.helloTimeoutMs);
      client.on('data', onData);
      client.once('end', onGone);
      client.once('close', onGone);
      client.resume();
    });
  }

  /** A failed upgrade: FIN both ways (as a server would close), reset whatever lingers. */
  private closeCleanly(): void {
    const { client, upstream } = this;
    let open = 2;
    const gone = (): void => {
      if (--open > 0) return;
      clearTimeout(timer);
      this.end('none', null);
    };
    const timer = setTimeout(() => this.destroy(), 2000);
    for (const s of [client, upstream]) {
      s.on('error', ignore);
      if (s.closed) gone();
      else s.once('close', gone);
      s.end();
      s.resume();
    }
  }

  /**
   * Passes the client's first plaintext after the handshake through the
   * dialogue's transform on its way upstream (and the service's answers back,
   * when the transform has upstreamData). False: it failed and all is closed.
   */
  private transformFirst(secure: tls.TLSSocket, upstream: net.Socket, transform: SessionTransform): Promise<boolean> {
    const { deps } = this;
    return new Promise((resolve) => {
      let seen = 0;
      let clientDone = false;
      let upstreamDone = transform.upstreamData === undefined;
      const settle = (ok: boolean): void => {
        clearTimeout(timer);
        secure.off('data', onData);
        secure.off('end', onGone);
        secure.off('close', onGone);
        secure.pause();
        upstream.off('data', onUpstreamData);
        upstream.off('end', onGone);
        upstream.off('close', onGone);
        upstream.pause();
        if (!ok) {
          this.destroy();
          this.end('none', null);
        }
        resolve(ok);
      };
      const step = (chunk: Buffer, rewrite: (c: Buffer) => { forward: Buffer; done: boolean }, to: net.Socket): boolean | null => {
        seen += chunk.length;
        let r: { forward: Buffer; done: boolean };
        try {
          r = rewrite(chunk);
        } catch {
          deps.events.handshakeFailed('upgrade-invalid');
          settle(false);
          return null;
        }
        if (r.forward.length > 0) to.write(r.forward);
        if (seen > MAX_TRANSFORM_BYTES && !r.done) {
          deps.events.handshakeFailed('upgrade-invalid');
          settle(false);
          return null;
        }
        return r.done;
      };
      const onData = (chunk: Buffer): void => {
        if (clientDone) {
          upstream.write(chunk);
          return;
        }
        const done = step(chunk, (c) => transform.clientData(c), upstream);
        if (done === null) return;
        clientDone = done;
        // Without upstreamData the phase is the client's; with it, the service's answer ends it.
        if (transform.upstreamData === undefined ? clientDone : upstreamDone) settle(true);
      };
      const onUpstreamData = (chunk: Buffer): void => {
        const done = transform.upstreamData ? step(chunk, (c) => transform.upstreamData?.(c) ?? { forward: c, done: true }, secure) : true;
        if (done === null) return;
        upstreamDone = done;
        if (!upstreamDone) return;
        // The service ended the phase: what the client's side still holds (a header cut short) goes on now, or it is lost.
        if (!clientDone && step(Buffer.alloc(0), (c) => transform.clientData(c), upstream) === null) return;
        settle(true);
      };
      const onGone = (): void => settle(false);
      const timer = setTimeout(() => settle(false), deps.opts.helloTimeoutMs);
      secure.on('data', onData);
      secure.once('end', onGone);
      secure.once('close', onGone);
      secure.resume();
      if (!upstreamDone) {
        upstream.on('data', onUpstreamData);
        upstream.once('end', onGone);
        upstream.once('close', onGone);
        upstream.resume();
      }
    });
  }

  private async terminate(
    hello: Buffer,
    parsed: ClientHello,
    upgraded?: { protocol: UpgradeProtocol; upstreamRest: Buffer; transform: SessionTransform | undefined },
  ): Promise<void> {
    const { client, dst, deps } = this;
    const upstream = this.upstream;
    const startedNs = process.hrtime.bigint();
    const deadline = setTimeout(() => {
      deps.events.handshakeFailed('handshake-timeout');
      this.destroy();
      this.end('none', null);
    }, deps.opts.helloTimeoutMs);
    let context: tls.SecureContext;
    try {
      context = await deps.certs.contextFor({ servername: parsed.sni, localAddress: dst.address, clientAddress: this.src.address });
    } catch (err) {
      clearTimeout(deadline);
      deps.log.warn({ err }, 'no certificate for a handshake; closing it');
      deps.events.handshakeFailed('no-certificate');
      reset(client);
      reset(upstream);
      this.end('none', null);
      return;
    }
    if (client.destroyed || upstream.destroyed) {
      clearTimeout(deadline);
      reset(client);
      reset(upstream);
      this.end('none', null);
      return;
    }
    client.unshift(hello);
    const alpn = parsed.alpn.length > 0 ? PLAINTEXT_SAFE_ALPN.filter((p) => parsed.alpn.includes(p)) : [];
    const secure = new tls.TLSSocket(client, { isServer: true, secureContext: context, ...(alpn.length > 0 ? { ALPNProtocols: alpn } : {}) });
    this.outer = secure;
    let handshaken = false;
    /** The handshake ended without completing: true for the first caller only (a reset brings 'error', 'end' and 'close'). */
    let failedOnce = false;
    const failing = (): boolean => {
      if (handshaken || failedOnce || this.ended) return false;
      failedOnce = true;
      clearTimeout(deadline);
      return true;
    };
    secure.on('error', (err: NodeJS.ErrnoException) => {
      if (!failing()) return;
      if (deps.log.isLevelEnabled('debug')) deps.log.debug({ err, port: dst.port }, 'tls handshake failed');
      deps.events.handshakeFailed(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'client-closed' : 'handshake-error');
      reset(client);
      reset(upstream);
      this.end('none', null);
    });
    // A client that gives up mid-handshake (FIN) is done: nothing to keep half-open.
    secure.once('end', () => {
      if (!failing()) return;
      deps.events.handshakeFailed('client-closed');
      this.destroy();
      this.end('none', null);
    });
    secure.once('close', () => {
      if (!failing()) return;
      deps.events.handshakeFailed('client-closed');
      reset(upstream);
      this.end('none', null);
    });
    secure.once('secure', () => {
      handshaken = true;
      clearTimeout(deadline);
      deps.events.handshake?.(Number(process.hrtime.bigint() - startedNs) / 1e9);
      // What tls.Server does at 'secure': without it, a TLSSocket made by hand
      // keeps later TLS errors to itself and the connection lingers until idle.
      (secure as unknown as { _releaseControl?: () => void })._releaseControl?.();
      if (upgraded) {
        if (upgraded.upstreamRest.length > 0) upstream.unshift(upgraded.upstreamRest);
        const { protocol, transform } = upgraded;
        if (transform === undefined) this.startRelay('upgrade', secure, upstream, { protocol });
        else void this.transformFirst(secure, upstream, transform).then((ok) => ok && this.startRelay('upgrade', secure, upstream, { protocol }));
        return;
      }
      // A service that answers our plaintext with a TLS alert terminates TLS
      // itself after all (it changed, or a probe timed out): pass through next time.
      // Unless the answer repeats the client's own bytes: an echo service would
      // otherwise be taken for TLS by a client whose plaintext looks like an alert.
      // Only the first chunk is looked at: an alert arrives whole (7 bytes, one
      // write), and a first chunk too short to decide leaves the verdict to the
      // next probe, at the cache's TTL.
      let firstIn: Buffer = EMPTY;
      this.startRelay('tls', secure, upstream, {
        onFirstIn: (chunk) => {
          firstIn = Buffer.from(chunk.subarray(0, SENT_PREFIX_BYTES));
        },
        onFirstOut: (chunk) => {
          if (tlsAnswer(chunk, firstIn) === 'tls') deps.tlsServices.set(dst.address, dst.port, 'tls');
        },
      });
    });
  }

  private startRelay(kind: ConnectionKind, client: net.Socket, upstream: net.Socket, extra: RelayStart = {}): void {
    const { protocol, sentIn = 0, sentOut = 0, onFirstIn, onFirstOut } = extra;
    const { deps } = this;
    if (protocol === undefined) deps.events.opened(kind, this.dst.port);
    else deps.events.opened(kind, this.dst.port, protocol);
    if (sentIn > 0) deps.events.bytes('in', sentIn);
    if (sentOut > 0) deps.events.bytes('out', sentOut);
    const bytes = deps.events.bytes;
    const onBytes = (direction: 'in' | 'out', n: number): void => {
      this.relayed += n;
      bytes(direction, n);
    };
    const relayOpts = { idleTimeoutMs: deps.opts.idleTimeoutMs, onBytes, ...(onFirstIn ? { onFirstIn } : {}), ...(onFirstOut ? { onFirstOut } : {}) };
    void relay(client, upstream, relayOpts).then((result) => {
      if (sentIn > 0 || sentOut > 0) result = { ...result, bytesIn: result.bytesIn + sentIn, bytesOut: result.bytesOut + sentOut };
      if ((kind === 'tls' || kind === 'upgrade') && result.bytesIn === 0 && CLIENT_ENDINGS.has(result.reason)) deps.events.sessionWithoutData();
      if (deps.log.isLevelEnabled('debug')) {
        deps.log.debug({ kind, port: this.dst.port, ...result }, 'connection closed');
      }
      this.end(kind, result);
    });
  }
}

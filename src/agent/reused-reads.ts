// SPDX-License-Identifier: MIT
// Where a relayed socket's reads land. By default Node allocates a fresh
// 64 KiB ArrayBuffer for every read; in a bulk transfer that churn of external
// memory kept V8's major GC busy for about a third of a worker's CPU (perf,
// 2026-11-27). The agent's sockets use net.Socket's `onread` instead:
//
// - Reads first land in one buffer shared by every such socket of the process.
//   Its bytes are copied out before the read callback returns (a small copy
//   from Node's buffer pool, for a typical request or response), so the next
//   read of any socket may overwrite it.
// - A read that fills the shared buffer marks a bulk transfer: from then on the
//   socket reads into a buffer of its own, and the relay writes those bytes on
//   without a copy ("borrowed"). It must not let the socket read again until
//   that write has left user space. After a run of small reads the socket gives
//   its buffer up (idle keep-alive connections hold none).
//
// Until the relay takes over (sniffing, probes, upgrade dialogues), every read is
// pushed as ordinary stream data, so 'data', pause() and unshift() behave as on
// any net.Socket. Once a TLSSocket wraps the socket, TLS reads the TCP handle
// itself and none of this is involved.
import net from 'node:net';

/**
 * Takes one chunk read from the socket. `borrowed`: the bytes live in the socket's
 * own read buffer and must be written out before the socket reads again;
 * otherwise they are a copy the sink may keep. Returns false to stop reading
 * (the caller resumes the socket later).
 */
export type ReadSink = (chunk: Buffer, borrowed: boolean) => boolean;

const READ_SIZE = 64 * 1024;
/** Reads smaller than this, this many times in a row, and a socket gives its own buffer up. */
const SMALL_READ = 4 * 1024;
const SMALL_READS_TO_RELEASE = 16;

let shared: Buffer | null = null;
function sharedBuffer(): Buffer {
  shared ??= Buffer.allocUnsafe(READ_SIZE);
  return shared;
}

/** The read state of one socket; the relay reaches it through readsOf(). */
export class ReusedReads {
  private socket: net.Socket | null = null;
  private sink: ReadSink | null = null;
  private own: Buffer | null = null;
  private useOwn = false;
  private smallReads = 0;

  /** The options to pass as `onread` when the socket is made. */
  readonly onread = {
    buffer: (): Buffer => (this.useOwn ? (this.own ??= Buffer.allocUnsafe(READ_SIZE)) : sharedBuffer()),
    callback: (n: number, buf: Buffer): boolean => this.onRead(n, buf),
  };

  /** Call once, right after the socket is made with `onread`. */
  bind(socket: net.Socket): void {
    this.socket = socket;
  }

  /** Hands every later read to `sink` (the relay, once it takes over). */
  setSink(sink: ReadSink): void {
    this.sink = sink;
  }

  private onRead(n: number, buf: Buffer): boolean {
    const socket = this.socket as net.Socket;
    const sink = this.sink;
    const isOwn = buf === this.own;
    if (isOwn) {
      if (n >= SMALL_READ) this.smallReads = 0;
      else if (++this.smallReads >= SMALL_READS_TO_RELEASE) this.release();
    } else if (n === buf.length) {
      this.useOwn = true;
      this.smallReads = 0;
    }
    // Bytes already waiting in the stream (unshifted by the sniffer, or pushed
    // while the relay was paused) go first: stay behind them. With Node 20's
    // scheduling they are flushed (on the next tick) before the next read, or the
    // socket is paused; this keeps the order should that ever change.
    if (sink === null || socket.readableLength > 0) return socket.push(Buffer.from(buf.subarray(0, n)));
    if (isOwn) return sink(buf.subarray(0, n), true);
    return sink(Buffer.from(buf.subarray(0, n)), false);
  }

  /** The next read goes to the shared buffer; the own one is left to the GC (a write may still hold it). */
  private release(): void {
    this.useOwn = false;
    this.own = null;
    this.smallReads = 0;
  }
}

const READS = Symbol('jfe.reusedReads');
type WithReads = net.Socket & { [READS]?: ReusedReads };

function withReads(make: (onread: ReusedReads['onread']) => net.Socket): net.Socket {
  const reads = new ReusedReads();
  const socket = make(reads.onread) as WithReads;
  reads.bind(socket);
  socket[READS] = reads;
  return socket;
}

/** A socket whose reads go through ReusedReads; `opts` as for new net.Socket(). */
export function socketWithReusedReads(opts: net.SocketConstructorOpts): net.Socket {
  return withReads((onread) => new net.Socket({ ...opts, onread } as net.SocketConstructorOpts));
}

/** Node's fields behind an accepted socket that adoptWithReusedReads() moves. */
type AcceptedInternals = net.Socket & { _handle?: object | null; _server?: net.Server | null; server?: net.Server | null };

/**
 * The same connection as `accepted` (from a net.Server created with
 * pauseOnConnect and noDelay), as a socket whose reads go through ReusedReads:
 * net.Server has no `onread` option. Moves the TCP handle and the server's
 * connection count (maxConnections, close()) to the new socket, and retires
 * the old one without closing the handle. If Node's internals are not as
 * expected, returns `accepted` itself, resumed: the connection works as before.
 */
export function adoptWithReusedReads(accepted: net.Socket): net.Socket {
  const old = accepted as AcceptedInternals;
  const handle = old._handle;
  if (typeof handle !== 'object' || handle === null || old.destroyed || !('_server' in old)) {
    accepted.resume();
    return accepted;
  }
  const server = old._server ?? null;
  const socket = withReads(
    (onread) => new net.Socket({ handle, allowHalfOpen: true, readable: true, writable: true, noDelay: true, onread } as net.SocketConstructorOpts),
  ) as AcceptedInternals;
  old._handle = null;
  old._server = null;
  old.server = null;
  socket._server = server;
  socket.server = server;
  old.destroy(); // no handle left: only the JS shell goes
  return socket;
}

/** The socket's ReusedReads, if it was made by socketWithReusedReads() or adoptWithReusedReads(). */
export function readsOf(socket: net.Socket): ReusedReads | undefined {
  return (socket as WithReads)[READS];
}

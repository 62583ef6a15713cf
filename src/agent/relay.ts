// SPDX-License-Identifier: MIT
// The two-way byte pipe between a client socket (plain, or a TLSSocket after
// termination) and the upstream socket: half-close, resets, backpressure, idle
// timeout and byte counts. It knows nothing of TLS, certificates or BPF.
import type net from 'node:net';
import { innermostSocket, resetSocket } from './reset-socket';
import { type ReadSink, readsOf } from './reused-reads';

export type RelayReason =
  | 'done' // both directions ended cleanly (EOF each way, every byte flushed)
  | 'idle' // no byte moved either way for idleTimeoutMs
  | 'client-reset' // the client side saw ECONNRESET/EPIPE
  | 'upstream-reset'
  | 'client-error' // any other error on the client side (TLS alerts, ETIMEDOUT, …)
  | 'upstream-error'
  | 'aborted'; // opts.signal fired, or the caller destroyed a socket under the relay

export interface RelayOptions {
  /**
   * No byte relayed either way for this long (none read, and no queued write completed):
   * both sides destroyed with a plain close, reason 'idle'. Checked by one coarse timer
   * per relay ticking every idleTimeoutMs/4, so a connection is closed between
   * idleTimeoutMs and 1.25 × idleTimeoutMs after its last byte.
   * 0 (or any non-finite or negative value) disables the timeout.
   */
  idleTimeoutMs: number;
  /** in = client→upstream, out = upstream→client. Called per chunk: must stay cheap. */
  onBytes?: (direction: 'in' | 'out', n: number) => void;
  /**
   * See the first client→upstream and upstream→client chunk (a 'data' listener of one's
   * own would miss them: see reused-reads.ts). The chunk may live in a reused read
   * buffer: copy what must outlive the call.
   */
  onFirstIn?: (chunk: Buffer) => void;
  onFirstOut?: (chunk: Buffer) => void;
  /** Aborts the relay (e.g. at the end of a drain): both sides reset, reason 'aborted'. */
  signal?: AbortSignal;
}

export interface RelayResult {
  /**
   * Bytes read from the client and handed to the upstream socket, less those still queued
   * in it (user space) when a teardown cut the transfer short. Exact when the relay ends
   * with 'done'. After a teardown, the one write the kernel had only partly taken counts
   * as unsent, so the count may be low by less than one chunk (64 KiB); bytes the kernel
   * held and a reset discarded can't be seen from user space and count as sent.
   */
  bytesIn: number;
  /** The same for upstream → client (plaintext bytes, when the client side is TLS). */
  bytesOut: number;
  /** The first thing that happened; later consequences (e.g. the reset we sent) don't override it. */
  reason: RelayReason;
}

/** Quiet timer ticks that make a connection idle: the timer period is idleTimeoutMs / IDLE_TICKS. */
const IDLE_TICKS = 4;

/**
 * Relays bytes both ways until both sockets are closed; resolves exactly once then,
 * and never rejects. Takes ownership of both sockets: it adds 'error' listeners that stay
 * for their lifetime, resumes them, and destroys them on every path.
 *
 * Callers must create both sockets with `allowHalfOpen: true` (net.createServer,
 * net.connect; a TLSSocket inherits it from the socket it wraps). relay() sets the
 * property too, but a FIN that arrived before relay() was called would already have
 * made Node end the other direction.
 *
 * Half-close: EOF from one side becomes end() on the other (after the queued bytes);
 * the other direction keeps flowing. On a TLSSocket (Node 20, OpenSSL 3.0), end() sends
 * close_notify then a TCP FIN, and a received close_notify is its 'end'; after that the
 * socket still writes, in TLS 1.3 and in 1.2 alike (tested both ways). TLS 1.3 allows
 * this (RFC 8446 §6.1); TLS 1.2 expects the receiver of a close_notify to answer with
 * its own and stop (RFC 5246 §7.2.1), so a strict 1.2 client may drop a response sent
 * after its close_notify. A bare FIN without close_notify is also just 'end': Node
 * does not flag the truncation, and neither can the relay.
 *
 * Errors: an error on one side resets the other (RST, not FIN), so its peer can't take
 * a truncated stream for a complete one. A TLSSocket has no reset of its own: the reset
 * goes to the innermost net.Socket of its `_parent` chain, the TCP socket it wraps.
 * Errors must arrive as 'error' events: a server TLSSocket made without a tls.Server keeps
 * Node's "control" after the handshake and then swallows TLS alerts (only an internal
 * '_tlsError' event, the socket stays open) until `_releaseControl()` is called, as
 * tls.Server does at 'secure'. The terminator must do that; here it would end as 'idle'.
 *
 * A socket paused by backpressure is not polled (libuv stops watching it), so a reset
 * from its peer is seen once the relay reads it again, or at the idle timeout.
 */
export function relay(client: net.Socket, upstream: net.Socket, opts: RelayOptions): Promise<RelayResult> {
  return new Promise<RelayResult>((resolve) => {
    runRelay(client, upstream, opts, resolve);
  });
}

function runRelay(
  client: net.Socket,
  upstream: net.Socket,
  opts: RelayOptions,
  resolve: (r: RelayResult) => void,
): void {
  const onBytes = opts.onBytes;
  let onFirstIn = opts.onFirstIn;
  let onFirstOut = opts.onFirstOut;
  const signal = opts.signal;
  let bytesIn = 0; // handed to upstream.write()
  let bytesOut = 0; // handed to client.write()
  // Bytes still queued in a socket when it was torn down: handed but never sent.
  let unsentIn = -1;
  let unsentOut = -1;
  let reason: RelayReason | null = null;
  let clientClosed = false;
  let upstreamClosed = false;
  let idleTimer: NodeJS.Timeout | null = null;

  const countIn = (chunk: Buffer): void => {
    if (onFirstIn !== undefined) {
      const first = onFirstIn;
      onFirstIn = undefined;
      first(chunk);
    }
    bytesIn += chunk.length;
    if (onBytes !== undefined) onBytes('in', chunk.length);
  };
  const countOut = (chunk: Buffer): void => {
    if (onFirstOut !== undefined) {
      const first = onFirstOut;
      onFirstOut = undefined;
      first(chunk);
    }
    bytesOut += chunk.length;
    if (onBytes !== undefined) onBytes('out', chunk.length);
  };
  // The hot path: one sink per direction, no allocation of our own. Reads that
  // bypass the stream (reused-reads.ts) reach it directly, the rest through 'data'.
  const inFlow = directionFlow(client, upstream, countIn);
  const outFlow = directionFlow(upstream, client, countOut);
  const onClientData = (chunk: Buffer): void => {
    inFlow.sink(chunk, false);
  };
  const onUpstreamData = (chunk: Buffer): void => {
    outFlow.sink(chunk, false);
  };
  const onUpstreamDrain = inFlow.onDestinationDrain;
  const onClientDrain = outFlow.onDestinationDrain;

  // Half-close: EOF one way ends the other socket's write side after its queue,
  // once confirmEof() has ruled out a reset posing as EOF.
  const onClientEnd = (): void => {
    confirmEof(client, onClientError, endUpstream);
  };
  const onUpstreamEnd = (): void => {
    confirmEof(upstream, onUpstreamError, endClient);
  };
  const endUpstream = (): void => {
    if (!upstream.destroyed) upstream.end();
  };
  const endClient = (): void => {
    if (!client.destroyed) client.end();
  };

  const snapshotClient = (): void => {
    if (unsentOut < 0) unsentOut = client.writableLength;
  };
  const snapshotUpstream = (): void => {
    if (unsentIn < 0) unsentIn = upstream.writableLength;
  };

  // Node destroys a socket before emitting its errors, except a TLSSocket after the
  // handshake (a TLS alert is emitted on a live socket): destroy() covers both.
  const onClientError = (err: Error): void => {
    snapshotClient();
    client.destroy();
    if (reason === null) {
      reason = isReset(err) ? 'client-reset' : 'client-error';
      snapshotUpstream();
      resetSocket(upstream);
    }
  };
  const onUpstreamError = (err: Error): void => {
    snapshotUpstream();
    upstream.destroy();
    if (reason === null) {
      reason = isReset(err) ? 'upstream-reset' : 'upstream-error';
      snapshotClient();
      resetSocket(client);
    }
  };

  const onClientClose = (): void => {
    clientClosed = true;
    snapshotClient();
    if (reason === null && !endedCleanly(client)) abort();
    finish();
  };
  const onUpstreamClose = (): void => {
    upstreamClosed = true;
    snapshotUpstream();
    if (reason === null && !endedCleanly(upstream)) abort();
    finish();
  };

  /** Someone else destroyed a socket, or the signal fired: reset whatever is left. */
  function abort(): void {
    if (reason !== null) return;
    reason = 'aborted';
    snapshotClient();
    snapshotUpstream();
    resetSocket(client);
    resetSocket(upstream);
  }

  function finish(): void {
    if (!clientClosed || !upstreamClosed) return;
    if (idleTimer !== null) clearInterval(idleTimer);
    if (signal !== undefined) signal.removeEventListener('abort', abort);
    resolve({
      bytesIn: bytesIn - Math.max(unsentIn, 0),
      bytesOut: bytesOut - Math.max(unsentOut, 0),
      reason: reason ?? 'done',
    });
  }

  // 'error' listeners first: from here on nothing can throw out of an emit.
  client.on('error', onClientError);
  upstream.on('error', onUpstreamError);
  client.allowHalfOpen = true;
  upstream.allowHalfOpen = true;

  client.on('data', onClientData);
  upstream.on('data', onUpstreamData);
  readsOf(client)?.setSink(inFlow.sink);
  readsOf(upstream)?.setSink(outFlow.sink);
  client.on('drain', onClientDrain);
  upstream.on('drain', onUpstreamDrain);
  client.on('end', onClientEnd);
  upstream.on('end', onUpstreamEnd);
  // A socket that is already closed never emits 'close' again.
  if (isClosed(client)) clientClosed = true;
  else client.on('close', onClientClose);
  if (isClosed(upstream)) upstreamClosed = true;
  else upstream.on('close', onUpstreamClose);

  if (clientClosed || upstreamClosed) {
    abort();
    finish();
    return;
  }
  // The caller may have paused a socket (e.g. while sniffing): flow now.
  client.resume();
  upstream.resume();
  // An EOF read before relay() (e.g. while sniffing) was emitted to no one.
  if (client.readableEnded) onClientEnd();
  if (upstream.readableEnded) onUpstreamEnd();
  // No Nagle: the relay writes what it reads as it reads it, so the sender already chose
  // the segments; Nagle with delayed ACKs would hold a small write for up to 40 ms.
  client.setNoDelay(true);
  upstream.setNoDelay(true);

  if (signal !== undefined) {
    if (signal.aborted) {
      abort();
      return;
    }
    signal.addEventListener('abort', abort, { once: true });
  }

  if (opts.idleTimeoutMs > 0 && Number.isFinite(opts.idleTimeoutMs)) {
    // Coarse idle check instead of a timer reset per chunk: each tick compares the
    // bytes handed over and the bytes still queued (so a slow reader that keeps
    // draining counts as traffic) with the previous tick.
    let lastHanded = -1;
    let lastQueued = -1;
    let quietTicks = 0;
    idleTimer = setInterval(
      () => {
        const handed = bytesIn + bytesOut;
        const queued = client.writableLength + upstream.writableLength;
        if (handed !== lastHanded || queued !== lastQueued) {
          lastHanded = handed;
          lastQueued = queued;
          quietTicks = 0;
          return;
        }
        if (++quietTicks < IDLE_TICKS || reason !== null) return;
        reason = 'idle';
        snapshotClient();
        snapshotUpstream();
        // Plain close: the kernel still sends what it holds, then FIN (or RST if
        // unread bytes are left in that socket's receive queue).
        client.destroy();
        upstream.destroy();
      },
      Math.max(1, Math.ceil(opts.idleTimeoutMs / IDLE_TICKS)),
    );
    idleTimer.unref();
  }
}

/**
 * One direction's sink, for 'data' chunks and for reads that bypass the stream:
 * count, write, pause the source when the destination is full. A borrowed chunk
 * lives in the source's read buffer: the source stays paused until the
 * destination has written it out, whatever the destination's highWaterMark says.
 */
function directionFlow(source: net.Socket, destination: net.Socket, count: (chunk: Buffer) => void): { sink: ReadSink; onDestinationDrain: () => void } {
  let borrowedQueued = false;
  const onBorrowedFlushed = (): void => {
    if (borrowedQueued && destination.writableLength === 0) {
      borrowedQueued = false;
      if (!source.destroyed) source.resume();
    }
  };
  const sink: ReadSink = (chunk, borrowed) => {
    if (destination.destroyed) return true;
    count(chunk);
    if (!borrowed) {
      if (destination.write(chunk)) return true;
      source.pause();
      return false;
    }
    destination.write(chunk, onBorrowedFlushed);
    if (destination.writableLength === 0) return true;
    borrowedQueued = true;
    source.pause();
    return false;
  };
  const onDestinationDrain = (): void => {
    if (!borrowedQueued) source.resume();
  };
  return { sink, onDestinationDrain };
}

const EMPTY = Buffer.alloc(0);

/**
 * Calls `passOn` if the EOF just read from `s` is a FIN, or `onError` if it was a reset.
 * libuv reports a RST as EOF when it arrives behind unread bytes: on EPOLLHUP after a
 * short read it ends the stream without the read that would return ECONNRESET (the
 * POLLHUP short-circuit in uv__stream_io, src/unix/stream.c; seen here on Linux 6.18
 * and Node 20). Passing that on as a FIN would let the other peer take a truncated
 * stream for a complete one. A zero-length write on the TCP socket asks the kernel:
 * it succeeds after a FIN and fails with ECONNRESET (or EPIPE) after a RST, and sends
 * nothing. It can only ask while our write side is open and idle: after our own FIN
 * it would fail anyway, and behind queued bytes it would delay the EOF; then the
 * EOF is passed on as is (a reset still fails the queued writes, and resets the other side).
 */
function confirmEof(s: net.Socket, onError: (err: Error) => void, passOn: () => void): void {
  const tcp = innermostSocket(s);
  if (s.writableEnded || s.writableLength > 0 || tcp.destroyed || tcp.writableEnded) {
    passOn();
    return;
  }
  tcp.write(EMPTY, (err) => {
    if (err == null) passOn();
    else onError(err);
  });
}

function isReset(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** Closed without being destroyed early: EOF read and every queued byte flushed. */
function endedCleanly(s: net.Socket): boolean {
  return s.readableEnded && s.writableFinished;
}

function isClosed(s: net.Socket): boolean {
  return s.destroyed && (s as { closed?: boolean }).closed === true;
}

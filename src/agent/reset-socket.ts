// SPDX-License-Identifier: MIT
// Closing a TCP connection with a reset (SO_LINGER 0), so its peer sees ECONNRESET
// instead of taking a cut-off stream for a complete one; safe in every socket state.
import net from 'node:net';

/**
 * Destroys `s` with a TCP RST. A layered socket (a TLSSocket over the accepted net.Socket)
 * has no TCP handle of its own: the reset goes to the innermost socket, then the layer is
 * destroyed.
 *
 * While a shutdown (our FIN, from end()) is in flight, libuv refuses the reset
 * (uv_tcp_close_reset returns UV_EINVAL while shutdown_req is set) and Node 20's
 * resetAndDestroy() then drops the handle without closing it: the fd leaks and the socket
 * never emits 'close' (seen as a connection that never finishes, its bypass entry kept).
 * So in that state the socket is destroyed at once if no reset is possible ever, or else
 * reset as soon as the shutdown completes ('finish', within one loop turn).
 */
export function resetSocket(s: net.Socket): void {
  if (s.destroyed) return;
  const inner = innermostSocket(s);
  if (!inner.destroyed && hasTcpHandle(inner)) {
    // A TLSSocket's end() shuts down the same TCP handle, so either layer may be the one.
    const ending = shutdownInFlight(s) ? s : shutdownInFlight(inner) ? inner : null;
    if (ending !== null) {
      ending.once('finish', () => {
        if (!inner.destroyed && hasTcpHandle(inner)) inner.resetAndDestroy();
        s.destroy();
      });
      // Stop reading now, as a reset would.
      s.pause();
      inner.pause();
      return;
    }
    inner.resetAndDestroy();
  }
  s.destroy();
}

/** end() was called and every queued byte written, but the FIN's shutdown has not completed. */
function shutdownInFlight(s: net.Socket): boolean {
  return s.writableEnded && !s.writableFinished && s.writableLength === 0;
}

/**
 * The net.Socket at the bottom of `s`'s `_parent` chain: `s` itself for a plain socket,
 * the wrapped TCP socket for a TLSSocket made over one. Node's own chain (net.js walks
 * it to refresh timeouts); used here only to reach the TCP connection.
 */
export function innermostSocket(s: net.Socket): net.Socket {
  let inner = s;
  for (;;) {
    const parent = (inner as { _parent?: unknown })._parent;
    if (!(parent instanceof net.Socket)) return inner;
    inner = parent;
  }
}

/** resetAndDestroy() throws ERR_INVALID_HANDLE_TYPE unless the handle is a TCP handle. */
function hasTcpHandle(s: net.Socket): boolean {
  const handle = (s as { _handle?: { reset?: unknown } | null })._handle;
  return handle != null && typeof handle.reset === 'function';
}

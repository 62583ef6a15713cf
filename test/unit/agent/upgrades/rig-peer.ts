// SPDX-License-Identifier: MIT
// What the rigs' peers share: the test's end of one socket, written piece by
// piece (each its own read on the other side, to exercise split reads) and
// awaited with a bound, so a dialogue that stays silent fails the test with
// what did arrive instead of hanging it.
import type net from 'node:net';

export abstract class RigPeer {
  ended = false;

  constructor(readonly socket: net.Socket) {
    socket.on('end', () => (this.ended = true));
    socket.on('error', () => undefined);
  }

  async send(...pieces: (string | Buffer)[]): Promise<void> {
    for (const p of pieces) {
      this.socket.write(p);
      await new Promise((r) => setTimeout(r, 15));
    }
  }

  /** What `wait` resolves, or after `timeoutMs` an error saying `timedOut()`. */
  protected within<T>(timeoutMs: number, timedOut: () => string, wait: (resolve: (value: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(timedOut())), timeoutMs);
      wait((value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  }
}

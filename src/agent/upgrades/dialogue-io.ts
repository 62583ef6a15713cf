// SPDX-License-Identifier: MIT
// Reading both sockets of an upgrade dialogue piece by piece, whatever a
// piece is (bytes.ts: a byte count; lines.ts: a line). A side is read only
// while a piece is awaited from it, so the service and the client are never
// read ahead of the dialogue, and whatever was read past the last piece is
// handed back: it is the ClientHello sent right after the request, or a
// server's early bytes, and must reach the other end unchanged.
import type net from 'node:net';
import { DialogueStop } from './dialogue-run';

export type Side = 'client' | 'upstream';

/**
 * Where the next piece ends in what is buffered: its length once it is all
 * there, null to wait for more, or a reason to stop the dialogue (a piece
 * that can no longer be valid, such as an overlong line).
 */
export type Cut = (buffered: Buffer) => number | { stop: string } | null;

class DialogueSide {
  private buf: Buffer;
  private ended: string | null = null;
  private waiting: { cut: Cut; resolve: (piece: Buffer) => void; reject: (e: DialogueStop) => void } | null = null;

  constructor(
    readonly socket: net.Socket,
    first: Buffer,
    private readonly closedReason: string,
  ) {
    this.buf = first;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    this.socket.pause();
  }

  read(cut: Cut): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { cut, resolve, reject };
      if (this.check()) return;
      if (this.ended !== null) this.fail(this.ended);
      else this.socket.resume();
    });
  }

  rest(): Buffer {
    return this.buf;
  }

  stop(reason: string): void {
    this.ended ??= reason;
    this.fail(reason);
  }

  /** Settles a waiting read if its piece is buffered, or if its cut says stop. */
  private check(): boolean {
    const w = this.waiting;
    if (w === null) return false;
    const n = w.cut(this.buf);
    if (n === null) return false;
    if (typeof n !== 'number') {
      this.fail(n.stop);
      return true;
    }
    const piece = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.waiting = null;
    this.socket.pause();
    w.resolve(piece);
    return true;
  }

  private fail(reason: string): void {
    const w = this.waiting;
    if (w === null) return;
    this.waiting = null;
    this.socket.pause();
    w.reject(new DialogueStop(reason));
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    // Not awaited (a read that just settled): keep it, stop reading.
    if (!this.check() && this.waiting === null) this.socket.pause();
  };

  private readonly onEnd = (): void => {
    this.ended ??= this.closedReason;
    this.fail(this.ended);
  };
}

/** Both sockets of one dialogue; subclasses say what a piece is. */
export abstract class DialogueIo {
  private readonly sides: Record<Side, DialogueSide>;
  private readonly onAbort = (): void => {
    this.sides.client.stop('aborted');
    this.sides.upstream.stop('aborted');
  };

  /** `first`: what was already read from `firstFrom`; `closedReason`: the reason when a side closes mid-dialogue. */
  protected constructor(
    client: net.Socket,
    upstream: net.Socket,
    first: Buffer,
    firstFrom: Side,
    private readonly signal: AbortSignal,
    closedReason: (side: Side) => string,
  ) {
    const none = Buffer.alloc(0);
    this.sides = {
      client: new DialogueSide(client, firstFrom === 'client' ? first : none, closedReason('client')),
      upstream: new DialogueSide(upstream, firstFrom === 'upstream' ? first : none, closedReason('upstream')),
    };
    if (signal.aborted) this.onAbort();
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  /** The next piece from `side`; rejects with DialogueStop on close, error, abort or a cut's stop. */
  protected read(side: Side, cut: Cut): Promise<Buffer> {
    if (this.signal.aborted) return Promise.reject(new DialogueStop('aborted'));
    return this.sides[side].read(cut);
  }

  write(side: Side, data: Buffer | string): void {
    this.sides[side].socket.write(data);
  }

  /** What was read from `side` past the last piece taken. */
  rest(side: Side): Buffer {
    return this.sides[side].rest();
  }

  /** Removes every listener of ours and leaves both sockets paused. */
  close(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.sides.client.detach();
    this.sides.upstream.detach();
  }
}

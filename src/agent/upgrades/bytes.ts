// SPDX-License-Identifier: MIT
// Exact-length reading of both sockets for the binary protocols' upgrade
// dialogues (PostgreSQL, MySQL). A side is read only while bytes are awaited
// from it, and whatever was read past what was taken is handed back (the
// ClientHello sent right after a request, a server's early bytes).
import type net from 'node:net';
import { DialogueStop } from './dialogue-run';

export type Side = 'client' | 'upstream';

/** Why a dialogue stopped early; becomes the 'failed' outcome's reason. */
class SideBytes {
  buf: Buffer;
  private ended: string | null = null;
  private waiting: { n: number; resolve: (b: Buffer) => void; reject: (e: DialogueStop) => void } | null = null;

  constructor(
    readonly socket: net.Socket,
    first: Buffer,
    private readonly side: Side,
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

  take(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { n, resolve, reject };
      if (this.check()) return;
      if (this.ended !== null) this.fail(this.ended);
      else this.socket.resume();
    });
  }

  stop(reason: string): void {
    this.ended ??= reason;
    this.fail(reason);
  }

  private check(): boolean {
    const w = this.waiting;
    if (w === null || this.buf.length < w.n) return false;
    const out = this.buf.subarray(0, w.n);
    this.buf = this.buf.subarray(w.n);
    this.waiting = null;
    this.socket.pause();
    w.resolve(out);
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
    if (!this.check() && this.waiting === null) this.socket.pause();
  };

  private readonly onEnd = (): void => {
    this.ended ??= `${this.side} closed during the dialogue (truncated)`;
    this.fail(this.ended);
  };
}

/** Both sockets of one dialogue, read by exact byte counts. */
export class ByteIo {
  private readonly sides: Record<Side, SideBytes>;
  private readonly onAbort = (): void => {
    this.sides.client.stop('aborted');
    this.sides.upstream.stop('aborted');
  };

  constructor(
    client: net.Socket,
    upstream: net.Socket,
    first: Buffer,
    firstFrom: Side,
    private readonly signal: AbortSignal,
  ) {
    const none = Buffer.alloc(0);
    this.sides = {
      client: new SideBytes(client, firstFrom === 'client' ? first : none, 'client'),
      upstream: new SideBytes(upstream, firstFrom === 'upstream' ? first : none, 'upstream'),
    };
    if (signal.aborted) this.onAbort();
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Exactly n bytes from `side`; rejects with DialogueStop on close, error or abort. */
  take(side: Side, n: number): Promise<Buffer> {
    if (this.signal.aborted) return Promise.reject(new DialogueStop('aborted'));
    return this.sides[side].take(n);
  }

  write(side: Side, data: Buffer): void {
    this.sides[side].socket.write(data);
  }

  /** What was read from `side` past what was taken. */
  rest(side: Side): Buffer {
    return this.sides[side].buf;
  }

  /** Removes every listener of ours and leaves both sockets paused. */
  close(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.sides.client.detach();
    this.sides.upstream.detach();
  }
}

// SPDX-License-Identifier: MIT
// Line-by-line reading of both sockets for the text protocols' upgrade
// dialogues (SMTP, IMAP, POP3). Each side is read only while a line is
// awaited from it, every line is bounded, and whatever was read past the last
// line is handed back (the ClientHello pipelined after STARTTLS, a server's
// early bytes) so nothing is lost.
import type net from 'node:net';
import { DialogueStop } from './dialogue-run';
import type { UpgradeOutcome } from './upgrade';

export type Side = 'client' | 'upstream';

/** Why a dialogue stopped early; becomes the 'failed' outcome's reason. */
/** Longest line either side may send during a dialogue (SMTP's limit is 512; IMAP capability lists run longer). */
export const MAX_LINE_BYTES = 4096;

const LF = 0x0a;

class SideReader {
  buf: Buffer;
  private ended: string | null = null;
  private waiting: { resolve: (line: Buffer) => void; reject: (e: DialogueStop) => void } | null = null;

  constructor(
    readonly socket: net.Socket,
    first: Buffer,
    private readonly side: Side,
    private readonly maxLine: number,
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

  /** The next line, terminator included (LF, usually CRLF). */
  next(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      if (!this.check()) {
        if (this.ended !== null) this.fail(this.ended);
        else this.socket.resume();
      }
    });
  }

  stop(reason: string): void {
    this.ended ??= reason;
    this.fail(reason);
  }

  /** Settles a waiting read if a full (or overlong) line is buffered. */
  private check(): boolean {
    const w = this.waiting;
    if (w === null) return false;
    const end = this.buf.indexOf(LF);
    if (end >= 0 && end < this.maxLine) {
      const line = this.buf.subarray(0, end + 1);
      this.buf = this.buf.subarray(end + 1);
      this.waiting = null;
      this.socket.pause();
      w.resolve(line);
      return true;
    }
    if (end >= 0 || this.buf.length >= this.maxLine) {
      this.fail(`${this.side} line longer than ${this.maxLine} bytes`);
      return true;
    }
    return false;
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
    if (!this.check()) {
      // Not awaited (a read that just settled): keep it, stop reading.
      if (this.waiting === null) this.socket.pause();
    }
  };

  private readonly onEnd = (): void => {
    this.ended ??= `${this.side} closed during the dialogue`;
    this.fail(this.ended);
  };
}

/** Both sockets of one dialogue, read as lines. */
export class LineIo {
  private readonly readers: Record<Side, SideReader>;
  private readonly onAbort = (): void => {
    this.readers.client.stop('aborted');
    this.readers.upstream.stop('aborted');
  };

  constructor(
    client: net.Socket,
    upstream: net.Socket,
    /** What the server sent first (all three mail protocols: the greeting). */
    first: Buffer,
    private readonly signal: AbortSignal,
    maxLine = MAX_LINE_BYTES,
  ) {
    this.readers = {
      client: new SideReader(client, Buffer.alloc(0), 'client', maxLine),
      upstream: new SideReader(upstream, first, 'upstream', maxLine),
    };
    if (signal.aborted) this.onAbort();
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  line(side: Side): Promise<Buffer> {
    if (this.signal.aborted) return Promise.reject(new DialogueStop('aborted'));
    return this.readers[side].next();
  }

  write(side: Side, data: Buffer | string): void {
    this.readers[side].socket.write(data);
  }

  /** What was read from `side` past the last line taken. */
  rest(side: Side): Buffer {
    return this.readers[side].buf;
  }

  /**
   * Step aside: each side gets what it has not seen yet (`toClient` lines the
   * server sent, `toServer` lines the client sent), then whatever was read past them.
   */
  passthrough(toClient: Buffer[] = [], toServer: Buffer[] = []): UpgradeOutcome {
    return {
      kind: 'passthrough',
      clientRest: Buffer.concat([...toServer, this.rest('client')]),
      upstreamRest: Buffer.concat([...toClient, this.rest('upstream')]),
    };
  }

  /** Removes every listener of ours and leaves both sockets paused. */
  close(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.readers.client.detach();
    this.readers.upstream.detach();
  }
}

/** A line without its CRLF or LF, as latin1 text (bytes kept one-to-one). */
export function text(line: Buffer): string {
  return line.toString('latin1').replace(/\r?\n$/, '');
}

/** The line's own terminator, so an edited line keeps the server's style. */
export function eol(line: Buffer): string {
  return line.length >= 2 && line[line.length - 2] === 0x0d ? '\r\n' : '\n';
}

/** 'yes' when `first` starts with `opening`, 'need-more' while it is a prefix of it, else 'no'. */
export function startsWith(first: Buffer, opening: string, caseInsensitive = false): 'yes' | 'no' | 'need-more' {
  const n = Math.min(first.length, opening.length);
  let head = first.subarray(0, n).toString('latin1');
  let want = opening.slice(0, n);
  if (caseInsensitive) {
    head = head.toUpperCase();
    want = want.toUpperCase();
  }
  if (head !== want) return 'no';
  return first.length >= opening.length ? 'yes' : 'need-more';
}

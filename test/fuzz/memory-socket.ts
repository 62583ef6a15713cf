// SPDX-License-Identifier: MIT
// One end of an in-memory connection, for driving an upgrade dialogue with a
// scripted peer a million times a run: a Duplex with Node's own flowing and
// paused semantics (what the dialogues rely on), where the peer's bytes are
// pushed in as reads and the dialogue's writes are kept.
import { Duplex } from 'node:stream';

export class MemorySocket extends Duplex {
  private readonly writes: Buffer[] = [];

  constructor() {
    super({ allowHalfOpen: true });
  }

  override _read(): void {
    // The peer pushes; nothing to pull.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.writes.push(chunk);
    done();
  }

  /** The peer sends one read's worth of bytes. */
  deliver(chunk: Buffer): void {
    this.push(chunk);
  }

  /** The peer closes its sending side. */
  hangUp(): void {
    this.push(null);
  }

  /** Everything the dialogue wrote to the peer. */
  written(): Buffer {
    return Buffer.concat(this.writes);
  }

  /** What the peer sent that nobody read yet (the stream's buffer; the socket must be paused). */
  unread(): Buffer {
    const parts: Buffer[] = [];
    for (let b = this.read() as Buffer | null; b !== null; b = this.read() as Buffer | null) parts.push(b);
    return Buffer.concat(parts);
  }
}

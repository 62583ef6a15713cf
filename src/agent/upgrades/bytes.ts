// SPDX-License-Identifier: MIT
// Exact-length reading of both sockets for the binary protocols' upgrade
// dialogues (PostgreSQL, MySQL), whose packets say their own length.
import type net from 'node:net';
import { DialogueIo, type Side } from './dialogue-io';

/** Both sockets of one dialogue, read by exact byte counts. */
export class ByteIo extends DialogueIo {
  constructor(client: net.Socket, upstream: net.Socket, first: Buffer, firstFrom: Side, signal: AbortSignal) {
    super(client, upstream, first, firstFrom, signal, (side) => `${side} closed during the dialogue (truncated)`);
  }

  /** Exactly n bytes from `side`; rejects with DialogueStop on close, error or abort. */
  take(side: Side, n: number): Promise<Buffer> {
    return this.read(side, (buffered) => (buffered.length >= n ? n : null));
  }
}

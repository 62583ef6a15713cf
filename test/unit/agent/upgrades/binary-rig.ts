// SPDX-License-Identifier: MIT
// The rig for the binary upgrade dialogues (PostgreSQL, MySQL): the test plays
// client and server byte by byte.
import type net from 'node:net';
import type { Dialogue } from '../../../../src/agent/upgrades/upgrade';
import { type DialogueRig, startDialogue } from './dialogue-rig';
import { RigPeer } from './rig-peer';

export { leftClean, settle } from './dialogue-rig';

/** Collects what a socket receives. */
export class BytePeer extends RigPeer {
  private got = Buffer.alloc(0);
  private waiters: { n: number; resolve: (b: Buffer) => void }[] = [];

  constructor(socket: net.Socket) {
    super(socket);
    socket.on('data', (d: Buffer) => {
      this.got = Buffer.concat([this.got, d]);
      this.settle();
    });
  }

  /** The next n bytes received; consumed. */
  take(n: number, timeoutMs = 3000): Promise<Buffer> {
    return this.within(timeoutMs, () => `timed out waiting for ${n} bytes; have ${this.got.toString('hex')}`, (resolve: (b: Buffer) => void) => {
      this.waiters.push({ n, resolve });
      this.settle();
    });
  }

  pending(): Buffer {
    return this.got;
  }

  private settle(): void {
    const w = this.waiters[0];
    if (w === undefined || this.got.length < w.n) return;
    this.waiters.shift();
    const out = this.got.subarray(0, w.n);
    this.got = this.got.subarray(w.n);
    w.resolve(out);
    this.settle();
  }
}

/** The test as the database client and as the database server. */
export type Rig = DialogueRig<BytePeer>;

/** Starts `dialogue` with `first` already read from the side that spoke first. */
export function rig(dialogue: Dialogue, first: Buffer): Promise<Rig> {
  return startDialogue(dialogue, first, (s) => new BytePeer(s));
}

// SPDX-License-Identifier: MIT
// The rig for the mail upgrade dialogues (SMTP, IMAP, POP3): the test plays
// client and server as text, awaiting what each side receives.
import type net from 'node:net';
import type { Dialogue } from '../../../../src/agent/upgrades/upgrade';
import { type DialogueRig, startDialogue } from './dialogue-rig';
import { RigPeer } from './rig-peer';

export { leftClean, settle } from './dialogue-rig';

/** Collects what a socket receives and awaits text in it. */
export class Peer extends RigPeer {
  private got = '';
  private waiters: { want: string; resolve: (s: string) => void }[] = [];

  constructor(socket: net.Socket) {
    super(socket);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.got += d;
      this.settle();
    });
  }

  /** Everything received up to and including `want`; consumed. */
  until(want: string, timeoutMs = 3000): Promise<string> {
    return this.within(timeoutMs, () => `timed out waiting for ${JSON.stringify(want)}; have ${JSON.stringify(this.got)}`, (resolve: (s: string) => void) => {
      this.waiters.push({ want, resolve });
      this.settle();
    });
  }

  /** What arrived and was not consumed yet. */
  pending(): string {
    return this.got;
  }

  private settle(): void {
    for (const w of [...this.waiters]) {
      const i = this.got.indexOf(w.want);
      if (i < 0) continue;
      const out = this.got.slice(0, i + w.want.length);
      this.got = this.got.slice(i + w.want.length);
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(out);
    }
  }
}

/** The test as the mail client and as the mail server. */
export type Rig = DialogueRig<Peer>;

/** Starts `dialogue` as if the server's greeting `first` had just been read. */
export function rig(dialogue: Dialogue, first: string | Buffer): Promise<Rig> {
  return startDialogue(dialogue, first, (s) => new Peer(s));
}

// SPDX-License-Identifier: MIT
// Two real loopback socket pairs around one upgrade dialogue: the test plays
// the client on one and the server on the other, byte by byte.
import { once } from 'node:events';
import net from 'node:net';
import type { Dialogue, UpgradeOutcome } from '../../../../src/agent/upgrades/upgrade';

/** Collects what a socket receives and awaits text in it. */
export class Peer {
  private got = '';
  private waiters: { want: string; resolve: (s: string) => void }[] = [];
  ended = false;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.got += d;
      this.settle();
    });
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('error', () => undefined);
  }

  /** Everything received up to and including `want`; consumed. */
  until(want: string, timeoutMs = 3000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${JSON.stringify(want)}; have ${JSON.stringify(this.got)}`)), timeoutMs);
      this.waiters.push({
        want,
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
      });
      this.settle();
    });
  }

  /** What arrived and was not consumed yet. */
  pending(): string {
    return this.got;
  }

  /** Writes each piece as its own read on the other side. */
  async send(...pieces: (string | Buffer)[]): Promise<void> {
    for (const p of pieces) {
      this.socket.write(p);
      await new Promise((r) => setTimeout(r, 15));
    }
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

async function pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const a = net.connect(port, '127.0.0.1');
  await once(a, 'connect');
  const [b] = await accepted;
  server.close();
  return [a, b];
}

export interface Rig {
  /** The test as the mail client. */
  client: Peer;
  /** The test as the mail server. */
  server: Peer;
  /** The dialogue's own ends. */
  dialogueClient: net.Socket;
  dialogueUpstream: net.Socket;
  outcome: Promise<UpgradeOutcome>;
  abort: AbortController;
  /** Listener counts of the dialogue's sockets before it ran. */
  baseline: string[];
  close(): void;
}

/** Starts `dialogue` as if the server's greeting `first` had just been read. */
export async function rig(dialogue: Dialogue, first: string | Buffer): Promise<Rig> {
  const [testClient, dialogueClient] = await pair();
  const [dialogueUpstream, testServer] = await pair();
  for (const s of [dialogueClient, dialogueUpstream]) {
    s.pause();
    s.on('error', () => undefined);
  }
  const baseline = [dialogueClient, dialogueUpstream].map(listeners);
  const abort = new AbortController();
  // A dialogue that never decides fails the test instead of hanging it.
  let timer: NodeJS.Timeout | undefined;
  const outcome = Promise.race([
    dialogue.run(dialogueClient, dialogueUpstream, Buffer.from(first), abort.signal),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the dialogue did not decide within 5 s')), 5000);
    }),
  ]).finally(() => clearTimeout(timer));
  outcome.catch(() => undefined);
  return {
    client: new Peer(testClient),
    server: new Peer(testServer),
    dialogueClient,
    dialogueUpstream,
    outcome,
    abort,
    baseline,
    close: () => {
      for (const s of [testClient, dialogueClient, dialogueUpstream, testServer]) s.destroy();
    },
  };
}

/** Whether the dialogue left both sockets as the contract says: paused, no data listeners of its own. */
export function leftClean(r: Rig): boolean {
  const now = [r.dialogueClient, r.dialogueUpstream].map(listeners);
  return [r.dialogueClient, r.dialogueUpstream].every((s) => s.isPaused()) && now.join() === r.baseline.join();
}

function listeners(s: net.Socket): string {
  return ['data', 'end', 'close', 'error'].map((e) => `${e}:${s.listenerCount(e)}`).join(' ');
}

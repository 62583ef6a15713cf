// SPDX-License-Identifier: MIT
// Two real loopback socket pairs around one binary upgrade dialogue: the test
// plays the client on one and the server on the other, byte by byte.
import { once } from 'node:events';
import net from 'node:net';
import type { Dialogue, UpgradeOutcome } from '../../../../src/agent/upgrades/upgrade';

/** Collects what a socket receives. */
export class BytePeer {
  private got = Buffer.alloc(0);
  private waiters: { n: number; resolve: (b: Buffer) => void }[] = [];
  ended = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.got = Buffer.concat([this.got, d]);
      this.settle();
    });
    socket.on('end', () => (this.ended = true));
    socket.on('error', () => undefined);
  }

  /** The next n bytes received; consumed. */
  take(n: number, timeoutMs = 3000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} bytes; have ${this.got.toString('hex')}`)), timeoutMs);
      this.waiters.push({
        n,
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
      });
      this.settle();
    });
  }

  pending(): Buffer {
    return this.got;
  }

  /** Writes each piece as its own read on the other side. */
  async send(...pieces: Buffer[]): Promise<void> {
    for (const p of pieces) {
      this.socket.write(p);
      await new Promise((r) => setTimeout(r, 15));
    }
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
  /** The test as the database client. */
  client: BytePeer;
  /** The test as the database server. */
  server: BytePeer;
  /** jfe's ends, as the dialogue holds them. */
  jfeClient: net.Socket;
  jfeUpstream: net.Socket;
  outcome: Promise<UpgradeOutcome>;
  abort: AbortController;
  close(): void;
}

/** Starts `dialogue` with `first` already read from the side that spoke first. */
export async function rig(dialogue: Dialogue, first: Buffer): Promise<Rig> {
  const [clientEnd, jfeClient] = await pair();
  const [jfeUpstream, serverEnd] = await pair();
  jfeClient.pause();
  jfeUpstream.pause();
  const abort = new AbortController();
  const outcome = dialogue.run(jfeClient, jfeUpstream, first, abort.signal);
  return {
    client: new BytePeer(clientEnd),
    server: new BytePeer(serverEnd),
    jfeClient,
    jfeUpstream,
    outcome,
    abort,
    close: () => [clientEnd, jfeClient, jfeUpstream, serverEnd].forEach((s) => s.destroy()),
  };
}

/** The dialogue left no listeners of its own and both sockets paused. */
export function leftClean(r: Rig): boolean {
  return r.jfeClient.listenerCount('data') === 0 && r.jfeUpstream.listenerCount('data') === 0 && r.jfeClient.isPaused() && r.jfeUpstream.isPaused();
}

export const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

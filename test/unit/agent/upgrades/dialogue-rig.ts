// SPDX-License-Identifier: MIT
// Two real loopback socket pairs around one upgrade dialogue: the test plays
// the client on one and the server on the other, through peers of its choice
// (bytes for the binary protocols, text for the mail ones).
import { getEventListeners, once } from 'node:events';
import net from 'node:net';
import type { Dialogue, UpgradeOutcome } from '../../../../src/agent/upgrades/upgrade';

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

export interface DialogueRig<Peer> {
  /** The test as the client. */
  client: Peer;
  /** The test as the server. */
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

/** Starts `dialogue` with `first` already read from the side that spoke first. */
export async function startDialogue<Peer>(dialogue: Dialogue, first: string | Buffer, peer: (socket: net.Socket) => Peer): Promise<DialogueRig<Peer>> {
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
    dialogue.run(dialogueClient, dialogueUpstream, typeof first === 'string' ? Buffer.from(first) : first, abort.signal),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the dialogue did not decide within 5 s')), 5000);
    }),
  ]).finally(() => clearTimeout(timer));
  outcome.catch(() => undefined);
  return {
    client: peer(testClient),
    server: peer(testServer),
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

/**
 * Whether the dialogue left both sockets as the contract says: paused, no
 * listeners of its own; and none on the abort signal, which outlives the
 * dialogue (it is the connection's).
 */
export function leftClean(r: DialogueRig<unknown>): boolean {
  const now = [r.dialogueClient, r.dialogueUpstream].map(listeners);
  return (
    [r.dialogueClient, r.dialogueUpstream].every((s) => s.isPaused()) &&
    now.join() === r.baseline.join() &&
    getEventListeners(r.abort.signal, 'abort').length === 0
  );
}

function listeners(s: net.Socket): string {
  return ['data', 'end', 'close', 'error'].map((e) => `${e}:${s.listenerCount(e)}`).join(' ');
}

/** Long enough for anything sent to have arrived, to check that nothing was. */
export const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

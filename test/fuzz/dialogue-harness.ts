// SPDX-License-Identifier: MIT
// Drives one upgrade dialogue through in-memory sockets with scripted peers:
// the client and the server each send a fuzzed byte stream, in fuzzed reads,
// interleaved and spread over event-loop turns as the fuzzer chooses, then
// close or stay open. The same conversation is played twice, once with each
// stream in one read and once in pieces, and the properties every dialogue
// shares are checked on both (see checkConversation).
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import type net from 'node:net';
import fc from 'fast-check';
import type { DialogueFactory, UpgradeOutcome } from '../../src/agent/upgrades/upgrade';
import { bytesInput, chunked, cutPoints } from './inputs';
import { MemorySocket } from './memory-socket';
import { tally } from './tally';

export interface Conversation {
  /** Everything the client sends, and everything the server sends. */
  client: Buffer;
  server: Buffer;
  /** How many of the first speaker's bytes were read before the dialogue starts (taken modulo its length + 1). */
  firstLength: number;
  clientCuts: number[];
  serverCuts: number[];
  /** Which side's next read is delivered next (true: the client's), and whether an event-loop turn passes first. */
  order: boolean[];
  turns: boolean[];
  clientCloses: boolean;
  serverCloses: boolean;
}

/** What one play of a conversation showed, in terms that do not depend on how the bytes were cut. */
export interface Observed {
  kind: UpgradeOutcome['kind'];
  reason: string | null;
  transform: boolean;
  /** What the dialogue wrote to each peer. */
  toClient: Buffer;
  toUpstream: Buffer;
  /** tls, passthrough: the outcome's rest for each side, then what that side sent that nobody read. */
  clientLeft: Buffer | null;
  upstreamLeft: Buffer | null;
  /** When the peers' bytes ran out with the dialogue undecided: the side it was reading (the one not paused). */
  waitingOn: 'client' | 'upstream' | null;
}

/** What a dialogue may do to the byte streams by design, for the conservation properties. */
export interface Conservation {
  /** The client's bytes that must reach the server on passthrough (all of them unless the dialogue answers some itself). */
  clientBytesForServer(client: Buffer, seen: Observed): Buffer;
  /** Whether every byte the server sent reaches the client on passthrough (false where the dialogue rewrites or hides server lines). */
  serverBytesReachClient: boolean;
}

export const KEEP_ALL: Conservation = { clientBytesForServer: (client) => client, serverBytesReachClient: true };

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function listenerCounts(s: net.Socket): string {
  return ['data', 'end', 'close', 'error', 'readable'].map((e) => `${e}:${s.listenerCount(e)}`).join(' ');
}

/** Plays `c` against a fresh dialogue of `factory`; `whole`: each stream in one read, delivered before the dialogue starts. */
export async function play(factory: DialogueFactory, c: Conversation, whole: boolean): Promise<Observed> {
  const client = new MemorySocket();
  const upstream = new MemorySocket();
  client.pause();
  upstream.pause();
  const baseline = [client, upstream].map((s) => listenerCounts(s as unknown as net.Socket));
  const clientFirst = factory.firstSpeaker === 'client';
  const opener = clientFirst ? c.client : c.server;
  const firstLength = c.firstLength % (opener.length + 1);
  const first = opener.subarray(0, firstLength);
  const clientStream = clientFirst ? c.client.subarray(firstLength) : c.client;
  const serverStream = clientFirst ? c.server : c.server.subarray(firstLength);

  const clientReads = whole ? [clientStream].filter((b) => b.length > 0) : chunked(clientStream, c.clientCuts);
  const serverReads = whole ? [serverStream].filter((b) => b.length > 0) : chunked(serverStream, c.serverCuts);
  const abort = new AbortController();
  let outcome: UpgradeOutcome | null = null;
  let rejected: unknown = null;

  if (whole) for (const [s, reads] of [[client, clientReads], [upstream, serverReads]] as const) for (const r of reads) s.deliver(r);
  const running = factory
    .create()
    .run(client as unknown as net.Socket, upstream as unknown as net.Socket, first, abort.signal)
    .then(
      (o) => {
        outcome = o;
      },
      (e: unknown) => {
        rejected = e ?? new Error('rejected');
      },
    );

  if (!whole) {
    let ci = 0;
    let si = 0;
    for (let step = 0; ci < clientReads.length || si < serverReads.length; step++) {
      const pickClient = si >= serverReads.length || (ci < clientReads.length && (c.order[step] ?? step % 2 === 0));
      if (c.turns[step] === true) await turn();
      if (pickClient) client.deliver(clientReads[ci++] as Buffer);
      else upstream.deliver(serverReads[si++] as Buffer);
    }
  }
  if (c.clientCloses) client.hangUp();
  if (c.serverCloses) upstream.hangUp();
  await turn();
  await turn();
  const settledItself = outcome !== null || rejected !== null;
  const waitingOn = settledItself ? null : !client.isPaused() ? 'client' : !upstream.isPaused() ? 'upstream' : null;
  if (!settledItself) {
    assert.ok(!(c.clientCloses && c.serverCloses), 'the dialogue did not decide after both peers closed');
    // The caller's upgrade timeout: the dialogue must answer it at once.
    abort.abort();
    await turn();
    await turn();
  }
  await Promise.race([running, turn()]);
  if (rejected !== null) throw new assert.AssertionError({ message: `the dialogue rejected (it must never): ${String(rejected)}` });
  const o = outcome as UpgradeOutcome | null;
  if (o === null) assert.fail('the dialogue did not settle after its abort signal fired');
  if (!settledItself) assert.deepEqual(o, { kind: 'failed', reason: 'aborted' }, 'an aborted dialogue fails with reason "aborted"');

  // The contract on resolve: both sockets paused, with no listeners of the dialogue's, none left on the signal.
  assert.ok(client.isPaused() && upstream.isPaused(), 'both sockets left paused');
  assert.deepEqual([client, upstream].map((s) => listenerCounts(s as unknown as net.Socket)), baseline, 'the dialogue removed its listeners');
  assert.equal(getEventListeners(abort.signal, 'abort').length, 0, 'no listener left on the abort signal');

  // Every byte the peers sent was delivered by now: what a side's reader did not take is still in its socket.
  return {
    kind: o.kind,
    reason: o.kind === 'failed' ? o.reason : null,
    transform: o.kind === 'tls' && o.transform !== undefined,
    toClient: client.written(),
    toUpstream: upstream.written(),
    clientLeft: o.kind === 'failed' ? null : Buffer.concat([o.clientRest, client.unread()]),
    upstreamLeft: o.kind === 'failed' ? null : Buffer.concat([o.upstreamRest, upstream.unread()]),
    waitingOn,
  };
}

/** Whether `small` is a subsequence of `big` (every byte of it, in order, with anything between). */
function isSubsequence(small: Buffer, big: Buffer): boolean {
  let i = 0;
  for (let j = 0; i < small.length && j < big.length; j++) if (big[j] === small[i]) i++;
  return i === small.length;
}

const endsWith = (b: Buffer, tail: Buffer): boolean => tail.length <= b.length && b.subarray(b.length - tail.length).equals(tail);

/** Reasons that come from a thrown TypeError, RangeError, …: a crash the dialogue turned into a failure. */
const CRASH = /^[A-Z][A-Za-z]*Error\b|Cannot read propert|is not a function|is not iterable|out of range/;

/**
 * The properties every dialogue shares:
 * - it settles with one of its three documented outcomes, never rejects, and
 *   a failure's reason is its own, not an exception it caught;
 * - it settles by itself once both peers closed, and at once on abort;
 * - it leaves both sockets paused and without its listeners;
 * - how the bytes were cut into reads and spread over time changes nothing:
 *   the outcome, what each peer was sent, and what is left for each;
 * - nothing is lost or invented: on passthrough the server gets the client's
 *   bytes in order (and the client the server's, where the dialogue edits
 *   nothing); on tls what is left for each side is the tail of what it sent;
 * - what it writes to a peer is bounded by what the other sent.
 */
export async function checkConversation(factory: DialogueFactory, c: Conversation, conservation: Conservation): Promise<Observed> {
  const whole = await play(factory, c, true);
  const pieces = await play(factory, c, false);
  for (const seen of [whole, pieces]) {
    if (seen.kind === 'failed') {
      assert.ok(typeof seen.reason === 'string' && seen.reason.length > 0, 'a failure says why');
      assert.ok(!CRASH.test(seen.reason ?? ''), `the dialogue crashed: ${seen.reason}`);
    }
  }
  assert.deepEqual(pieces, whole, 'the same bytes cut into other reads give another result');
  tally(whole.kind === 'failed' ? `failed: ${(whole.reason ?? '').replace(/\d+/g, 'N')}` : whole.kind);

  const sent = { client: c.client, server: c.server };
  assert.ok(whole.toClient.length <= 4 * sent.server.length + 4096, `wrote ${whole.toClient.length} bytes to the client for ${sent.server.length} from the server`);
  assert.ok(whole.toUpstream.length <= 4 * sent.client.length + 4096, `wrote ${whole.toUpstream.length} bytes to the server for ${sent.client.length} from the client`);
  if (whole.kind === 'passthrough') {
    const forServer = conservation.clientBytesForServer(sent.client, whole);
    assert.ok(isSubsequence(forServer, Buffer.concat([whole.toUpstream, whole.clientLeft as Buffer])), "on passthrough the client's bytes reach the server, in order");
    if (conservation.serverBytesReachClient) {
      assert.ok(isSubsequence(sent.server, Buffer.concat([whole.toClient, whole.upstreamLeft as Buffer])), "on passthrough the server's bytes reach the client, in order");
    }
  }
  if (whole.kind === 'tls') {
    assert.ok(endsWith(sent.client, whole.clientLeft as Buffer), 'on tls what is left of the client is the tail of what it sent');
    assert.ok(endsWith(sent.server, whole.upstreamLeft as Buffer), 'on tls what is left of the server is the tail of what it sent');
  }
  return whole;
}

/** The conversations a dialogue target draws: its corpus's sessions mutated, or streams of its own generators. */
export function conversations(sessions: readonly Session[], clientStreams: fc.Arbitrary<Buffer>, serverStreams: fc.Arbitrary<Buffer>): fc.Arbitrary<Conversation> {
  return fc.record({
    client: bytesInput(sessions.map((s) => s.client), clientStreams, 512),
    server: bytesInput(sessions.map((s) => s.server), serverStreams, 512),
    firstLength: fc.oneof(fc.nat({ max: 64 }), fc.nat({ max: 0xffff })),
    clientCuts: cutPoints,
    serverCuts: cutPoints,
    order: fc.array(fc.boolean(), { maxLength: 24 }),
    turns: fc.array(fc.boolean(), { maxLength: 24 }),
    clientCloses: fc.boolean(),
    serverCloses: fc.boolean(),
  });
}

/** A recorded session: both byte streams of one real conversation. */
export interface Session {
  name: string;
  client: Buffer;
  server: Buffer;
}

/** The corpus's sessions: NAME.client and NAME.server files. */
export function sessionsOf(files: ReadonlyMap<string, Buffer>): Session[] {
  const names = [...files.keys()].filter((f) => f.endsWith('.client')).map((f) => f.slice(0, -'.client'.length));
  return names.map((name) => ({ name, client: files.get(`${name}.client`) as Buffer, server: files.get(`${name}.server`) ?? Buffer.alloc(0) }));
}

/** Each session as recorded: the first speaker's first read as the dialogue's first bytes, both peers closing at the end. */
export function sessionSeeds(sessions: readonly Session[], firstLength: (s: Session) => number): Conversation[] {
  return sessions.map((s) => ({
    client: s.client,
    server: s.server,
    firstLength: firstLength(s),
    clientCuts: [],
    serverCuts: [],
    order: [],
    turns: [],
    clientCloses: true,
    serverCloses: true,
  }));
}

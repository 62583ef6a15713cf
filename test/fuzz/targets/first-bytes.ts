// SPDX-License-Identifier: MIT
// Fuzz target: decideFirstBytes, the verdict the native core asks for on a
// connection's first bytes (plain: relayed natively, never seen by Node).
// Properties: only the three verdicts, never an exception; reset only with
// nothing read and no FIN; and plain only where the Sniffer itself, fed the
// same bytes by adoptConnection (in-memory sockets), relays plaintext: at
// once (or, after a service's FIN, as soon as it reads that), with no other
// event, every byte passed on unchanged each way. Checked
// against two agents: no upgrades and no ACME, and every upgrade on its
// default ports with ACME challenges answered (the ports the core hands over
// at accept excepted, but 80 and 443 kept: decideFirstBytes is right there too).
import assert from 'node:assert/strict';
import type net from 'node:net';
import fc from 'fast-check';
import type { ChallengeResponder } from '../../../src/agent/acme-challenges';
import { type ConnectionDeps, type ConnectionEvents, adoptConnection } from '../../../src/agent/connection';
import { FIRST_VERDICT, decideFirstBytes } from '../../../src/agent/first-bytes';
import { TlsServiceCache } from '../../../src/agent/tls-services';
import { ALL_DIALOGUES } from '../../../src/agent/upgrades';
import { NO_UPGRADES, UpgradeRegistry, parseUpgradePorts } from '../../../src/agent/upgrades/registry';
import { silentLogger } from '../../../src/log';
import { MemorySocket } from '../memory-socket';
import { bytesInput, toBuffer } from '../inputs';
import { tally } from '../tally';
import { type Corpus, type FuzzTarget, filesEnding } from '../target';

export interface FirstBytesInput {
  port: number;
  client: Buffer;
  service: Buffer;
  clientEof: boolean;
  serviceEof: boolean;
}

/** The net.Socket calls the Sniffer and the relay make beyond a Duplex's. */
class FakeSocket extends MemorySocket {
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
}

const UPGRADE_PORTS = parseUpgradePorts('default', ALL_DIALOGUES);
const ALL_UPGRADES = new UpgradeRegistry(UPGRADE_PORTS, ALL_DIALOGUES);
/** Answers every http-01 token; tls-alpn-01 needs a hello, which is never plain. */
const ANSWER_ALL: ChallengeResponder = { http01: () => 'key-authorization', tlsAlpn01: () => null };
const PORTS = [80, 443, 8080, 6379, 5432, 25, 3306, 22, 1];

interface Agent {
  upgrades: UpgradeRegistry;
  challenges?: ChallengeResponder;
}
const AGENTS: Agent[] = [{ upgrades: NO_UPGRADES }, { upgrades: ALL_UPGRADES, challenges: ANSWER_ALL }];

type Call = [keyof ConnectionEvents, ...unknown[]];

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Throws unless the Sniffer, fed `input` by adoptConnection, relays plaintext with every byte unchanged. */
export async function assertSnifferRelaysPlain(input: FirstBytesInput, agent: Agent): Promise<void> {
  const { port, client: clientBytes, service: serviceBytes, clientEof, serviceEof } = input;
  const client = new FakeSocket();
  const upstream = new FakeSocket();
  // A service's FIN first: the Sniffer reads it from the socket, the client's bytes come after it.
  if (serviceEof) upstream.hangUp();
  const fedClient = serviceEof ? Buffer.alloc(0) : clientBytes;
  const calls: Call[] = [];
  const rec =
    (name: keyof ConnectionEvents) =>
    (...args: unknown[]): void => {
      calls.push([name, ...args]);
    };
  let done = 0;
  let upstreamClosed = 0;
  const deps: ConnectionDeps = {
    dial: () => assert.fail('a plaintext relay dials nothing'),
    certs: { contextFor: () => Promise.reject(new Error('no certificates here')) },
    tlsServices: new TlsServiceCache({ ttlMs: 60_000 }),
    upgrades: agent.upgrades,
    ...(agent.challenges ? { challenges: agent.challenges } : {}),
    events: { opened: rec('opened'), bytes: rec('bytes'), handshakeFailed: rec('handshakeFailed'), sessionWithoutData: rec('sessionWithoutData'), upstreamFailed: rec('upstreamFailed'), closed: rec('closed') },
    log: silentLogger,
    opts: { idleTimeoutMs: 60_000, helloTimeoutMs: 60_000, probeTimeoutMs: 60_000 },
  };
  const handle = adoptConnection(
    {
      client: client as unknown as net.Socket,
      upstream: upstream as unknown as net.Socket,
      src: { family: 4, address: '192.0.2.1', port: 40000 },
      dst: { family: 4, address: '192.0.2.2', port },
      clientBytes: fedClient,
      serviceBytes,
      clientEof: clientEof && !serviceEof,
      onUpstreamClosed: () => upstreamClosed++,
    },
    deps,
    () => done++,
  );
  try {
    if (serviceEof) {
      await settle();
      if (clientBytes.length > 0) client.deliver(clientBytes);
    }
    // Decided at once: nothing Node would wait for.
    const seen = calls.filter((c) => c[0] !== 'bytes');
    assert.deepEqual(seen, [['opened', 'plain', port]], `the Sniffer did not relay plaintext at once: ${JSON.stringify(seen)}`);
    // The FIN the core read is read again from a real socket; here it is delivered by hand.
    if (clientEof) client.hangUp();
    await settle();
    await settle();
    assert.ok(upstream.written().equals(clientBytes), 'the client\'s bytes reach the service unchanged');
    assert.ok(client.written().equals(serviceBytes), 'the service\'s bytes reach the client unchanged');
    assert.equal(upstream.writableEnded, clientEof, 'the client\'s FIN is passed on, and only it');
  } finally {
    handle.destroy();
  }
  for (let i = 0; i < 10 && (done === 0 || upstreamClosed === 0); i++) await settle();
  assert.equal(done, 1, 'onDone once');
  assert.equal(upstreamClosed, 1, 'onUpstreamClosed once');
}

export async function checkFirstBytes(input: FirstBytesInput): Promise<void> {
  const { port, client, service, clientEof, serviceEof } = input;
  const v = decideFirstBytes(port, client, service, clientEof, serviceEof);
  assert.ok(v === FIRST_VERDICT.plain || v === FIRST_VERDICT.takeOver || v === FIRST_VERDICT.reset, `not a verdict: ${String(v)}`);
  tally(v === FIRST_VERDICT.plain ? 'plain' : v === FIRST_VERDICT.takeOver ? 'takeOver' : 'reset');
  if (v === FIRST_VERDICT.reset) {
    assert.ok(client.length === 0 && service.length === 0 && !clientEof && !serviceEof, 'reset only with nothing read and no FIN');
    return;
  }
  if (v !== FIRST_VERDICT.plain) return;
  for (const agent of AGENTS) {
    // Precondition: a port with a configured upgrade dialogue is handed over at accept.
    if (agent.upgrades !== NO_UPGRADES && UPGRADE_PORTS.has(port)) continue;
    await assertSnifferRelaysPlain(input, agent);
  }
}

/** Openings Node must look at, whole and cut short, with anything after them. */
const opening: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.constantFrom(
      Buffer.from('0000000804d2162f', 'hex'),
      Buffer.from('0000000804d21630', 'hex'),
      Buffer.from('000000100004d2162e', 'hex'),
      Buffer.from('GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0 HTTP/1.1\r\n'),
      Buffer.from('GET / HTTP/1.1\r\n'),
      Buffer.from('160301', 'hex'),
      Buffer.from('1603', 'hex'),
      Buffer.from('1600', 'hex'),
      Buffer.from('16', 'hex'),
    ),
    fc.nat({ max: 120 }),
    fc.uint8Array({ maxLength: 64 }),
  )
  .map(([o, keep, tail]) => Buffer.concat([o.subarray(0, keep), toBuffer(tail)]));

export const firstBytesTarget: FuzzTarget<FirstBytesInput> = {
  name: 'first-bytes',
  corpusDirs: ['test/fuzz/corpus/client-hello', 'test/fuzz/corpus/acme-http01', 'test/fuzz/corpus/postgres', 'test/fuzz/corpus/smtp'],
  smokeRuns: 10_000,
  async: true,

  seeds: (corpus: Corpus) => {
    const clients = [...filesEnding(corpus, '.bin'), ...filesEnding(corpus, '.client')];
    const servers = filesEnding(corpus, '.server');
    const out: FirstBytesInput[] = [];
    for (const port of PORTS) {
      for (const client of clients) for (const clientEof of [false, true]) out.push({ port, client, service: Buffer.alloc(0), clientEof, serviceEof: false });
      for (const service of servers) out.push({ port, client: Buffer.alloc(0), service, clientEof: false, serviceEof: false });
    }
    return out;
  },

  input: (corpus: Corpus) => {
    const clientSeeds = [...filesEnding(corpus, '.bin'), ...filesEnding(corpus, '.client')];
    const serverSeeds = filesEnding(corpus, '.server');
    const empty = fc.constant(Buffer.alloc(0));
    return fc.record({
      port: fc.oneof(fc.constantFrom(...PORTS), fc.integer({ min: 1, max: 65535 })),
      client: fc.oneof({ weight: 1, arbitrary: empty }, { weight: 6, arbitrary: bytesInput(clientSeeds, opening, 512) }),
      service: fc.oneof({ weight: 4, arbitrary: empty }, { weight: 1, arbitrary: bytesInput(serverSeeds, undefined, 256) }),
      clientEof: fc.boolean(),
      serviceEof: fc.oneof({ weight: 7, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    });
  },

  check: checkFirstBytes,
};

// SPDX-License-Identifier: MIT
// The native relay (native/src/plane/relay.cc) on real loopback TCP connections:
// byte-exact transfers both ways, pending bytes first, half-close each way, resets
// carried across, the splice path for bulk, backpressure, the owner's closes, the
// sink told once, no fd left behind. The "peer" is the test's client end, the
// "service" the far end of the upstream connection; the relay holds the two middle fds.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { openSync } from 'node:fs';
import net from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { errorCodeAtClose, readN } from '../../helpers/clients';
import { countFds } from '../../helpers/fds';
import { native, type NativeRelayReason, type RelayForTests, type RelayForTestsOptions } from '../../../src/native';

const MiB = 1024 * 1024;
/** A hung test fails on its own instead of stalling the file. */
const LIMIT = { timeout: 30_000 };

interface Ended {
  reason: NativeRelayReason;
  bytesIn: number;
  bytesOut: number;
}

interface Rig {
  peer: net.Socket;
  service: net.Socket;
  relay: RelayForTests;
  ended: Promise<Ended>;
  /** Error code (or null) each end saw by the time it closed. */
  peerSaw: Promise<string | null>;
  serviceSaw: Promise<string | null>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


function socketOf(fd: number): net.Socket {
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
}

function makeRig(t: TestContext, opts: RelayForTestsOptions = {}): Rig {
  const n = native();
  const [peerFd, clientFd] = n.tcpPairForTests();
  const [upstreamFd, serviceFd] = n.tcpPairForTests();
  return startRig(t, opts, socketOf(peerFd), clientFd, upstreamFd, socketOf(serviceFd));
}

/** A rig whose client fd already holds `prefill` (sent by the peer, unread) when the relay starts. */
async function makeRigPrefilled(t: TestContext, opts: RelayForTestsOptions, prefill: Buffer): Promise<Rig> {
  const n = native();
  const [peerFd, clientFd] = n.tcpPairForTests();
  const [upstreamFd, serviceFd] = n.tcpPairForTests();
  const peer = socketOf(peerFd);
  peer.write(prefill);
  while (peer.writableLength > 0) await sleep(5);
  await sleep(20); // loopback delivery into clientFd's receive queue
  return startRig(t, opts, peer, clientFd, upstreamFd, socketOf(serviceFd));
}

function startRig(t: TestContext, opts: RelayForTestsOptions, peer: net.Socket, clientFd: number, upstreamFd: number, service: net.Socket): Rig {
  const n = native();
  const peerSaw = errorCodeAtClose(peer);
  const serviceSaw = errorCodeAtClose(service);
  let resolveEnded: (e: Ended) => void = () => undefined;
  const ended = new Promise<Ended>((resolve) => {
    resolveEnded = resolve;
  });
  const relay = n.relayForTests(clientFd, upstreamFd, opts, (reason, bytesIn, bytesOut) => {
    resolveEnded({ reason, bytesIn, bytesOut });
  });
  t.after(() => {
    relay.close('aborted');
    peer.destroy();
    service.destroy();
  });
  return { peer, service, relay, ended, peerSaw, serviceSaw };
}

/** Reads `s` to EOF: length and sha256. */
function readToEnd(s: net.Socket): Promise<{ length: number; sha: string }> {
  const h = createHash('sha256');
  let length = 0;
  s.on('data', (chunk: Buffer) => {
    h.update(chunk);
    length += chunk.length;
  });
  return new Promise((resolve) => s.once('end', () => resolve({ length, sha: h.digest('hex') })));
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Waits until sample() has not changed for `quietPolls` polls in a row (or 20 s). */
async function steady(sample: () => number, quietPolls = 10, pollMs = 25): Promise<number> {
  let last = -1;
  let quiet = 0;
  const deadline = Date.now() + 20_000;
  while (quiet < quietPolls) {
    assert.ok(Date.now() < deadline, 'transfer never stalled');
    await new Promise((r) => setTimeout(r, pollMs));
    const v = sample();
    if (v === last) quiet++;
    else {
      last = v;
      quiet = 0;
    }
  }
  return last;
}

const openFds = (): number => countFds(process.pid);

describe('native relay', () => {
  test('echo both ways; EOF each way ends it as done with exact counts', LIMIT, async (t) => {
    const r = makeRig(t);
    const atService = readN(r.service, 5);
    r.peer.write('hello');
    assert.equal((await atService).toString(), 'hello');
    const atPeer = readN(r.peer, 6);
    r.service.write('world!');
    assert.equal((await atPeer).toString(), 'world!');
    const serviceEnd = once(r.service, 'end');
    r.peer.end();
    await serviceEnd;
    const peerEnd = once(r.peer, 'end');
    r.service.end();
    await peerEnd;
    assert.deepEqual(await r.ended, { reason: 'done', bytesIn: 5, bytesOut: 6 });
    assert.equal(await r.peerSaw, null);
    assert.equal(await r.serviceSaw, null);
    assert.equal(r.relay.toldCount(), 1);
  });

  test('pending bytes are written first, each way, and counted', LIMIT, async (t) => {
    const r = makeRig(t, { pendingUp: Buffer.from('GET / HTTP/1.1\r\n'), pendingDown: Buffer.from('220 ready\r\n') });
    const atService = readN(r.service, 16 + 6);
    const atPeer = readN(r.peer, 11 + 4);
    r.peer.write('Host:');
    r.peer.write(' ');
    r.service.write('more');
    assert.equal((await atService).toString(), 'GET / HTTP/1.1\r\nHost: ');
    assert.equal((await atPeer).toString(), '220 ready\r\nmore');
    r.peer.end();
    r.service.end();
    assert.deepEqual(await r.ended, { reason: 'done', bytesIn: 22, bytesOut: 15 });
  });

  test('a client EOF read before the relay started shuts the upstream after the pending bytes', LIMIT, async (t) => {
    const r = makeRig(t, { pendingUp: Buffer.from('QUIT\r\n'), clientEof: true });
    r.peer.end(); // what the core had seen
    assert.deepEqual(await readToEnd(r.service), { length: 6, sha: sha(Buffer.from('QUIT\r\n')) });
    const atPeer = readToEnd(r.peer);
    r.service.end('bye');
    assert.equal((await atPeer).length, 3);
    assert.equal((await r.ended).reason, 'done');
  });

  test('client half-close: a client that shut its write side still gets the whole response', LIMIT, async (t) => {
    const r = makeRig(t);
    const response = randomBytes(4 * MiB);
    const request = await (async () => {
      const atService = readToEnd(r.service);
      r.peer.end('GET /big\r\n');
      return atService;
    })();
    assert.equal(request.length, 10);
    const atPeer = readToEnd(r.peer);
    r.service.end(response);
    assert.deepEqual(await atPeer, { length: response.length, sha: sha(response) });
    assert.deepEqual(await r.ended, { reason: 'done', bytesIn: 10, bytesOut: response.length });
    assert.equal(await r.peerSaw, null);
    assert.equal(await r.serviceSaw, null);
  });

  test('upstream half-close: a service that shut its write side still gets what the client sends after', LIMIT, async (t) => {
    const r = makeRig(t);
    const upload = randomBytes(4 * MiB);
    const atPeer = readToEnd(r.peer);
    r.service.end('send it\r\n');
    assert.equal((await atPeer).length, 9);
    const atService = readToEnd(r.service);
    r.peer.end(upload);
    assert.deepEqual(await atService, { length: upload.length, sha: sha(upload) });
    assert.deepEqual(await r.ended, { reason: 'done', bytesIn: upload.length, bytesOut: 9 });
  });

  test('a client reset is carried to the service as a reset', LIMIT, async (t) => {
    const r = makeRig(t);
    const atService = readN(r.service, 2);
    r.peer.write('hi');
    await atService;
    r.peer.resetAndDestroy();
    assert.equal(await r.serviceSaw, 'ECONNRESET');
    assert.deepEqual(await r.ended, { reason: 'client-reset', bytesIn: 2, bytesOut: 0 });
  });

  test('an upstream reset is carried to the client as a reset', LIMIT, async (t) => {
    const r = makeRig(t);
    const atPeer = readN(r.peer, 3);
    r.service.write('hey');
    await atPeer;
    r.service.resetAndDestroy();
    assert.equal(await r.peerSaw, 'ECONNRESET');
    assert.deepEqual(await r.ended, { reason: 'upstream-reset', bytesIn: 0, bytesOut: 3 });
  });

  test('bytes a service sent just before its reset reach the client, then the reset', LIMIT, async (t) => {
    for (let i = 0; i < 10; i++) {
      const r = makeRig(t);
      const parts: Buffer[] = [];
      r.peer.on('data', (chunk: Buffer) => parts.push(chunk));
      // The response and the RST are both queued at the relay's upstream fd
      // before it reads: the bytes go first, as a recv() returns them first.
      r.service.write('HTTP/1.1 400 Bad Request\r\n\r\n');
      r.service.resetAndDestroy();
      assert.equal((await r.ended).reason, 'upstream-reset');
      assert.match(String(await r.peerSaw), /^(ECONNRESET|EPIPE)$/);
      assert.equal(Buffer.concat(parts).toString(), 'HTTP/1.1 400 Bad Request\r\n\r\n');
      assert.equal(r.relay.bytesOut(), 28);
    }
  });

  test('a side that reset after its input ended, with nothing to write to it, is seen at once', LIMIT, async (t) => {
    const r = makeRig(t);
    r.peer.resume();
    const peerEnd = once(r.peer, 'end');
    r.service.end('bye');
    await peerEnd;
    // No syscall of the relay touches the upstream fd any more: only its
    // error (EPOLLERR, SO_ERROR) tells the relay.
    r.service.resetAndDestroy();
    assert.deepEqual(await r.ended, { reason: 'upstream-reset', bytesIn: 0, bytesOut: 3 });
    r.peer.write('anyone?');
    assert.match(String(await r.peerSaw), /^(ECONNRESET|EPIPE)$/);
  });

  test('a reset after a half-close is still carried across', LIMIT, async (t) => {
    const r = makeRig(t);
    const atService = readToEnd(r.service);
    r.peer.end('done talking');
    await atService;
    const atPeer = readN(r.peer, 4);
    r.service.write('wait');
    await atPeer;
    r.service.resetAndDestroy();
    assert.equal(await r.peerSaw, 'ECONNRESET');
    assert.equal((await r.ended).reason, 'upstream-reset');
  });

  for (const splice of [true, false]) {
    test(`bulk: 64 MiB each way at once arrive byte-exact ${splice ? 'through pooled pipes (splice)' : 'through buffers (splice off)'}`, LIMIT, async (t) => {
      const r = makeRig(t, { spliceAfterBytes: splice ? 4096 : 0 });
      const up = randomBytes(64 * MiB);
      const down = randomBytes(64 * MiB);
      const atService = readToEnd(r.service);
      const atPeer = readToEnd(r.peer);
      r.peer.end(up);
      r.service.end(down);
      assert.deepEqual(await atService, { length: up.length, sha: sha(up) });
      assert.deepEqual(await atPeer, { length: down.length, sha: sha(down) });
      assert.deepEqual(await r.ended, { reason: 'done', bytesIn: up.length, bytesOut: down.length });
      if (splice) {
        // All but the first reads of each direction went through a pipe.
        assert.ok(r.relay.splicedBytes() > up.length + down.length - 4 * MiB, `spliced ${r.relay.splicedBytes()}`);
        // Emptied pipes went back to the pool, at most one per direction.
        assert.ok(r.relay.pipesOpen() >= 1 && r.relay.pipesOpen() <= 2, `pipes ${r.relay.pipesOpen()}`);
      } else {
        assert.equal(r.relay.splicedBytes(), 0);
        assert.equal(r.relay.pipesOpen(), 0);
      }
    });
  }

  test('with no pipe to be had (pipesMax 0) bulk stays on buffers, byte-exact', LIMIT, async (t) => {
    const r = makeRig(t, { spliceAfterBytes: 4096, pipesMax: 0 });
    const up = randomBytes(16 * MiB);
    const atService = readToEnd(r.service);
    r.peer.resume();
    r.peer.end(up);
    assert.deepEqual(await atService, { length: up.length, sha: sha(up) });
    r.service.end();
    assert.deepEqual(await r.ended, { reason: 'done', bytesIn: up.length, bytesOut: 0 });
    assert.equal(r.relay.splicedBytes(), 0);
    assert.equal(r.relay.pipesOpen(), 0);
  });

  test('pipes in use and pooled stay within pipesPooled once the flows go quiet', LIMIT, async (t) => {
    const r = makeRig(t, { spliceAfterBytes: 4096, pipesPooled: 0 });
    const up = randomBytes(8 * MiB);
    const atService = readToEnd(r.service);
    r.peer.resume();
    r.peer.end(up);
    assert.deepEqual(await atService, { length: up.length, sha: sha(up) });
    assert.ok(r.relay.splicedBytes() > 0);
    // The direction ended with its pipe empty, and the pool keeps none.
    assert.equal(r.relay.pipesOpen(), 0);
    r.service.end();
    assert.equal((await r.ended).reason, 'done');
  });

  test('events already fetched in the batch that closed the relay are ignored', LIMIT, async (t) => {
    for (let i = 0; i < 20; i++) {
      const r = makeRig(t);
      r.peer.resume();
      // Both fds become ready before the next epoll_wait: the reset closes the
      // relay (which the sink retires) and the service's bytes reach a closed relay.
      r.peer.resetAndDestroy();
      r.service.write(randomBytes(1000));
      r.service.resume();
      assert.equal((await r.ended).reason, 'client-reset');
      assert.equal(await r.serviceSaw, 'ECONNRESET');
      assert.equal(r.relay.toldCount(), 1);
    }
  });

  test('bytes already queued past one event\'s read budget are all relayed (the source is re-armed)', LIMIT, async (t) => {
    // 1 KiB reads, 16 per event: 48 KiB queued before the start and no further
    // edge from the peer, so only the re-armed source brings the rest.
    const data = randomBytes(48 * 1024);
    const r = await makeRigPrefilled(t, { bufferBytes: 1024, spliceAfterBytes: 0 }, data);
    const got = readN(r.service, data.length);
    const stalled = sleep(5_000).then(() => null);
    const result = await Promise.race([got, stalled]);
    assert.ok(result !== null, `stalled at ${r.relay.bytesIn()} of ${data.length} bytes`);
    assert.equal(sha(result), sha(data));
  });

  test('a flow that never fills a read stays off the splice path', LIMIT, async (t) => {
    const r = makeRig(t, { bufferBytes: 16 * 1024, spliceAfterBytes: 4096 });
    for (let i = 0; i < 20; i++) {
      const got = readN(r.service, 1000);
      r.peer.write(randomBytes(1000));
      await got;
      r.service.removeAllListeners('data');
    }
    assert.equal(r.relay.bytesIn(), 20_000);
    assert.equal(r.relay.splicedBytes(), 0);
    assert.equal(r.relay.pipesOpen(), 0);
  });

  for (const dir of ['in', 'out'] as const) for (const splice of [false, true]) {
    const what = dir === 'in' ? 'client→upstream' : 'upstream→client';
    test(`backpressure ${what}${splice ? ', splice' : ''}: a reader that does not read stops the relay reading, buffers bounded, nothing lost`, LIMIT, async (t) => {
      const bufferBytes = 16 * 1024;
      const pipeBytes = 64 * 1024;
      const r = makeRig(t, { bufferBytes, pipeBytes, spliceAfterBytes: splice ? 4096 : 0 });
      const [sender, receiver] = dir === 'in' ? [r.peer, r.service] : [r.service, r.peer];
      const moved = dir === 'in' ? (): number => r.relay.bytesIn() : (): number => r.relay.bytesOut();
      const data = randomBytes(64 * MiB);
      receiver.pause();
      sender.end(data);
      const stalledAt = await steady(moved);
      assert.ok(stalledAt < data.length, 'the relay stopped short of the whole transfer');
      // The relay stopped reading: the sender is left holding bytes.
      assert.ok(sender.writableLength > 0, 'the sender still holds bytes');
      const held = r.relay.bufferedBytes();
      assert.ok(held <= (splice ? pipeBytes : bufferBytes), `relay holds ${held} bytes`);
      const atReceiver = readToEnd(receiver);
      receiver.resume();
      assert.deepEqual(await atReceiver, { length: data.length, sha: sha(data) });
      assert.equal(moved(), data.length);
      assert.equal(r.relay.bufferedBytes(), 0);
      if (splice) assert.ok(r.relay.splicedBytes() > 0);
    });
  }

  test('close(idle): a plain close both ways (FIN), reason idle, told once', LIMIT, async (t) => {
    const r = makeRig(t);
    const atService = readN(r.service, 1);
    r.peer.write('x');
    await atService;
    const peerEnd = once(r.peer, 'end');
    const serviceEnd = once(r.service, 'end');
    r.relay.close('idle');
    r.relay.close('aborted'); // already closed: no second report
    await Promise.all([peerEnd, serviceEnd]);
    r.peer.end();
    r.service.end();
    assert.equal(await r.peerSaw, null);
    assert.equal(await r.serviceSaw, null);
    assert.deepEqual(await r.ended, { reason: 'idle', bytesIn: 1, bytesOut: 0 });
    assert.equal(r.relay.toldCount(), 1);
    assert.ok(r.relay.closed());
  });

  test('close(aborted): resets both ways, reason aborted, told once', LIMIT, async (t) => {
    const r = makeRig(t);
    r.peer.resume();
    r.service.resume();
    r.relay.close('aborted');
    r.relay.close('idle');
    assert.equal(await r.peerSaw, 'ECONNRESET');
    assert.equal(await r.serviceSaw, 'ECONNRESET');
    assert.deepEqual(await r.ended, { reason: 'aborted', bytesIn: 0, bytesOut: 0 });
    assert.equal(r.relay.toldCount(), 1);
  });

  test('a relay that ended on its own is told once, and a later close is a no-op', LIMIT, async (t) => {
    const r = makeRig(t);
    r.peer.resume();
    r.service.resume();
    r.peer.end();
    r.service.end();
    assert.equal((await r.ended).reason, 'done');
    r.relay.close('aborted');
    await sleep(20);
    assert.equal(r.relay.toldCount(), 1);
    assert.equal(await r.peerSaw, null);
  });

  test('lastActivityMs moves with every byte, either way', LIMIT, async (t) => {
    const r = makeRig(t);
    const start = r.relay.lastActivityMs();
    await sleep(60);
    assert.equal(r.relay.lastActivityMs(), start, 'no byte, no activity');
    const atService = readN(r.service, 1);
    r.peer.write('a');
    await atService;
    const afterIn = r.relay.lastActivityMs();
    assert.ok(afterIn >= start + 50, `in: ${afterIn - start} ms`);
    await sleep(60);
    const atPeer = readN(r.peer, 1);
    r.service.write('b');
    await atPeer;
    assert.ok(r.relay.lastActivityMs() >= afterIn + 50, 'out');
  });

  test('a relay that cannot start (an fd epoll refuses) is closed at once: reason aborted, the upstream reset, no fd left', LIMIT, async () => {
    await sleep(20);
    const before = openFds();
    const n = native();
    const fileFd = openSync(__filename, 'r'); // epoll_ctl: EPERM on a regular file
    const [upstreamFd, serviceFd] = n.tcpPairForTests();
    const service = socketOf(serviceFd);
    const serviceSaw = errorCodeAtClose(service);
    service.resume();
    const told: NativeRelayReason[] = [];
    assert.throws(
      () => n.relayForTests(fileFd, upstreamFd, {}, (reason) => told.push(reason)),
      { code: 'EPERM' },
    );
    assert.deepEqual(told, ['aborted']);
    assert.equal(await serviceSaw, 'ECONNRESET');
    await sleep(50);
    assert.equal(openFds(), before);
  });

  test('no fd is left open after relays end every way (done, reset, aborted, idle, spliced bulk)', LIMIT, async (t) => {
    await sleep(20);
    const before = openFds();
    {
      const r = makeRig(t);
      r.peer.resume();
      r.service.resume();
      r.peer.end();
      r.service.end();
      await Promise.all([r.ended, r.peerSaw, r.serviceSaw]);
    }
    {
      const r = makeRig(t);
      r.service.resume();
      r.peer.resetAndDestroy();
      await Promise.all([r.ended, r.peerSaw, r.serviceSaw]);
    }
    for (const reason of ['aborted', 'idle'] as const) {
      const r = makeRig(t);
      r.peer.resume();
      r.service.resume();
      r.peer.on('end', () => r.peer.end());
      r.service.on('end', () => r.service.end());
      r.relay.close(reason);
      await Promise.all([r.ended, r.peerSaw, r.serviceSaw]);
    }
    {
      const r = makeRig(t);
      const data = randomBytes(8 * MiB);
      const atService = readToEnd(r.service);
      r.peer.resume();
      r.peer.end(data);
      await atService;
      assert.ok(r.relay.pipesOpen() > 0);
      r.service.end();
      await Promise.all([r.ended, r.peerSaw, r.serviceSaw]);
    }
    await sleep(50); // the rigs' pollers and pipe pools go from a timer
    assert.equal(openFds(), before);
  });
});

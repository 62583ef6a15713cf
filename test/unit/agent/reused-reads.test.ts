// SPDX-License-Identifier: MIT
// adoptWithReusedReads(): the accepted socket handed over to one that reads
// through ReusedReads, with the server's bookkeeping intact. The byte paths
// themselves are covered by relay.test.ts and connection.test.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { adoptWithReusedReads, readsOf, socketWithReusedReads } from '../../../src/agent/reused-reads';
import { HOST, listen } from './loopback';

/** A hung test fails on its own instead of stalling the file. */
const LIMIT = { timeout: 20_000 };

function connections(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

describe('adoptWithReusedReads', () => {
  test('the adopted socket carries the connection both ways, and the server counts it once', LIMIT, async (t) => {
    const adopted: net.Socket[] = [];
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (accepted) => {
      const s = adoptWithReusedReads(accepted);
      adopted.push(s);
      s.on('data', (chunk: Buffer) => s.write(chunk));
      s.on('end', () => s.end());
    });
    const port = await listen(server);
    const client = net.connect({ host: HOST, port });
    t.after(() => {
      for (const s of [client, ...adopted]) s.destroy();
      server.close();
    });
    await once(client, 'connect');
    client.write('hello');
    const [echo] = (await once(client, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'hello');
    const s = adopted[0] as net.Socket;
    assert.ok(readsOf(s), 'reads go through ReusedReads');
    assert.equal(s.remotePort, client.localPort);
    assert.equal(s.localPort, port);
    assert.equal(await connections(server), 1);
    client.end();
    await once(s, 'close');
    assert.equal(await connections(server), 0);
    // close() completes only when the server counts no connection left.
    server.close();
    await once(server, 'close');
  });

  test('maxConnections still applies to adopted connections', LIMIT, async (t) => {
    const held: net.Socket[] = [];
    const server = net.createServer({ pauseOnConnect: true }, (accepted) => {
      held.push(adoptWithReusedReads(accepted));
    });
    server.maxConnections = 1;
    const port = await listen(server);
    t.after(() => {
      for (const s of held) s.destroy();
      server.close();
    });
    const first = net.connect({ host: HOST, port });
    await once(first, 'connect');
    while (held.length < 1) await new Promise((r) => setTimeout(r, 5));
    const dropped = once(server, 'drop');
    const second = net.connect({ host: HOST, port });
    second.on('error', () => undefined);
    await dropped;
    assert.equal(held.length, 1);
    first.destroy();
    second.destroy();
  });

  test('a socket that is already gone is returned as it is', async (t) => {
    const server = net.createServer({ pauseOnConnect: true });
    const port = await listen(server);
    t.after(() => server.close());
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const client = net.connect({ host: HOST, port });
    const [sock] = await accepted;
    sock.destroy();
    assert.equal(adoptWithReusedReads(sock), sock);
    client.destroy();
  });
});

describe('ReusedReads', () => {
  test('a chunk handed over as not borrowed is the sink\'s to keep: later reads of any socket leave it intact', LIMIT, async (t) => {
    const services: net.Socket[] = [];
    const server = net.createServer((s) => services.push(s));
    const port = await listen(server);
    const sockets = [0, 1].map(() => socketWithReusedReads({}).connect({ host: HOST, port }));
    t.after(() => {
      for (const s of [...sockets, ...services]) s.destroy();
      server.close();
    });
    await Promise.all(sockets.map((s) => once(s, 'connect')));
    while (services.length < 2) await new Promise((r) => setTimeout(r, 5));
    // Kept chunks, per socket, and what each was when it arrived.
    const kept: Buffer[][] = [[], []];
    const seen: string[][] = [[], []];
    let arrived = 0;
    sockets.forEach((s, i) =>
      readsOf(s)?.setSink((chunk, borrowed) => {
        assert.equal(borrowed, false, 'small reads are never borrowed');
        kept[i]?.push(chunk);
        seen[i]?.push(chunk.toString());
        arrived++;
        return true;
      }),
    );
    sockets.forEach((s) => s.resume());
    // Small writes, one at a time, alternating sockets: each read lands in the shared buffer.
    const messages = ['first-a', 'first-b', 'second-a', 'second-b', 'third-a', 'third-b'];
    for (const [k, m] of messages.entries()) {
      (services[k % 2] as net.Socket).write(m);
      while (arrived <= k) await new Promise((r) => setImmediate(r));
    }
    for (const i of [0, 1]) {
      assert.deepEqual(kept[i]?.map((c) => c.toString()), seen[i], `socket ${i}: kept chunks unchanged`);
      assert.deepEqual(seen[i], messages.filter((_, k) => k % 2 === i));
    }
  });
});

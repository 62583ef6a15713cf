// SPDX-License-Identifier: MIT
// Guards the sniffer against hostile first bytes: truncated, oversized and
// garbled ClientHellos, random bytes, and clients that stall or dribble are
// each closed within bounded time (a stall by jfe's --hello-timeout), leave no
// socket behind, and never delay other clients' TLS and plaintext requests nor
// take the agent down.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { type Received, connectRaw, httpGet, jfePids, receiveAll, waitSteered } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { REPO_ROOT, run, runSync } from '../helpers/spawn';

const HELLO_TIMEOUT_MS = 2000;
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'client-hello');
const COPIES = 10;
const STALLED = 100;

function record(type: number, fragment: Buffer): Buffer {
  const h = Buffer.from([type, 0x03, 0x01, 0, 0]);
  h.writeUInt16BE(fragment.length, 3);
  return Buffer.concat([h, fragment]);
}

/** A handshake message header: client_hello (1) claiming `length` bytes of body. */
function helloHeader(length: number): Buffer {
  return Buffer.from([0x01, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Hostile {
  name: string;
  /** Sends the hostile bytes on a connected socket (and maybe ends it); may take a while. */
  send(sock: import('node:net').Socket): Promise<void>;
  /** How long the connection may stay open after the first byte, at most. */
  closedWithinMs: number;
  /** Closed by jfe's hello timeout: not before it. */
  byHelloTimeout?: boolean;
}

test('hostile first bytes are closed in bounded time; others are served meanwhile', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl', 'ss'])) return;
  const w = createWorld(t);
  await startNginx(w);
  const jfe = await startJfe(w, ['--hello-timeout', `${HELLO_TIMEOUT_MS / 1000}s`]);
  await waitSteered(w, 8080);
  const ca = fs.readFileSync(jfe.caFile, 'utf8');
  const pidsBefore = jfePids(jfe).sort();
  const fixtures = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.bin')).map((f) => fs.readFileSync(path.join(FIXTURES, f)));
  const valid = fs.readFileSync(path.join(FIXTURES, 'curl-http11-sni.bin'));

  const write = (sock: import('node:net').Socket, b: Buffer): Promise<void> =>
    new Promise((resolve) => {
      if (sock.destroyed) return resolve();
      sock.write(b, () => resolve());
    });

  const hostiles: Hostile[] = [
    ...fixtures.map(
      (hello, k): Hostile => ({
        name: `valid hello #${k} cut in the middle, then FIN`,
        send: async (s) => void s.end(hello.subarray(0, Math.floor(hello.length / 2))),
        closedWithinMs: 5000,
      }),
    ),
    {
      name: 'hello claiming a 1 MiB handshake (> 64 KiB)',
      send: (s) => write(s, record(22, Buffer.concat([helloHeader(1 << 20), crypto.randomBytes(200)]))),
      closedWithinMs: 5000,
    },
    {
      name: 'hello claiming 70 KiB, and 80 KiB of it actually sent',
      send: async (s) => {
        const body = crypto.randomBytes(80 * 1024);
        const hs = Buffer.concat([helloHeader(70 * 1024), body]);
        for (let off = 0; off < hs.length && !s.destroyed; off += 16384) await write(s, record(22, hs.subarray(off, off + 16384)));
      },
      closedWithinMs: 5000,
    },
    {
      name: 'hello claiming 60 KiB (under the bound), all sent, garbage inside',
      send: async (s) => {
        const hs = Buffer.concat([helloHeader(60 * 1024), crypto.randomBytes(60 * 1024)]);
        hs[4] = 0x03; // legacy_version major, so the body is read before being refused
        for (let off = 0; off < hs.length && !s.destroyed; off += 16000) await write(s, record(22, hs.subarray(off, off + 16000)));
      },
      closedWithinMs: 5000,
    },
    {
      name: 'garbage after 0x16 0x03 (record length 0xffff)',
      send: (s) => write(s, Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), crypto.randomBytes(2000)])),
      closedWithinMs: 5000,
    },
    {
      name: 'garbage after 0x16 0x03 (a record that is not a client hello)',
      send: (s) => write(s, Buffer.concat([Buffer.from([0x16, 0x03, 0x03, 0x00, 0x40, 0x02]), crypto.randomBytes(63)])),
      closedWithinMs: 5000,
    },
    {
      name: 'random bytes after 0x16 0x03',
      send: (s) => write(s, Buffer.concat([Buffer.from([0x16, 0x03]), crypto.randomBytes(3000)])),
      // A random record length may look plausible: then only the hello timeout ends it.
      closedWithinMs: HELLO_TIMEOUT_MS + 4000,
    },
    {
      name: 'random bytes (not TLS: forwarded to nginx, which refuses them)',
      send: (s) => {
        const b = crypto.randomBytes(4096);
        b[0] = 0x80 | (b[0] ?? 0); // never 0x16
        return write(s, b);
      },
      closedWithinMs: 5000,
    },
    {
      name: 'one byte (0x16), then nothing',
      send: (s) => write(s, Buffer.from([0x16])),
      closedWithinMs: HELLO_TIMEOUT_MS + 4000,
      byHelloTimeout: true,
    },
    {
      name: 'a valid hello dribbled one byte every 200 ms',
      send: async (s) => {
        for (let i = 0; i < valid.length && !s.destroyed; i++) {
          await write(s, valid.subarray(i, i + 1));
          await sleep(200);
        }
      },
      closedWithinMs: HELLO_TIMEOUT_MS + 4000,
      byHelloTimeout: true,
    },
    {
      name: 'a whole valid hello, then silence (handshake never finished)',
      send: (s) => write(s, valid),
      // The probe of the service (at most --probe-timeout, 1 s) comes first.
      closedWithinMs: HELLO_TIMEOUT_MS + 5000,
    },
  ];

  /** One hostile connection: resolves with how it ended, measured from its first byte. */
  const attack = async (h: Hostile): Promise<{ h: Hostile; r: Received }> => {
    const sock = await connectRaw(w.cli, w.srv4, 8080);
    sock.on('error', () => undefined); // writes after jfe's reset
    const got = receiveAll(sock, h.closedWithinMs + 5000);
    await h.send(sock).catch(() => undefined);
    return { h, r: await got };
  };

  await t.test('every hostile connection is closed in bounded time; others are served meanwhile', async () => {
    const stalled = hostiles.find((h) => h.name.startsWith('one byte')) as Hostile;
    const attacks = [...hostiles.flatMap((h) => Array.from({ length: COPIES }, () => attack(h))), ...Array.from({ length: STALLED }, () => attack(stalled))];
    let attacking = true;
    const all = Promise.all(attacks).finally(() => (attacking = false));

    // While the attacks are in progress (the stalled ones last the hello timeout),
    // TLS and plaintext requests from the same client namespace keep being answered.
    // Counted by whether the attacks were still on when a pair was sent, not by how
    // many pairs fit in the attack's time (that depends on how busy the machine is).
    await sleep(300);
    let served = 0;
    let sentWhileAttacked = 0;
    do {
      const t0 = Date.now();
      if (attacking) sentWhileAttacked += 2;
      assert.equal(await httpGet(w.cli, w.srv4, 8080, '/', undefined, 5000), 'nginx-plain\n');
      assert.equal(await httpGet(w.cli, w.srv4, 8080, '/', ca, 5000), 'nginx-plain\n');
      served += 2;
      if (Date.now() - t0 < 100) await sleep(100 - (Date.now() - t0));
    } while (attacking && served < 200);
    assert.ok(sentWhileAttacked >= 2, `requests sent while attacked: ${sentWhileAttacked}`);
    t.diagnostic(`requests served while attacked: ${sentWhileAttacked} of ${served}`);
    const curl = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '5', '--cacert', jfe.caFile, `https://${w.srv4}:8080/`]);
    assert.equal(curl.stdout, 'nginx-plain\n', curl.stderr);

    const results = await all;
    const problems: string[] = [];
    for (const { h, r } of results) {
      if (r.ending.kind === 'open') problems.push(`${h.name}: still open after ${r.ms} ms`);
      else if (r.ms > h.closedWithinMs) problems.push(`${h.name}: closed only after ${r.ms} ms (${JSON.stringify(r.ending)})`);
      else if (h.byHelloTimeout && r.ms < HELLO_TIMEOUT_MS - 500) problems.push(`${h.name}: closed after ${r.ms} ms, before the hello timeout`);
    }
    const summary = new Map<string, string>();
    for (const { h, r } of results) summary.set(h.name, `${JSON.stringify(r.ending)} ${r.ms} ms, ${r.data.length} bytes back`);
    t.diagnostic([...summary].map(([k, v]) => `${k}: ${v}`).join('\n'));
    assert.deepEqual(problems, []);
  });

  await t.test('nothing is left open in the server namespace', async () => {
    const deadline = Date.now() + 5000;
    let left = '';
    do {
      const r = runSync('ip', ['netns', 'exec', w.srv.name, 'ss', '-Htn', 'state', 'established', 'state', 'close-wait', '( sport = :8080 or dport = :8080 )']);
      left = r.stdout.trim();
      if (left === '') break;
      await sleep(200);
    } while (Date.now() < deadline);
    assert.equal(left, '', 'sockets still open to or from :8080');
  });

  await t.test('after the attacks: requests are served, and jfe and its workers are still up', async () => {
    assert.equal(await httpGet(w.cli, w.srv4, 8080, '/', undefined, 5000), 'nginx-plain\n');
    assert.equal(await httpGet(w.cli, w.srv4, 8080, '/', ca, 5000), 'nginx-plain\n');
    assert.equal(jfe.proc.exitCode, null);
    assert.equal(jfe.proc.signalCode, null);
    assert.deepEqual(jfePids(jfe).sort(), pidsBefore);
    assert.equal(jfe.logs.filter((l) => l.msg === 'worker exited; restarting it').length, 0);
  });
});

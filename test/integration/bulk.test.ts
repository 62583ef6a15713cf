// SPDX-License-Identifier: MIT
// Guards the relay's promise to lose nothing: 100 MB each way arrive byte-exact
// (sha256) through jfe, terminated TLS and plaintext alike; a client that shuts
// its write side still gets the whole response; and a reset on either side
// reaches the other side as a reset, never as a clean (truncated) EOF.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { test } from 'node:test';
import { connectRaw, connectTls, receiveAll, waitSteered } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx, startNodeServices } from '../helpers/servers';
import { run } from '../helpers/spawn';

const BIG = 100 * 1024 * 1024;
/** The mid-upload tests' bound on what the client writes; the service resets after RESET_AFTER. */
const UPLOAD_BOUND = 1024 * 1024 * 1024;
/** What the half-close service sends after the client's EOF: more than any socket buffer holds. */
const RESPONSE_BYTES = 8 * 1024 * 1024;
const PORT = { sha: 9000, halfClose: 9001, resets: 9002, observe: 9003, closesFirst: 9004, resetsMidUpload: 9005 } as const;
/** What the resetsMidUpload service reads of an upload before it resets: more than one read, far less than the upload. */
const RESET_AFTER = 1024 * 1024;

/** Byte i of the half-close service's response (after its digest line). */
function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 13)) & 0xff;
  return b;
}

/**
 * The services, one process in the server namespace:
 *  sha        HTTP; answers a request with "<sha256 hex> <length>\n" of its body.
 *  halfClose  raw; hashes what it reads until EOF, then writes "<sha256> <length>\n",
 *             then RESPONSE_BYTES of pattern(), then ends.
 *  resets     raw; on the first bytes writes "partial\n" and resets (SO_LINGER 0).
 *  observe    raw; on a first line "<tag>\n" answers "ready\n"; appends
 *             "<tag> end" or "<tag> error:<code>" to the events file when the connection ends.
 *  closesFirst raw; on a first line "<tag>\n" answers "bye\n" and shuts its write side,
 *             then hashes what it still reads until EOF and appends "<tag> <sha256> <length>".
 *  resetsMidUpload raw; after a first line "<tag>\n", counts what it reads; once that is
 *             RESET_AFTER bytes or more, appends "<tag> read <n>" and resets (SO_LINGER 0).
 */
const SERVICE = `
const net = require('net'), http = require('http'), crypto = require('crypto'), fs = require('fs');
const [eventsFile] = process.argv.slice(-1);
${pattern.toString()}
const RESPONSE = pattern(${RESPONSE_BYTES});
http.createServer((req, res) => {
  const h = crypto.createHash('sha256'); let n = 0;
  req.on('data', (c) => { h.update(c); n += c.length; });
  req.on('end', () => res.end(h.digest('hex') + ' ' + n + '\\n'));
}).listen(${PORT.sha}, '0.0.0.0');
net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {});
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (c) => { h.update(c); n += c.length; });
  s.on('end', () => { s.write(h.digest('hex') + ' ' + n + '\\n'); s.end(RESPONSE); });
}).listen(${PORT.halfClose}, '0.0.0.0');
net.createServer((s) => {
  s.on('error', () => {});
  s.once('data', () => s.write('partial\\n', () => setTimeout(() => s.resetAndDestroy(), 100)));
}).listen(${PORT.resets}, '0.0.0.0');
net.createServer({ allowHalfOpen: true }, (s) => {
  let first = '', tag = null;
  const log = (what) => { if (tag !== null) fs.appendFileSync(eventsFile, tag + ' ' + what + '\\n'); tag = null; };
  s.on('data', (d) => {
    if (tag !== null) return;
    first += d.toString('latin1');
    const nl = first.indexOf('\\n');
    if (nl >= 0 && /^[a-z0-9-]+$/.test(first.slice(0, nl))) { tag = first.slice(0, nl); s.write('ready\\n'); }
  });
  s.on('end', () => { log('end'); s.end(); });
  s.on('error', (err) => log('error:' + err.code));
}).listen(${PORT.observe}, '0.0.0.0');
net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {});
  let first = Buffer.alloc(0), tag = null;
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => {
    if (tag !== null) { h.update(d); n += d.length; return; }
    first = Buffer.concat([first, d]);
    const nl = first.indexOf(10);
    if (nl < 0 || !/^[a-z0-9-]+$/.test(first.subarray(0, nl).toString('latin1'))) return;
    tag = first.subarray(0, nl).toString('latin1');
    const rest = first.subarray(nl + 1);
    h.update(rest); n += rest.length;
    s.end('bye\\n');
  });
  s.on('end', () => { if (tag !== null) fs.appendFileSync(eventsFile, tag + ' ' + h.digest('hex') + ' ' + n + '\\n'); });
}).listen(${PORT.closesFirst}, '0.0.0.0');
net.createServer((s) => {
  s.on('error', () => {});
  let first = Buffer.alloc(0), tag = null, n = 0;
  s.on('data', (d) => {
    if (s.destroyed) return;
    if (tag === null) {
      first = Buffer.concat([first, d]);
      const nl = first.indexOf(10);
      if (nl < 0 || !/^[a-z0-9-]+$/.test(first.subarray(0, nl).toString('latin1'))) return;
      tag = first.subarray(0, nl).toString('latin1');
      n = first.length - nl - 1;
    } else n += d.length;
    if (n < ${RESET_AFTER}) return;
    fs.appendFileSync(eventsFile, tag + ' read ' + n + '\\n');
    s.resetAndDestroy();
  });
}).listen(${PORT.resetsMidUpload}, '0.0.0.0');
`;

function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

async function sha256File(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

test('bulk transfers are byte-exact; half-close and resets cross jfe intact', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl', 'bash', 'sha256sum'])) return;
  const w = createWorld(t);
  const nginx = await startNginx(w, { bigBytes: BIG });
  const bigSha = await sha256File(nginx.bigFile);
  const { logFile: eventsFile } = await startNodeServices(w, 'bulk-services', SERVICE, Object.values(PORT));
  const jfe = await startJfe(w);
  for (const port of [8080, ...Object.values(PORT)]) await waitSteered(w, port);
  const ca = fs.readFileSync(jfe.caFile, 'utf8');
  const inCli = (script: string) => run('ip', ['netns', 'exec', w.cli.name, 'bash', '-o', 'pipefail', '-c', script], { timeoutMs: 90_000 });

  for (const scheme of ['http', 'https'] as const) {
    const tlsArgs = scheme === 'https' ? `--cacert ${jfe.caFile}` : '';
    await t.test(`100 MB download over ${scheme} (curl ← nginx) is byte-exact`, async () => {
      const r = await inCli(`curl -sS --fail --max-time 80 ${tlsArgs} ${scheme}://${w.srv4}:8080/big | sha256sum`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.split(' ')[0], bigSha);
    });

    await t.test(`100 MB upload over ${scheme} (curl → sha service) is byte-exact`, async () => {
      const r = await inCli(`curl -sS --fail --max-time 80 ${tlsArgs} -H 'Expect:' --data-binary @${nginx.bigFile} ${scheme}://${w.srv4}:${PORT.sha}/`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${bigSha} ${BIG}\n`);
    });
  }

  const expectedResponse = (sent: Buffer): Buffer => Buffer.concat([Buffer.from(`${sha256(sent)} ${sent.length}\n`), pattern(RESPONSE_BYTES)]);

  await t.test('half-close, plaintext: request, then FIN; the whole response arrives', async () => {
    const sock = await connectRaw(w.cli, w.srv4, PORT.halfClose);
    const request = crypto.randomBytes(1024 * 1024);
    const got = receiveAll(sock);
    sock.end(request);
    const r = await got;
    assert.deepEqual(r.ending, { kind: 'end' });
    assert.equal(r.data.length, 65 + String(request.length).length + 1 + RESPONSE_BYTES);
    assert.ok(r.data.equals(expectedResponse(request)), 'response differs from what the service sent');
  });

  // As negotiated (1.3), and held to 1.2: in 1.2 a close_notify ends the whole session (in 1.3 only its sender's side), and the response must still arrive.
  for (const [what, maxVersion] of [['TLS', undefined], ['TLS 1.2', 'TLSv1.2']] as const) {
    await t.test(`half-close, ${what}: request, then close_notify and FIN; the whole response arrives`, async () => {
      const { tls: sock } = await connectTls(w.cli, w.srv4, PORT.halfClose, ca, 'bulk.example', 10_000, maxVersion ? { maxVersion } : {});
      if (maxVersion) assert.equal(sock.getProtocol(), maxVersion);
      const request = crypto.randomBytes(1024 * 1024);
      const got = receiveAll(sock);
      sock.end(request);
      const r = await got;
      assert.deepEqual(r.ending, { kind: 'end' });
      assert.ok(r.data.equals(expectedResponse(request)), `response differs from what the service sent (${r.data.length} bytes)`);
    });
  }

  await t.test('half-close before the first byte: a bare FIN still gets the whole response', async () => {
    const sock = await connectRaw(w.cli, w.srv4, PORT.halfClose);
    const got = receiveAll(sock);
    sock.end();
    const r = await got;
    assert.deepEqual(r.ending, { kind: 'end' });
    assert.ok(r.data.equals(expectedResponse(Buffer.alloc(0))), `response differs from what the service sent (${r.data.length} bytes)`);
  });

  /** The events file's line for `tag`, once the service has written it. */
  const eventFor = async (tag: string): Promise<string | undefined> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const line = fs.readFileSync(eventsFile, 'utf8').split('\n').find((l) => l.startsWith(`${tag} `));
      if (line || Date.now() > deadline) return line;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  for (const mode of ['plaintext', 'TLS'] as const) {
    await t.test(`the service resets (${mode}): the client sees ECONNRESET, not EOF`, async () => {
      const sock = mode === 'TLS' ? (await connectTls(w.cli, w.srv4, PORT.resets, ca, 'bulk.example')).tls : await connectRaw(w.cli, w.srv4, PORT.resets);
      const got = receiveAll(sock, 10_000);
      sock.write('request\n');
      const r = await got;
      assert.deepEqual(r.ending, { kind: 'error', code: 'ECONNRESET' }, `received ${JSON.stringify(r.data.toString('latin1'))}`);
    });

    await t.test(`the client resets (${mode}): the service sees ECONNRESET, not EOF`, async () => {
      const tag = `client-reset-${mode.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`;
      const conn = mode === 'TLS' ? await connectTls(w.cli, w.srv4, PORT.observe, ca, 'bulk.example') : { raw: await connectRaw(w.cli, w.srv4, PORT.observe), tls: null };
      const sock = conn.tls ?? conn.raw;
      const ready = new Promise<void>((resolve, reject) => {
        let got = '';
        sock.on('data', (d: Buffer) => {
          got += d.toString('latin1');
          if (got.includes('ready\n')) resolve();
        });
        sock.once('error', reject);
        sock.once('end', () => reject(new Error('closed before ready')));
      });
      sock.write(`${tag}\n`);
      await ready;
      sock.on('error', () => undefined);
      conn.raw.resetAndDestroy();
      assert.equal(await eventFor(tag), `${tag} error:ECONNRESET`);
    });

    // The service resets once it has read RESET_AFTER bytes of an upload that has no end: what
    // it read says the reset came mid-upload, whatever the buffers on the way held.
    await t.test(`the service resets mid-upload (${mode}): the client's writes fail, no clean EOF`, async () => {
      const tag = `mid-upload-${mode.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`;
      const sock = mode === 'TLS' ? (await connectTls(w.cli, w.srv4, PORT.resetsMidUpload, ca, 'bulk.example')).tls : await connectRaw(w.cli, w.srv4, PORT.resetsMidUpload);
      sock.on('error', () => undefined);
      const got = receiveAll(sock, 20_000);
      sock.write(`${tag}\n`);
      const chunk = crypto.randomBytes(64 * 1024);
      let sent = 0;
      // Bounded, not part of the verdict: the reset ends the loop long before this.
      while (!sock.destroyed && sent < UPLOAD_BOUND) {
        sent += chunk.length;
        if (sock.write(chunk)) continue;
        await new Promise<void>((resolve) => {
          const go = (): void => {
            sock.off('drain', go);
            sock.off('close', go);
            resolve();
          };
          sock.on('drain', go);
          sock.on('close', go);
        });
      }
      const r = await got;
      const event = await eventFor(tag);
      const read = Number(/^\S+ read (\d+)$/.exec(event ?? '')?.[1]);
      assert.ok(read >= RESET_AFTER && read <= sent, `the service read ${read} bytes of the ${sent} sent, then reset (${event})`);
      assert.equal(r.ending.kind, 'error', `ended ${JSON.stringify(r.ending)} after ${sent} bytes sent`);
      assert.ok(['ECONNRESET', 'EPIPE'].includes((r.ending as { code: string }).code), JSON.stringify(r.ending));
    });

    await t.test(`the service shuts its write side first (${mode}): the client's later bytes still reach it`, async () => {
      const tag = `closes-first-${mode.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`;
      const sock = mode === 'TLS' ? (await connectTls(w.cli, w.srv4, PORT.closesFirst, ca, 'bulk.example')).tls : await connectRaw(w.cli, w.srv4, PORT.closesFirst);
      const got = new Promise<string>((resolve, reject) => {
        let data = '';
        sock.on('data', (d: Buffer) => (data += d.toString('latin1')));
        sock.once('end', () => resolve(data));
        sock.once('error', reject);
      });
      sock.write(`${tag}\n`);
      assert.equal(await got, 'bye\n');
      const rest = crypto.randomBytes(4 * 1024 * 1024);
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.end(rest, () => resolve());
      });
      assert.equal(await eventFor(tag), `${tag} ${sha256(rest)} ${rest.length}`);
      sock.destroy();
    });
  }

  await t.test('jfe is still running', () => {
    assert.equal(jfe.proc.exitCode, null);
    assert.equal(jfe.proc.signalCode, null);
  });
});

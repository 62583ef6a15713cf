// SPDX-License-Identifier: MIT
// Guards MySQL/MariaDB's in-band upgrade: `mariadb --ssl` verifying the
// server certificate against a MariaDB with TLS off gets TLS from jfe (the
// server sees plaintext); against a MariaDB with its own TLS, jfe steps
// aside; malformed and truncated requests close cleanly and the next
// connection works.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import tls from 'node:tls';
import { test } from 'node:test';
import { connectRaw, receiveAll } from '../helpers/clients';
import { startMariadb } from '../helpers/databases';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { makeServicePki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { run } from '../helpers/spawn';

const CLIENT_SSL = 0x800;

test('MariaDB: the SSL flag offered and answered by jfe, or by the server when it does TLS', async (t) => {
  if (!requireRoot(t, ['mariadb', 'mariadbd', 'mariadb-install-db'])) return;
  const w = createWorld(t);
  const pki = makeServicePki(`${w.tmp}/pki`, 'db.test', w.srv4);
  await startMariadb(w, { port: 3306 });
  await startMariadb(w, { port: 3307, tls: pki });
  const jfe = await startJfe(w, ['--upgrades', 'postgres=5432,mysql=3306+3307']);
  const mariadb = (port: number, args: string[], sql: string) =>
    run('ip', ['netns', 'exec', w.cli.name, 'mariadb', '--no-defaults', '-h', w.srv4, '-P', String(port), '-u', 'jfe', '-pjfe-pw', '--connect-timeout=10', '-N', '-B', ...args, '-e', sql]);

  await t.test('TLS off on the server: --ssl with the jfe root and server verification works; the client has TLS, the server plaintext', async () => {
    const r = await mariadb(3306, ['--ssl', `--ssl-ca=${jfe.caFile}`, '--ssl-verify-server-cert'], "SHOW SESSION STATUS LIKE 'Ssl_cipher'; SELECT 40 + 2; \\s");
    assert.equal(r.status, 0, r.stderr);
    // The server's view: no cipher on this session. The client's view (status): a cipher in use.
    assert.match(r.stdout, /^Ssl_cipher\t$/m, r.stdout);
    assert.match(r.stdout, /^42$/m, r.stdout);
    assert.match(r.stdout, /SSL:\s+Cipher in use is \S+/, r.stdout);
  });

  await t.test('verification is real: another CA does not verify jfe\'s certificate', async () => {
    const r = await mariadb(3306, ['--ssl', `--ssl-ca=${pki.caCert}`, '--ssl-verify-server-cert'], 'SELECT 1');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /SSL|certificate/i, r.stderr);
  });

  await t.test('a client without --ssl goes on in plaintext, unchanged', async () => {
    const r = await mariadb(3306, ['--skip-ssl'], "SHOW SESSION STATUS LIKE 'Ssl_cipher'; SELECT USER()");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Ssl_cipher\t$/m);
    assert.match(r.stdout, /^jfe@10\.77\.0\.1$/m, 'the server sees the client\'s own address');
  });

  await t.test('a wrong password over jfe\'s TLS: the server\'s own refusal reaches the client', async () => {
    const r = await run('ip', ['netns', 'exec', w.cli.name, 'mariadb', '--no-defaults', '-h', w.srv4, '-u', 'jfe', '-pwrong', '--ssl', `--ssl-ca=${jfe.caFile}`, '--ssl-verify-server-cert', '-e', 'SELECT 1']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Access denied for user 'jfe'/, r.stderr);
  });

  await t.test('a strict client (checks every sequence number) logs in over jfe\'s TLS through an auth switch', async () => {
    const s = await connectRaw(w.cli, w.srv4, 3306);
    const strict = new StrictPackets(s);
    const g = await strict.read(0);
    const nul = g.indexOf(0, 1);
    const capsAt = nul + 1 + 4 + 8 + 1;
    assert.notEqual(g.readUInt16LE(capsAt) & CLIENT_SSL, 0, 'SSL offered');
    const caps = 0x200 | 0x8000 | 0x80000 | CLIENT_SSL | 0x1; // PROTOCOL_41 SECURE_CONNECTION PLUGIN_AUTH SSL LONG_PASSWORD
    const fixed = Buffer.alloc(32);
    fixed.writeUInt32LE(caps >>> 0, 0);
    fixed.writeUInt32LE(1 << 24, 4);
    fixed[8] = 0x2d;
    strict.write(1, fixed);
    const secure = tls.connect({ socket: s, ca: fs.readFileSync(jfe.caFile, 'utf8'), checkServerIdentity: () => undefined });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    strict.over(secure);
    // Ask for a plugin the account does not use, so the server switches (one more round trip).
    strict.write(2, Buffer.concat([fixed, Buffer.from('jfe\0'), Buffer.from([0]), Buffer.from('client_ed25519\0')]));
    const sw = await strict.read(3);
    assert.equal(sw[0], 0xfe, 'an auth switch request');
    const pluginEnd = sw.indexOf(0, 1);
    assert.equal(sw.subarray(1, pluginEnd).toString(), 'mysql_native_password');
    const scramble = sw.subarray(pluginEnd + 1, pluginEnd + 21);
    strict.write(4, nativePassword('jfe-pw', scramble));
    const ok = await strict.read(5);
    assert.equal(ok[0], 0x00, `OK after login, got ${ok.toString('latin1')}`);
    strict.write(0, Buffer.from("\x03SELECT 'strict'", 'latin1'));
    const cols = await strict.read(1);
    assert.equal(cols[0], 1, 'one column');
    secure.destroy();
  });

  await t.test('TLS on at the server: jfe steps aside, the client sees the server\'s own certificate', async () => {
    const own = await mariadb(3307, ['--ssl', `--ssl-ca=${pki.caCert}`, '--ssl-verify-server-cert'], "SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    assert.equal(own.status, 0, own.stderr);
    assert.match(own.stdout, /^Ssl_cipher\t\S+/m, 'the server itself terminated TLS');
    const viaJfe = await mariadb(3307, ['--ssl', `--ssl-ca=${jfe.caFile}`, '--ssl-verify-server-cert'], 'SELECT 1');
    assert.notEqual(viaJfe.status, 0, 'jfe\'s certificate is not what the client gets');
  });

  /** Reads the (SSL-flagged) greeting jfe shows, then sends `bytes`. */
  async function afterGreeting(bytes: Buffer, close: boolean): Promise<{ caps: number; ending: string }> {
    const s = await connectRaw(w.cli, w.srv4, 3306);
    const greeting = await new Promise<Buffer>((resolve) => s.once('data', resolve));
    const nul = greeting.indexOf(0, 5);
    const caps = greeting.readUInt16LE(nul + 1 + 4 + 8 + 1);
    s.write(bytes);
    if (close) s.end();
    const got = await receiveAll(s, 15_000);
    return { caps, ending: got.ending.kind };
  }

  const sslRequest = (seq: number, caps: number): Buffer => {
    const b = Buffer.alloc(36);
    b.writeUIntLE(32, 0, 3);
    b[3] = seq;
    b.writeUInt32LE(caps, 4);
    return b;
  };
  for (const [name, bytes, close] of [
    ['an SSLRequest with the wrong sequence number', sslRequest(2, 0x200 | CLIENT_SSL), false],
    ['a 32-byte request without CLIENT_SSL', sslRequest(1, 0x200), false],
    ['a truncated SSLRequest', sslRequest(1, 0x200 | CLIENT_SSL).subarray(0, 12), true],
    ['an SSLRequest then garbage instead of a ClientHello', Buffer.concat([sslRequest(1, 0x200 | CLIENT_SSL), Buffer.from('no TLS here\r\n')]), false],
  ] as const) {
    await t.test(`${name}: a clean close, and the next client works`, async () => {
      const r = await afterGreeting(bytes, close);
      assert.notEqual(r.caps & CLIENT_SSL, 0, 'jfe offered SSL');
      assert.notEqual(r.ending, 'open', 'jfe closed the connection');
      if (!close && !name.includes('garbage')) assert.equal(r.ending, 'end', 'a failed dialogue closes with FIN');
      const ok = await mariadb(3306, ['--ssl', `--ssl-ca=${jfe.caFile}`, '--ssl-verify-server-cert'], 'SELECT 7');
      assert.equal(ok.stdout.trim(), '7', ok.stderr);
    });
  }
});

/** mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))). */
function nativePassword(pw: string, scramble: Buffer): Buffer {
  const sha1 = (b: Buffer | string): Buffer => crypto.createHash('sha1').update(b).digest();
  const h1 = sha1(pw);
  const h2 = sha1(Buffer.concat([scramble, sha1(h1)]));
  return Buffer.from(h1.map((b, i) => b ^ (h2[i] ?? 0)));
}

/** Packets read and written with the sequence numbers a strict client (Go, PHP, JDBC) insists on. */
class StrictPackets {
  private sock: net.Socket;
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private readonly onData = (d: Buffer): void => {
    this.buf = Buffer.concat([this.buf, d]);
    this.wake?.();
  };

  constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', this.onData);
  }

  over(next: net.Socket): void {
    this.sock.off('data', this.onData);
    this.sock = next;
    next.on('data', this.onData);
  }

  write(seq: number, payload: Buffer): void {
    const h = Buffer.alloc(4);
    h.writeUIntLE(payload.length, 0, 3);
    h[3] = seq;
    this.sock.write(Buffer.concat([h, payload]));
  }

  async read(seq: number): Promise<Buffer> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (this.buf.length >= 4) {
        const len = this.buf.readUIntLE(0, 3);
        if (this.buf.length >= 4 + len) {
          assert.equal(this.buf[3], seq, 'packet sequence number');
          const p = this.buf.subarray(4, 4 + len);
          this.buf = this.buf.subarray(4 + len);
          return p;
        }
      }
      if (Date.now() > deadline) throw new Error(`no packet ${seq}; have ${this.buf.toString('hex')}`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 100);
      });
    }
  }
}

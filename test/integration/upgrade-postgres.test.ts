// SPDX-License-Identifier: MIT
// Guards PostgreSQL's in-band upgrade: psql with sslmode=verify-full against a
// server with ssl=off gets TLS from jfe (the server sees plaintext); against a
// server with its own TLS, jfe steps aside; malformed and truncated requests
// close cleanly and leave the next connection working.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import { connectRaw, readN, receiveAll } from '../helpers/clients';
import { startPostgres } from '../helpers/databases';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { makeServicePki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { native } from '../../src/native';
import { run } from '../helpers/spawn';

const SSL_REQUEST = Buffer.from('0000000804d2162f', 'hex');
const GSSENC_REQUEST = Buffer.from('0000000804d21630', 'hex');

test('PostgreSQL: SSLRequest answered by jfe, or by the server when it does TLS', async (t) => {
  if (!requireRoot(t, ['psql', '/usr/lib/postgresql/15/bin/postgres', 'runuser'])) return;
  const w = createWorld(t);
  const pki = makeServicePki(`${w.tmp}/pki`, 'pg.test', w.srv4);
  await startPostgres(w, { port: 5432 });
  await startPostgres(w, { port: 5433, tls: pki });
  // 5433 is no default port: the SSLRequest is recognised by content.
  const jfe = await startJfe(w);
  const psql = (conn: string, ...cmds: string[]) =>
    run('ip', ['netns', 'exec', w.cli.name, 'psql', conn, '-X', '-A', '-t', ...cmds.flatMap((c) => ['-c', c])], { env: { PGCONNECT_TIMEOUT: '10' } });
  const STAT = 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()';

  await t.test('ssl=off server: verify-full against the jfe root works; the client has TLS, the server plaintext', async () => {
    const r = await psql(`host=${w.srv4} port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=${jfe.caFile}`, '\\conninfo', STAT, 'SELECT 40 + 2');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /SSL connection \(protocol: TLSv1\.[23]/, r.stdout);
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(lines.slice(-2), ['f', '42'], r.stdout);
  });

  await t.test('verification is real: the server\'s own CA does not verify jfe\'s certificate', async () => {
    const r = await psql(`host=${w.srv4} port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=${pki.caCert}`, 'SELECT 1');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /certificate verify failed/, r.stderr);
  });

  await t.test('sslmode=disable still reaches the ssl=off server in plaintext', async () => {
    const r = await psql(`host=${w.srv4} port=5432 user=postgres dbname=postgres sslmode=disable`, STAT);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'f');
  });

  await t.test('gssencmode=prefer then SSL: the GSSENCRequest is answered N, TLS follows', async () => {
    // libpq only sends GSSENCRequest with Kerberos credentials; speak it by hand.
    const s = await connectRaw(w.cli, w.srv4, 5432);
    s.write(GSSENC_REQUEST);
    const n = await readN(s, 1);
    assert.equal(n.toString(), 'N');
    s.write(SSL_REQUEST);
    const sAnswer = await readN(s, 1);
    assert.equal(sAnswer.toString(), 'S');
    const secure = tls.connect({ socket: s, ca: fsRead(jfe.caFile), servername: undefined, checkServerIdentity: () => undefined });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    secure.write(startup('postgres'));
    const first = await readN(secure, 9);
    assert.equal(first[0], 0x52, 'AuthenticationOk (R) from the server, inside TLS');
    assert.equal(first.readUInt32BE(5), 0);
    secure.destroy();
  });

  await t.test('ssl=on server: jfe steps aside, the client sees the server\'s own certificate', async () => {
    const own = await psql(`host=${w.srv4} port=5433 user=postgres dbname=postgres sslmode=verify-full sslrootcert=${pki.caCert}`, '\\conninfo', STAT);
    assert.equal(own.status, 0, own.stderr);
    assert.match(own.stdout, /SSL connection/);
    assert.equal(own.stdout.trim().split('\n').at(-1), 't', 'the server itself terminated TLS');
    const viaJfe = await psql(`host=${w.srv4} port=5433 user=postgres dbname=postgres sslmode=verify-full sslrootcert=${jfe.caFile}`, 'SELECT 1');
    assert.notEqual(viaJfe.status, 0, 'jfe\'s certificate is not what the client gets');
  });

  await t.test('PostgreSQL 17 direct TLS (ALPN "postgresql") goes through the ordinary TLS path', async () => {
    const fd = native().tcpSocket(4, w.cli.fd);
    const raw = new net.Socket({ fd, readable: true, writable: true });
    raw.connect(5432, w.srv4);
    const secure = tls.connect({ socket: raw, ca: fsRead(jfe.caFile), ALPNProtocols: ['postgresql'], checkServerIdentity: () => undefined });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    assert.equal(secure.alpnProtocol, 'postgresql');
    secure.write(startup('postgres'));
    const first = await readN(secure, 9);
    assert.equal(first[0], 0x52);
    secure.destroy();
  });

  for (const [name, bytes, close] of [
    ['a truncated SSLRequest', SSL_REQUEST.subarray(0, 5), true],
    ['GSSENC then a packet with length 5', Buffer.concat([GSSENC_REQUEST, Buffer.from('0000000500030000', 'hex')]), false],
    ['GSSENC then a truncated SSLRequest', Buffer.concat([GSSENC_REQUEST, SSL_REQUEST.subarray(0, 6)]), true],
    ['SSLRequest, S, then garbage instead of a ClientHello', Buffer.concat([SSL_REQUEST]), false],
  ] as const) {
    await t.test(`${name}: a clean close, and the next psql works`, async () => {
      const s = await connectRaw(w.cli, w.srv4, 5432);
      s.write(bytes);
      if (name.startsWith('SSLRequest')) {
        assert.equal((await readN(s, 1)).toString(), 'S');
        s.write(Buffer.from('this is no TLS record\r\n'));
      }
      if (close) s.end();
      const got = await receiveAll(s, 15_000);
      assert.notEqual(got.ending.kind, 'open', 'jfe closed the connection');
      if (name.includes('length 5')) assert.deepEqual(got.ending, { kind: 'end' }, 'a failed dialogue closes with FIN');
      const r = await psql(`host=${w.srv4} port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=${jfe.caFile}`, 'SELECT 7');
      assert.equal(r.stdout.trim(), '7', r.stderr);
    });
  }
});

function fsRead(f: string): string {
  return fs.readFileSync(f, 'utf8');
}

function startup(user: string): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0postgres\0\0`);
  const b = Buffer.alloc(8 + body.length);
  b.writeUInt32BE(b.length, 0);
  b.writeUInt32BE(196608, 4);
  body.copy(b, 8);
  return b;
}

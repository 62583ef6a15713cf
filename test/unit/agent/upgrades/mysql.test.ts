// SPDX-License-Identifier: MIT
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { CLIENT_SSL, MysqlSequenceShift, mysqlDialogue, parseGreeting } from '../../../../src/agent/upgrades/mysql';
import { type Rig, leftClean, rig, settle } from './binary-rig';

const HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
const EXT_CAPS = 0x0000001d;

function packet(seq: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, payload]);
}

/** A MariaDB 10.11 greeting as Debian's mariadbd sends it (caps bit 0 clear: extended caps follow). */
function greeting(capsLow: number, capsHigh = 0x81ff): Buffer {
  const p = Buffer.concat([
    Buffer.from([0x0a]),
    Buffer.from('5.5.5-10.11.6-MariaDB-0+deb12u1\0'),
    Buffer.from([0x2a, 0, 0, 0]),
    Buffer.from('abcdefgh'),
    Buffer.from([0]),
    Buffer.from([capsLow & 0xff, capsLow >> 8]),
    Buffer.from([0x2d, 0x02, 0x00, capsHigh & 0xff, capsHigh >> 8, 21]),
    Buffer.alloc(6),
    Buffer.from([EXT_CAPS, 0, 0, 0]),
    Buffer.from('ijklmnopqrst\0'),
    Buffer.from('mysql_native_password\0'),
  ]);
  return packet(0, p);
}

/** The 32 fixed bytes of SSLRequest / HandshakeResponse41 (MariaDB: extended caps in the last 4). */
function fixed(caps: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(caps >>> 0, 0);
  b.writeUInt32LE(16 * 1024 * 1024, 4);
  b[8] = 0x2d;
  b.writeUInt32LE(EXT_CAPS, 28);
  return b;
}
const CLIENT_CAPS = 0x000aa204; // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | …
const response = (seq: number, caps: number): Buffer => packet(seq, Buffer.concat([fixed(caps), Buffer.from('alice\0'), Buffer.from([20]), Buffer.alloc(20, 7), Buffer.from('mysql_native_password\0')]));

const rigs: Rig[] = [];
after(() => rigs.forEach((r) => r.close()));
async function start(first: Buffer): Promise<Rig> {
  const r = await rig(mysqlDialogue.create(), first);
  rigs.push(r);
  return r;
}

describe('mysql dialogue', () => {
  test('detect: a v10 greeting at seq 0; prefixes need more; errors and others are not', () => {
    const g = greeting(0xf7fe);
    assert.equal(mysqlDialogue.detect(g), 'yes');
    assert.equal(mysqlDialogue.detect(g.subarray(0, 5)), 'yes');
    assert.equal(mysqlDialogue.detect(g.subarray(0, 3)), 'need-more');
    assert.equal(mysqlDialogue.detect(packet(0, Buffer.from('\xffj\x04Host is blocked', 'latin1'))), 'no');
    assert.equal(mysqlDialogue.detect(Buffer.from('220 mail ESMTP\r\n')), 'no');
    assert.equal(mysqlDialogue.detect(Buffer.from('SSH-2.0-OpenSSH\r\n')), 'no');
    assert.equal(mysqlDialogue.firstSpeaker, 'server');
    assert.deepEqual(mysqlDialogue.defaultPorts, [3306]);
  });

  test('parseGreeting: capabilities in both halves and MariaDB extended capabilities', () => {
    const g = parseGreeting(greeting(0xf7fe).subarray(4));
    assert.ok(g);
    assert.equal(g.version, '5.5.5-10.11.6-MariaDB-0+deb12u1');
    assert.equal(g.caps, 0x81fff7fe);
    assert.equal(g.extendedCaps, EXT_CAPS);
    const mysql = parseGreeting(greeting(0xf7ff).subarray(4)); // CLIENT_MYSQL set: no extended caps
    assert.equal(mysql?.extendedCaps, null);
    assert.equal(parseGreeting(Buffer.from([0x0a, 0x41])), null, 'no NUL after the version');
  });

  test('a greeting without SSL is shown with CLIENT_SSL; the SSLRequest gets tls and the sequence shift', async () => {
    const g = greeting(0xf7fe);
    const r = await start(g.subarray(0, 20)); // the rest arrives later, split
    await r.server.send(g.subarray(20, 40), g.subarray(40));
    const shown = await r.client.take(g.length);
    const want = Buffer.from(g);
    const capsAt = 4 + (parseGreeting(g.subarray(4))?.capsOffset ?? 0);
    want.writeUInt16LE(want.readUInt16LE(capsAt) | CLIENT_SSL, capsAt);
    assert.deepEqual(shown, want, 'only the CLIENT_SSL bit differs; extended caps intact');
    assert.equal(parseGreeting(shown.subarray(4))?.caps, (0x81fff7fe | CLIENT_SSL) >>> 0);
    assert.equal(parseGreeting(shown.subarray(4))?.extendedCaps, EXT_CAPS);
    await r.client.send(Buffer.concat([packet(1, fixed(CLIENT_CAPS | CLIENT_SSL)), HELLO]));
    const out = await r.outcome;
    assert.ok(out.kind === 'tls' && out.clientRest.equals(HELLO) && out.upstreamRest.length === 0, JSON.stringify(out));
    assert.ok(out.transform instanceof MysqlSequenceShift);
    await settle();
    assert.equal(r.server.pending().length, 0, 'the server never sees the SSLRequest');
    assert.ok(leftClean(r));
  });

  test('a greeting with SSL: passthrough, greeting unchanged, nothing sent by jfe', async () => {
    const g = greeting(0xfffe);
    const r = await start(g);
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough' && out.upstreamRest.equals(g), JSON.stringify(out));
    await settle();
    assert.equal(r.client.pending().length, 0);
  });

  test('an error greeting (too many connections): passthrough unchanged', async () => {
    const e = packet(0, Buffer.from('\xff\x10\x04Too many connections', 'latin1'));
    const r = await start(e);
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough' && out.upstreamRest.equals(e), JSON.stringify(out));
  });

  test('a client that answers the SSL offer in plaintext: passthrough, its response unchanged', async () => {
    const r = await start(greeting(0xf7fe));
    await r.client.take(greeting(0xf7fe).length);
    const resp = response(1, CLIENT_CAPS);
    await r.client.send(resp);
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough' && out.clientRest.equals(resp), JSON.stringify(out));
  });

  test('malformed: wrong sequence, or 32 bytes without CLIENT_SSL: failed', async () => {
    for (const bad of [packet(2, fixed(CLIENT_CAPS | CLIENT_SSL)), packet(1, fixed(CLIENT_CAPS))]) {
      const r = await start(greeting(0xf7fe));
      await r.client.take(greeting(0xf7fe).length);
      await r.client.send(bad);
      const out = await r.outcome;
      assert.equal(out.kind, 'failed', JSON.stringify(out));
    }
  });

  test('truncated: the client closes mid-request, or the server mid-greeting: failed', async () => {
    const a = await start(greeting(0xf7fe));
    await a.client.take(greeting(0xf7fe).length);
    a.client.socket.end(packet(1, fixed(CLIENT_CAPS | CLIENT_SSL)).subarray(0, 20));
    const outA = await a.outcome;
    assert.ok(outA.kind === 'failed' && /client closed/.test(outA.reason), JSON.stringify(outA));

    const b = await start(greeting(0xf7fe).subarray(0, 30));
    b.server.socket.end();
    const outB = await b.outcome;
    assert.ok(outB.kind === 'failed' && /upstream closed/.test(outB.reason), JSON.stringify(outB));
  });
});

describe('mysql sequence shift (after the handshake)', () => {
  test('HandshakeResponse seq 2 → 1 without CLIENT_SSL, fed one byte at a time', () => {
    const t = new MysqlSequenceShift();
    const resp = response(2, CLIENT_CAPS | CLIENT_SSL);
    const out: Buffer[] = [];
    for (const b of resp) {
      const r = t.clientData(Buffer.from([b]));
      assert.equal(r.done, false);
      out.push(r.forward);
    }
    assert.deepEqual(Buffer.concat(out), response(1, CLIENT_CAPS), 'extended caps and everything else kept');
  });

  test('auth switch round trip: server numbers go up one, client numbers down one, until OK', () => {
    const t = new MysqlSequenceShift();
    assert.deepEqual(t.clientData(response(2, CLIENT_CAPS | CLIENT_SSL)).forward, response(1, CLIENT_CAPS));
    const sw = packet(2, Buffer.from('\xfeclient_ed25519\0salt', 'latin1'));
    const r1 = t.upstreamData?.(sw);
    assert.deepEqual(r1, { forward: packet(3, sw.subarray(4)), done: false });
    const sig = packet(4, Buffer.alloc(64, 9));
    assert.deepEqual(t.clientData(sig), { forward: packet(3, sig.subarray(4)), done: false });
    const ok = packet(4, Buffer.from([0, 0, 0, 2, 0, 0, 0]));
    const r2 = t.upstreamData?.(ok);
    assert.deepEqual(r2, { forward: packet(5, ok.subarray(4)), done: true });
    const query = packet(0, Buffer.from('\x03SELECT 1', 'latin1'));
    assert.deepEqual(t.clientData(query), { forward: query, done: true }, 'commands pass unchanged');
  });

  test('an ERR ends it too; bytes after it pass unchanged', () => {
    const t = new MysqlSequenceShift();
    t.clientData(response(2, CLIENT_CAPS | CLIENT_SSL));
    const err = packet(2, Buffer.from('\xff\x15\x04#28000Access denied', 'latin1'));
    const trailing = Buffer.from('zz');
    const r = t.upstreamData?.(Buffer.concat([err, trailing]));
    assert.deepEqual(r, { forward: Buffer.concat([packet(3, err.subarray(4)), trailing]), done: true });
  });

  test('a first packet that is not seq 2 throws (the connection closes it)', () => {
    const t = new MysqlSequenceShift();
    assert.throws(() => t.clientData(response(1, CLIENT_CAPS | CLIENT_SSL)));
  });

  // Found by the mysql-auth-shift fuzz target: the client's header cut short was held back,
  // and the server's OK ended the phase with those bytes still held.
  test('a client header cut short when the server ends the phase: held, then given up by a call with no bytes', () => {
    const t = new MysqlSequenceShift();
    assert.deepEqual(t.clientData(Buffer.from([1, 0, 0])), { forward: Buffer.alloc(0), done: false });
    assert.deepEqual(t.upstreamData?.(Buffer.from([1, 0, 0, 0, 0])), { forward: Buffer.from([1, 0, 0, 1, 0]), done: true });
    assert.deepEqual(t.clientData(Buffer.alloc(0)), { forward: Buffer.from([1, 0, 0]), done: true });
  });

  // Found by the same target: a server header cut short, then a client command that ends the
  // phase before the server's answer; the server's next bytes came without the held ones.
  test('a server header cut short when the client ends the phase: held, then forwarded before the next bytes', () => {
    const t = new MysqlSequenceShift();
    assert.deepEqual(t.upstreamData?.(Buffer.from([0])), { forward: Buffer.alloc(0), done: false });
    t.clientData(Buffer.from([0, 0, 0, 2]));
    assert.deepEqual(t.clientData(Buffer.from([0, 0, 0, 0])), { forward: Buffer.from([0, 0, 0, 0]), done: true });
    assert.deepEqual(t.upstreamData?.(Buffer.from([1, 0, 0, 0, 0])), { forward: Buffer.from([0, 1, 0, 0, 0, 0]), done: true });
  });
});

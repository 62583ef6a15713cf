// SPDX-License-Identifier: MIT
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { postgresDialogue } from '../../../../src/agent/upgrades/postgres';
import { type Rig, leftClean, rig, settle } from './binary-rig';

const SSL = Buffer.from('0000000804d2162f', 'hex');
const GSS = Buffer.from('0000000804d21630', 'hex');
const HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
function startup(user: string): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0db\0\0`);
  const b = Buffer.alloc(8 + body.length);
  b.writeUInt32BE(b.length, 0);
  b.writeUInt32BE(196608, 4);
  body.copy(b, 8);
  return b;
}

const rigs: Rig[] = [];
after(() => rigs.forEach((r) => r.close()));
async function start(first: Buffer): Promise<Rig> {
  const r = await rig(postgresDialogue.create(), first);
  rigs.push(r);
  return r;
}

describe('postgres dialogue', () => {
  test('detect: the two 8-byte requests, their prefixes, nothing else', () => {
    assert.equal(postgresDialogue.detect(SSL), 'yes');
    assert.equal(postgresDialogue.detect(GSS), 'yes');
    assert.equal(postgresDialogue.detect(SSL.subarray(0, 5)), 'need-more');
    assert.equal(postgresDialogue.detect(Buffer.from([0])), 'need-more');
    assert.equal(postgresDialogue.detect(startup('u')), 'no');
    assert.equal(postgresDialogue.detect(Buffer.from('0000001004d2162e', 'hex')), 'no'); // CancelRequest
    assert.equal(postgresDialogue.detect(Buffer.from('GET / HTTP/1.1\r\n')), 'no');
    assert.equal(postgresDialogue.firstSpeaker, 'client');
    assert.equal(postgresDialogue.detectAnywhere, true);
    assert.deepEqual(postgresDialogue.defaultPorts, [5432]);
  });

  test("SSLRequest, server says 'N': forwarded, jfe answers 'S', outcome tls with the pipelined hello", async () => {
    const r = await start(Buffer.concat([SSL, HELLO]));
    assert.deepEqual(await r.server.take(8), SSL);
    await r.server.send(Buffer.from('N'));
    assert.equal((await r.client.take(1)).toString(), 'S');
    const out = await r.outcome;
    assert.ok(out.kind === 'tls' && out.clientRest.equals(HELLO) && out.upstreamRest.length === 0, JSON.stringify(out));
    assert.equal(out.transform, undefined);
    assert.ok(leftClean(r));
  });

  test("SSLRequest, server says 'S': passthrough, the 'S' is the server's to deliver", async () => {
    const r = await start(SSL);
    assert.deepEqual(await r.server.take(8), SSL);
    await r.server.send(Buffer.from('S'));
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough', JSON.stringify(out));
    assert.equal(out.upstreamRest.toString(), 'S');
    assert.equal(out.clientRest.length, 0);
    await settle();
    assert.equal(r.client.pending().length, 0, 'jfe itself said nothing to the client');
  });

  test('SSLRequest to a server that answers with an error: passthrough, error unchanged', async () => {
    const r = await start(SSL);
    await r.server.take(8);
    const err = Buffer.from('E\0\0\0\x10SFATAL\0C0A000\0\0');
    await r.server.send(err);
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough' && out.upstreamRest.equals(err), JSON.stringify(out));
  });

  test("GSSENCRequest gets 'N' from jfe (not forwarded), then a split SSLRequest upgrades", async () => {
    const r = await start(GSS);
    assert.equal((await r.client.take(1)).toString(), 'N');
    await r.client.send(SSL.subarray(0, 3), SSL.subarray(3));
    assert.deepEqual(await r.server.take(8), SSL, 'the server sees the SSLRequest first, never the GSSENCRequest');
    await r.server.send(Buffer.from('N'));
    assert.equal((await r.client.take(1)).toString(), 'S');
    const out = await r.outcome;
    assert.ok(out.kind === 'tls', JSON.stringify(out));
    assert.ok(leftClean(r));
  });

  test("GSSENCRequest then a plain startup message: passthrough with the startup message", async () => {
    const r = await start(GSS);
    assert.equal((await r.client.take(1)).toString(), 'N');
    const s = startup('alice');
    await r.client.send(s);
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough' && out.clientRest.equals(s), JSON.stringify(out));
    await settle();
    assert.equal(r.server.pending().length, 0);
  });

  test('GSSENCRequest then a CancelRequest: passthrough', async () => {
    const r = await start(GSS);
    await r.client.take(1);
    const cancel = Buffer.from('0000001004d2162e0000007b000001c8', 'hex');
    await r.client.send(cancel);
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough' && out.clientRest.equals(cancel), JSON.stringify(out));
  });

  test('a second GSSENCRequest: failed', async () => {
    const r = await start(Buffer.concat([GSS, GSS]));
    const out = await r.outcome;
    assert.ok(out.kind === 'failed', JSON.stringify(out));
  });

  test('malformed after GSSENC (length 5): failed', async () => {
    const r = await start(Buffer.concat([GSS, Buffer.from('0000000500030000', 'hex')]));
    const out = await r.outcome;
    assert.ok(out.kind === 'failed' && /length 5/.test(out.reason), JSON.stringify(out));
  });

  test('truncated: half a request and the client closes: failed', async () => {
    const r = await start(GSS);
    await r.client.take(1);
    r.client.socket.end(SSL.subarray(0, 4));
    const out = await r.outcome;
    assert.ok(out.kind === 'failed' && /client closed/.test(out.reason), JSON.stringify(out));
  });

  test('the server closes instead of answering the SSLRequest: failed', async () => {
    const r = await start(SSL);
    await r.server.take(8);
    r.server.socket.end();
    const out = await r.outcome;
    assert.ok(out.kind === 'failed' && /upstream closed/.test(out.reason), JSON.stringify(out));
  });

  test('abort while waiting for the server: failed "aborted", promptly', async () => {
    const r = await start(SSL);
    await r.server.take(8);
    r.abort.abort();
    const out = await r.outcome;
    assert.deepEqual(out, { kind: 'failed', reason: 'aborted' });
    assert.ok(leftClean(r));
  });
});

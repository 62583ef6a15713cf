// SPDX-License-Identifier: MIT
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { pop3Dialogue } from '../../../../src/agent/upgrades/pop3';
import { type Rig, leftClean, rig, settle } from './harness';

const HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
const rigs: Rig[] = [];
after(() => rigs.forEach((r) => r.close()));
async function start(first: string): Promise<Rig> {
  const r = await rig(pop3Dialogue.create(), first);
  rigs.push(r);
  return r;
}

describe('pop3 dialogue', () => {
  test('detect', () => {
    assert.equal(pop3Dialogue.detect(Buffer.from('+OK Dovecot ready.\r\n')), 'yes');
    assert.equal(pop3Dialogue.detect(Buffer.from('+')), 'need-more');
    assert.equal(pop3Dialogue.detect(Buffer.from('-ERR no\r\n')), 'no');
    assert.deepEqual(pop3Dialogue.defaultPorts, [110]);
  });

  test('CAPA gets STLS before its "."; STLS answered here; split reads', async () => {
    const r = await start('+OK Dovecot ready.\r\n');
    assert.equal(await r.client.until('\r\n'), '+OK Dovecot ready.\r\n');
    await r.client.send('CA', 'PA\r\n');
    assert.equal(await r.server.until('\r\n'), 'CAPA\r\n');
    await r.server.send('+OK\r\nCAPA\r\nTOP\r\nUI', 'DL\r\nSASL PLAIN\r\n', '.\r\n');
    assert.equal(await r.client.until('.\r\n'), '+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nSASL PLAIN\r\nSTLS\r\n.\r\n');
    await r.client.send(Buffer.concat([Buffer.from('STLS\r\n'), HELLO]));
    assert.equal(await r.client.until('\r\n'), '+OK Begin TLS\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'tls' && out.clientRest.equals(HELLO));
    await settle();
    assert.equal(r.server.pending(), '');
    assert.ok(leftClean(r));
  });

  test('a CAPA list with STLS: passthrough, list unchanged', async () => {
    const r = await start('+OK hi\r\n');
    await r.client.until('\r\n');
    await r.client.send('capa\r\n');
    await r.server.until('\r\n');
    await r.server.send('+OK\r\nSTLS\r\nUSER\r\n.\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.upstreamRest.toString(), '+OK\r\nSTLS\r\nUSER\r\n.\r\n');
  });

  test('STLS without CAPA (openssl s_client): jfe asks the server itself', async () => {
    const r = await start('+OK hi\r\n');
    await r.client.until('\r\n');
    await r.client.send('STLS\r\n');
    assert.equal(await r.server.until('\r\n'), 'CAPA\r\n');
    await r.server.send('+OK\r\nUSER\r\n.\r\n');
    assert.equal(await r.client.until('\r\n'), '+OK Begin TLS\r\n');
    assert.equal((await r.outcome).kind, 'tls');
    await settle();
    assert.equal(r.client.pending(), '', 'the probe answer is not shown to the client');
  });

  test('… and steps aside when the server has STLS', async () => {
    const r = await start('+OK hi\r\n');
    await r.client.until('\r\n');
    await r.client.send('STLS\r\n');
    await r.server.until('\r\n');
    await r.server.send('+OK\r\nSTLS\r\n.\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.clientRest.toString(), 'STLS\r\n');
  });

  test('other commands: passthrough with them unsent', async () => {
    const r = await start('+OK hi\r\n');
    await r.client.until('\r\n');
    await r.client.send('USER bob\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.clientRest.toString(), 'USER bob\r\n');
  });

  test('an overlong CAPA line fails; a truncated command fails', async () => {
    const r = await start('+OK hi\r\n');
    await r.client.until('\r\n');
    await r.client.send('CAPA\r\n');
    await r.server.until('\r\n');
    await r.server.send(`+OK\r\n${'X'.repeat(5000)}`);
    const out = await r.outcome;
    assert.ok(out.kind === 'failed' && /longer than/.test(out.reason));
    const r2 = await start('+OK hi\r\n');
    await r2.client.until('\r\n');
    r2.client.socket.end('CA');
    const out2 = await r2.outcome;
    assert.ok(out2.kind === 'failed' && /closed/.test(out2.reason));
  });
});

// SPDX-License-Identifier: MIT
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { smtpDialogue } from '../../../../src/agent/upgrades/smtp';
import { type Rig, leftClean, rig, settle } from './harness';

const HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
const rigs: Rig[] = [];
after(() => rigs.forEach((r) => r.close()));
async function start(first: string): Promise<Rig> {
  const r = await rig(smtpDialogue.create(), first);
  rigs.push(r);
  return r;
}

describe('smtp dialogue', () => {
  test('detect: 220 greetings only, by prefix', () => {
    assert.equal(smtpDialogue.detect(Buffer.from('220 mx ESMTP\r\n')), 'yes');
    assert.equal(smtpDialogue.detect(Buffer.from('220-mx\r\n')), 'yes');
    assert.equal(smtpDialogue.detect(Buffer.from('22')), 'need-more');
    assert.equal(smtpDialogue.detect(Buffer.from('220')), 'need-more');
    assert.equal(smtpDialogue.detect(Buffer.from('2201')), 'no');
    assert.equal(smtpDialogue.detect(Buffer.from('554 go away\r\n')), 'no');
    assert.equal(smtpDialogue.detect(Buffer.from('SSH-2.0-x\r\n')), 'no');
    assert.equal(smtpDialogue.detectAnywhere, false);
    assert.deepEqual(smtpDialogue.defaultPorts, [25, 587]);
  });

  test('EHLO gets STARTTLS added; STARTTLS is answered here; pipelined hello bytes are kept; split reads', async () => {
    const r = await start('220-mx.example ESMTP\r\n220 welcome\r\n');
    assert.equal(await r.client.until('welcome\r\n'), '220-mx.example ESMTP\r\n220 welcome\r\n');
    await r.client.send('EH', 'LO client.example', '\r\n');
    assert.equal(await r.server.until('\r\n'), 'EHLO client.example\r\n');
    await r.server.send('250-mx.example\r\n250-PIPE', 'LINING\r\n250 8BITMIME\r\n');
    assert.equal(await r.client.until('8BITMIME\r\n'), '250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n');
    await r.client.send(Buffer.concat([Buffer.from('STARTTLS\r\n'), HELLO]));
    assert.equal(await r.client.until('\r\n'), '220 2.0.0 Ready to start TLS\r\n');
    const out = await r.outcome;
    assert.equal(out.kind, 'tls');
    assert.ok(out.kind === 'tls' && out.clientRest.equals(HELLO) && out.upstreamRest.length === 0);
    await settle();
    assert.equal(r.server.pending(), '', 'STARTTLS never reaches the server');
    assert.ok(leftClean(r));
  });

  test('a client that repeats EHLO past the bound: passthrough from there, not a close', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    for (let i = 0; i < 10; i++) {
      await r.client.send(`EHLO c${i}\r\n`);
      assert.equal(await r.server.until('\r\n'), `EHLO c${i}\r\n`);
      await r.server.send('250 mx\r\n');
      await r.client.until('STARTTLS\r\n');
    }
    // After the tenth answer the dialogue steps aside instead of closing: whatever the
    // client says next goes to the service through the relay.
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough', `got ${out.kind}`);
    assert.equal(out.clientRest.length + out.upstreamRest.length, 0);
    assert.ok(leftClean(r));
  });

  test('a one-line EHLO answer becomes two lines, the last in "250 " form', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    await r.client.send('ehlo c\r\n');
    await r.server.until('\r\n');
    await r.server.send('250 mx.example\r\n');
    assert.equal(await r.client.until('STARTTLS\r\n'), '250-mx.example\r\n250 STARTTLS\r\n');
    await r.client.send('starttls\r\n');
    assert.equal((await r.outcome).kind, 'tls');
  });

  test('a server that lists STARTTLS itself: passthrough, its answer unchanged', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    await r.client.send('EHLO c\r\n');
    await r.server.until('\r\n');
    await r.server.send('250-mx\r\n250-STARTTLS\r\n250 SIZE 100\r\n');
    const out = await r.outcome;
    assert.equal(out.kind, 'passthrough');
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.upstreamRest.toString(), '250-mx\r\n250-STARTTLS\r\n250 SIZE 100\r\n');
    assert.equal(out.clientRest.length, 0);
    await settle();
    assert.equal(r.client.pending(), '', 'the client sees the answer only through the relay');
    assert.ok(leftClean(r));
  });

  test('HELO (or any other command first): passthrough with the command unsent', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    await r.client.send('HELO c\r\nMAIL FROM:<a@b>\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.clientRest.toString(), 'HELO c\r\nMAIL FROM:<a@b>\r\n');
    await settle();
    assert.equal(r.server.pending(), '');
  });

  test('STARTTLS before EHLO is the server\'s to refuse: passthrough', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    await r.client.send('STARTTLS\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.clientRest.toString(), 'STARTTLS\r\n');
  });

  test('a refusing greeting (554) is passed through', async () => {
    const r = await start('554 no service\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.upstreamRest.toString(), '554 no service\r\n');
  });

  test('an overlong client line fails', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    await r.client.send(`EHLO ${'x'.repeat(3000)}`, 'y'.repeat(2000));
    const out = await r.outcome;
    assert.ok(out.kind === 'failed' && /longer than/.test(out.reason), JSON.stringify(out));
  });

  test('an overlong server line fails', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    await r.client.send('EHLO c\r\n');
    await r.server.until('\r\n');
    await r.server.send(`250-${'x'.repeat(5000)}\r\n`);
    const out = await r.outcome;
    assert.ok(out.kind === 'failed' && /upstream line longer/.test(out.reason), JSON.stringify(out));
  });

  test('an endless EHLO answer fails', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    await r.client.send('EHLO c\r\n');
    await r.server.until('\r\n');
    await r.server.send('250-X\r\n'.repeat(150));
    const out = await r.outcome;
    assert.ok(out.kind === 'failed' && /lines/.test(out.reason), JSON.stringify(out));
  });

  test('a truncated command (client closes mid-line) fails', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    r.client.socket.end('EHL');
    const out = await r.outcome;
    assert.ok(out.kind === 'failed' && /closed/.test(out.reason), JSON.stringify(out));
  });

  test('abort resolves promptly as failed', async () => {
    const r = await start('220 mx\r\n');
    await r.client.until('\r\n');
    r.abort.abort();
    const out = await r.outcome;
    assert.deepEqual(out, { kind: 'failed', reason: 'aborted' });
    assert.ok(leftClean(r));
  });
});

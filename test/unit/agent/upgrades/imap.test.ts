// SPDX-License-Identifier: MIT
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { imapDialogue } from '../../../../src/agent/upgrades/imap';
import { type Rig, leftClean, rig, settle } from './harness';

const HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
const DOVECOT = '* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ LOGINDISABLED] Dovecot (Debian) ready.\r\n';
const rigs: Rig[] = [];
after(() => rigs.forEach((r) => r.close()));
async function start(first: string): Promise<Rig> {
  const r = await rig(imapDialogue.create(), first);
  rigs.push(r);
  return r;
}

describe('imap dialogue', () => {
  test('detect', () => {
    assert.equal(imapDialogue.detect(Buffer.from(DOVECOT)), 'yes');
    assert.equal(imapDialogue.detect(Buffer.from('* O')), 'need-more');
    assert.equal(imapDialogue.detect(Buffer.from('* PREAUTH hi\r\n')), 'no');
    assert.equal(imapDialogue.detect(Buffer.from('+OK pop\r\n')), 'no');
    assert.deepEqual(imapDialogue.defaultPorts, [143]);
  });

  test('greeting and CAPABILITY get STARTTLS (LOGINDISABLED kept); STARTTLS answered here; split reads', async () => {
    const r = await start(DOVECOT);
    assert.equal(
      await r.client.until('\r\n'),
      '* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ LOGINDISABLED STARTTLS] Dovecot (Debian) ready.\r\n',
    );
    await r.client.send('a1 CAP', 'ABILITY\r\n');
    assert.equal(await r.server.until('\r\n'), 'a1 CAPABILITY\r\n');
    await r.server.send('* CAPABILITY IMAP4rev1 LOGIN', 'DISABLED\r\n', 'a1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n');
    assert.equal(await r.client.until('more.\r\n'), '* CAPABILITY IMAP4rev1 LOGINDISABLED STARTTLS\r\na1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n');
    await r.client.send(Buffer.concat([Buffer.from('a2 STARTTLS\r\n'), HELLO]));
    assert.equal(await r.client.until('\r\n'), 'a2 OK Begin TLS negotiation now\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'tls' && out.clientRest.equals(HELLO), JSON.stringify(out));
    await settle();
    assert.equal(r.server.pending(), '');
    assert.ok(leftClean(r));
  });

  test('a greeting that lists STARTTLS: passthrough at once, greeting unchanged', async () => {
    const r = await start('* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.upstreamRest.toString(), '* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n');
    await settle();
    assert.equal(r.client.pending(), '');
  });

  test('a CAPABILITY answer that lists STARTTLS: passthrough, answer unchanged', async () => {
    const r = await start('* OK hi\r\n');
    assert.equal(await r.client.until('\r\n'), '* OK hi\r\n');
    await r.client.send('t CAPABILITY\r\n');
    await r.server.until('\r\n');
    await r.server.send('* CAPABILITY IMAP4rev1 starttls\r\nt OK done\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.upstreamRest.toString(), '* CAPABILITY IMAP4rev1 starttls\r\nt OK done\r\n');
  });

  test('STARTTLS without capabilities seen: jfe asks the server, unseen, and answers when it lacks STARTTLS', async () => {
    const r = await start('* OK hi\r\n');
    await r.client.until('\r\n');
    await r.client.send('x STARTTLS\r\n');
    assert.equal(await r.server.until('\r\n'), 'JFE0 CAPABILITY\r\n');
    await r.server.send('* CAPABILITY IMAP4rev1\r\nJFE0 OK done\r\n');
    assert.equal(await r.client.until('\r\n'), 'x OK Begin TLS negotiation now\r\n');
    assert.equal((await r.outcome).kind, 'tls');
  });

  test('… and steps aside when the server has STARTTLS', async () => {
    const r = await start('* OK hi\r\n');
    await r.client.until('\r\n');
    await r.client.send('x STARTTLS\r\n');
    await r.server.until('\r\n');
    await r.server.send('* CAPABILITY IMAP4rev1 STARTTLS\r\nJFE0 OK done\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.clientRest.toString(), 'x STARTTLS\r\n');
    assert.equal(out.upstreamRest.length, 0);
  });

  test('any other command: passthrough with it unsent', async () => {
    const r = await start(DOVECOT);
    await r.client.until('\r\n');
    await r.client.send('a LOGIN user pass\r\n');
    const out = await r.outcome;
    assert.ok(out.kind === 'passthrough');
    assert.equal(out.clientRest.toString(), 'a LOGIN user pass\r\n');
    await settle();
    assert.equal(r.server.pending(), '');
  });

  test('an overlong command fails; a truncated one fails', async () => {
    const r = await start('* OK hi\r\n');
    await r.client.until('\r\n');
    await r.client.send('a '.repeat(2100));
    const out = await r.outcome;
    assert.ok(out.kind === 'failed' && /longer than/.test(out.reason));
    const r2 = await start('* OK hi\r\n');
    await r2.client.until('\r\n');
    r2.client.socket.end('a CAPAB');
    const out2 = await r2.outcome;
    assert.ok(out2.kind === 'failed' && /closed/.test(out2.reason));
  });
});

// SPDX-License-Identifier: MIT
// STARTTLS on behalf of mail servers without TLS: exim4 with swaks, dovecot
// with openssl s_client (IMAP and POP3), every client verifying jfe's
// certificate; the same servers with their own TLS see jfe step aside; and
// malformed or truncated commands close cleanly without harming the next.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { connectRaw, receiveAll, waitSteered } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { startDovecot, startExim } from '../helpers/mail';
import { createWorld } from '../helpers/netns';
import { makeServicePki } from '../helpers/pki';
import { requireRoot } from '../helpers/root';
import { run } from '../helpers/spawn';

test('STARTTLS for exim4 and dovecot through jfe', async (t) => {
  if (!requireRoot(t, ['exim4', 'dovecot', 'swaks', 'openssl'])) return;
  const w = createWorld(t);
  const pki = makeServicePki(path.join(w.tmp, 'pki'), 'mail.test', w.srv4);
  // Plaintext servers on the default ports; the same servers with TLS on other ports, configured.
  const exim = await startExim(w, { port: 25, name: 'exim' });
  const eximTls = await startExim(w, { port: 2525, tls: pki, name: 'exim-tls' });
  const dovecot = await startDovecot(w, { imapPort: 143, pop3Port: 110, name: 'dovecot' });
  const dovecotTls = await startDovecot(w, { imapPort: 1143, pop3Port: 1110, tls: pki, name: 'dovecot-tls' });
  const jfe = await startJfe(w, ['--upgrades', 'smtp=25+587+2525,imap=143+1143,pop3=110+1110', '--log-level', 'debug']);
  for (const port of [25, 2525, 143, 110, 1143, 1110]) await waitSteered(w, port);

  const inCli = (argv: string[], input = ''): ReturnType<typeof run> => run('ip', ['netns', 'exec', w.cli.name, ...argv], { input, timeoutMs: 30_000 });
  const swaks = (port: number, ca: string, extra: string[] = []): ReturnType<typeof run> =>
    inCli(['swaks', '--to', 'alice@mx.test', '--from', 'bob@client.test', '--server', `${w.srv4}:${port}`, '--tls', '--tls-verify', '--tls-ca-path', ca, '--timeout', '10', ...extra]);
  const received = (log: string): string[] => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes(' <= ')) : []);
  const sClient = (proto: 'imap' | 'pop3', port: number, ca: string, input: string): ReturnType<typeof run> =>
    inCli(['openssl', 's_client', '-connect', `${w.srv4}:${port}`, '-starttls', proto, '-CAfile', ca, '-verify_return_error', '-verify_ip', w.srv4, '-crlf', '-ign_eof'], input);
  const imapInput = `a LOGIN ${dovecot.user} ${dovecot.password}\nb SELECT INBOX\nc FETCH 1 BODY[]\nd LOGOUT\n`;
  const pop3Input = `USER ${dovecot.user}\nPASS ${dovecot.password}\nRETR 1\nQUIT\n`;

  await t.test('SMTP: swaks --tls --tls-verify against jfe\'s root delivers to a plaintext exim', async () => {
    const before = received(exim.mainLog).length;
    const r = await swaks(25, jfe.caFile);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /250-STARTTLS/);
    assert.match(r.stdout, /220 2\.0\.0 Ready to start TLS/);
    assert.match(r.stdout, /TLS started/);
    const lines = received(exim.mainLog).slice(before);
    assert.equal(lines.length, 1, lines.join('\n'));
    // exim saw plaintext ESMTP (P=esmtp, not esmtps) from the client's own address.
    assert.match(lines[0] ?? '', /H=.*\[10\.77\.0\.1\].* P=esmtp /);
  });

  await t.test('SMTP: a CA other than jfe\'s is refused by swaks (the verification is real)', async () => {
    const before = received(exim.mainLog).length;
    const r = await swaks(25, pki.caCert);
    assert.notEqual(r.status, 0, r.stdout);
    assert.equal(received(exim.mainLog).length, before);
  });

  await t.test('IMAP: s_client -starttls imap verifies jfe, logs in, FETCHes the message', async () => {
    const r = await sClient('imap', 143, jfe.caFile, imapInput);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    assert.match(r.stdout, /a OK .*Logged in/);
    assert.ok(r.stdout.includes(dovecot.marker), r.stdout);
  });

  await t.test('POP3: s_client -starttls pop3 verifies jfe, logs in, RETRs the message', async () => {
    const r = await sClient('pop3', 110, jfe.caFile, pop3Input);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    assert.ok(r.stdout.includes(dovecot.marker), r.stdout);
  });

  await t.test('servers with their own TLS: jfe steps aside and the clients see the server\'s certificate', async () => {
    const before = received(eximTls.mainLog).length;
    const s = await swaks(2525, pki.caCert);
    assert.equal(s.status, 0, s.stdout + s.stderr);
    const lines = received(eximTls.mainLog).slice(before);
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', / P=esmtps /, 'exim did the TLS itself');
    assert.notEqual((await swaks(2525, jfe.caFile)).status, 0, 'jfe\'s certificate is not the one shown');
    const i = await sClient('imap', 1143, pki.caCert, imapInput.replace(/LOGIN \S+ \S+/, `LOGIN ${dovecotTls.user} ${dovecotTls.password}`));
    assert.equal(i.status, 0, i.stdout + i.stderr);
    assert.match(i.stdout, /issuer=CN = mail\.test test CA/);
    assert.ok(i.stdout.includes(dovecotTls.marker));
    const p = await sClient('pop3', 1110, pki.caCert, pop3Input);
    assert.equal(p.status, 0, p.stdout + p.stderr);
    assert.match(p.stdout, /issuer=CN = mail\.test test CA/);
    assert.ok(p.stdout.includes(dovecotTls.marker));
  });

  await t.test('malformed and truncated commands close cleanly; the next connection works', async () => {
    const cases: { port: number; greeting: RegExp; send: string; end: boolean }[] = [
      { port: 25, greeting: /^220 /m, send: `EHLO ${'x'.repeat(6000)}\r\n`, end: false },
      { port: 25, greeting: /^220 /m, send: 'EHL', end: true },
      { port: 143, greeting: /^\* OK /m, send: `a ${'X'.repeat(6000)}`, end: false },
      { port: 143, greeting: /^\* OK /m, send: 'a CAPAB', end: true },
      { port: 110, greeting: /^\+OK/m, send: 'CAPA\r\nS'.padEnd(6000, 'S'), end: false },
      { port: 110, greeting: /^\+OK/m, send: 'ST', end: true },
    ];
    for (const c of cases) {
      const sock = await connectRaw(w.cli, w.srv4, c.port);
      const greeted = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no greeting on ${c.port}`)), 10_000);
        sock.once('error', reject);
        sock.once('data', (d: Buffer) => {
          clearTimeout(timer);
          sock.pause();
          resolve(d.toString('latin1'));
        });
      });
      assert.match(greeted, c.greeting);
      const got = receiveAll(sock, 10_000);
      if (c.end) sock.end(c.send);
      else sock.write(c.send);
      const r = await got;
      assert.equal(r.ending.kind, 'end', `${c.port} ${c.send.slice(0, 10)}: ${JSON.stringify(r.ending)}`);
    }
    assert.equal((await swaks(25, jfe.caFile)).status, 0);
    assert.ok((await sClient('imap', 143, jfe.caFile, imapInput)).stdout.includes(dovecot.marker));
    assert.ok((await sClient('pop3', 110, jfe.caFile, pop3Input)).stdout.includes(dovecot.marker));
  });

  await t.test('jfe upgraded the plaintext servers\' sessions and passed the TLS servers\' through', async () => {
    const closed = jfe.logs.filter((l) => l.msg === 'connection closed');
    const kinds = (port: number): Set<unknown> => new Set(closed.filter((l) => l.port === port).map((l) => l.kind));
    for (const port of [25, 143, 110]) assert.ok(kinds(port).has('upgrade'), `${port}: ${[...kinds(port)].join()}`);
    for (const port of [2525, 1143, 1110]) assert.deepEqual([...kinds(port)], ['plain'], `${port}`);
    assert.deepEqual(jfe.logs.filter((l) => typeof l.level === 'number' && l.level >= 50), []);
  });
});

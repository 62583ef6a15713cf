// SPDX-License-Identifier: MIT
// Fuzz targets: the SMTP, IMAP and POP3 upgrade dialogues (lines.ts,
// dialogue-io.ts and each protocol's parsing of replies, capabilities and
// commands), driven through in-memory sockets by a fuzzed client and server.
// Properties: those every dialogue shares (dialogue-harness.ts), and: the
// client is told yes (the protocol's own ready line, last) only once it was
// offered STARTTLS/STLS, or after jfe asked the server's capabilities itself;
// a dialogue never waits on a line longer than MAX_LINE_BYTES.
import assert from 'node:assert/strict';
import { imapDialogue } from '../../../src/agent/upgrades/imap';
import { pop3Dialogue } from '../../../src/agent/upgrades/pop3';
import { smtpDialogue } from '../../../src/agent/upgrades/smtp';
import { MAX_LINE_BYTES } from '../../../src/agent/upgrades/lines';
import type { DialogueFactory } from '../../../src/agent/upgrades/upgrade';
import { type Conversation, KEEP_ALL, checkConversation, conversations, sessionSeeds, sessionsOf } from '../dialogue-harness';
import type { FuzzTarget } from '../target';
import { greetingLength, lineStream } from './mail-lines';

interface MailProtocol {
  name: string;
  factory: DialogueFactory;
  client: readonly string[];
  server: readonly string[];
  /** The line that tells the client to start TLS, as a pattern over what the dialogue wrote to it. */
  ready: RegExp;
  /** Whether the client was offered the upgrade (in what it was sent), or jfe asked the server itself (in what the server was sent). */
  offered(toClient: string, toServer: string): boolean;
}

function mailTarget(p: MailProtocol): FuzzTarget<Conversation> {
  const dir = `test/fuzz/corpus/${p.name}`;
  return {
    name: p.name,
    corpusDirs: [dir],
    smokeRuns: 1500,
    async: true,
    seeds: (corpus) => sessionSeeds(sessionsOf(corpus), (s) => greetingLength(s.server)),
    input: (corpus) => conversations(sessionsOf(corpus), lineStream(p.client), lineStream(p.server)),
    async check(c: Conversation): Promise<void> {
      // The server's lines do not reach the client unchanged on every path (jfe edits capability lists and hides its own probe's answer).
      const seen = await checkConversation(p.factory, c, { ...KEEP_ALL, serverBytesReachClient: false });
      // Bounded: a dialogue left waiting for a line holds less than a line's bound of that side (what came after its last LF).
      if (seen.waitingOn !== null) {
        const stream = seen.waitingOn === 'client' ? c.client : c.server;
        const tail = stream.length - (stream.lastIndexOf(0x0a) + 1);
        assert.ok(tail < MAX_LINE_BYTES, `waited on a ${seen.waitingOn} line of ${tail} bytes without its end`);
      }
      if (seen.kind === 'tls') {
        const told = seen.toClient.toString('latin1');
        assert.match(told, p.ready, 'on tls the client was last told to start TLS');
        assert.ok(p.offered(told, seen.toUpstream.toString('latin1')), 'on tls the client was offered the upgrade first, or jfe asked the server');
      }
    },
  };
}

export const smtpTarget = mailTarget({
  name: 'smtp',
  factory: smtpDialogue,
  client: ['EHLO client.example', 'ehlo x', 'HELO client.example', 'STARTTLS', 'starttls', 'STARTTLS now', 'MAIL FROM:<a@b.example>', 'NOOP', 'QUIT', 'RSET'],
  server: ['220 mx.example ESMTP', '220-mx.example ESMTP', '220 ', '554 go away', '250-mx.example', '250-SIZE 52428800', '250-8BITMIME', '250-STARTTLS', '250 STARTTLS', '250-starttls', '250 HELP', '250 mx.example', '250-AUTH PLAIN', '500 unrecognized', '421 bye', '250'],
  ready: /220 2\.0\.0 Ready to start TLS\r\n$/,
  offered: (toClient) => /250[- ]STARTTLS/.test(toClient),
});

export const imapTarget = mailTarget({
  name: 'imap',
  factory: imapDialogue,
  client: ['a1 CAPABILITY', 'a2 STARTTLS', 'a1 capability', 'JFE0 STARTTLS', 'a LOGIN user pass', 'x NOOP', 'a1 STARTTLS extra', '* STARTTLS', 'a3 LOGOUT'],
  server: [
    '* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ LOGINDISABLED AUTH=PLAIN] Dovecot ready.',
    '* OK [CAPABILITY IMAP4rev1 STARTTLS] ready',
    '* OK IMAP4rev1 ready',
    '* PREAUTH ready',
    '* BYE go away',
    '* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR',
    '* CAPABILITY IMAP4rev1 STARTTLS',
    '* CAPABILITY',
    'a1 OK Capability completed.',
    'a1 OK [CAPABILITY IMAP4rev1 IDLE] done',
    'JFE0 OK Capability completed.',
    'a2 BAD unknown',
    '* OK [CAPABILITY',
    '* ok [capability imap4rev1 starttls] hi',
  ],
  ready: /OK Begin TLS negotiation now\r\n$/,
  offered: (toClient, toServer) => /CAPABILITY [^\n]*STARTTLS/i.test(toClient) || toServer.includes('JFE0 CAPABILITY\r\n'),
});

export const pop3Target = mailTarget({
  name: 'pop3',
  factory: pop3Dialogue,
  client: ['CAPA', 'capa', 'STLS', 'stls', 'USER bob', 'PASS x', 'QUIT', 'STLS now'],
  server: ['+OK Dovecot ready.', '+OK', '-ERR no', '+OK Capability list follows', 'CAPA', 'TOP', 'UIDL', 'RESP-CODES', 'SASL PLAIN', 'USER', 'STLS', 'stls', '.', '..', 'PIPELINING'],
  ready: /\+OK Begin TLS\r\n$/,
  offered: (toClient, toServer) => /^STLS\r?$/m.test(toClient) || toServer.includes('CAPA'),
});

// SPDX-License-Identifier: MIT
// SMTP STARTTLS (RFC 3207) on behalf of a server without TLS: the greeting is
// relayed, STARTTLS is added to the server's EHLO answer, and the client's
// STARTTLS is answered here. After the handshake the client's new EHLO goes to
// the server, which takes a repeated EHLO as a fresh start (RFC 5321 4.1.4).
import type net from 'node:net';
import { DialogueStop, runDialogue } from './dialogue-run';
import { LineIo, eol, startsWith, text } from './lines';
import type { Dialogue, DialogueFactory, UpgradeOutcome } from './upgrade';

/** Lines in one server reply, and client commands before the client must decide. */
const MAX_REPLY_LINES = 100;
const MAX_COMMANDS = 10;

const REPLY_LINE = /^(\d{3})([ -])(.*)$/s;

interface Reply {
  /** Null: a line that is no reply line at all (the lines read so far are kept). */
  code: string | null;
  lines: Buffer[];
}

/** One multi-line reply (RFC 5321 4.2.1). */
async function readReply(io: LineIo): Promise<Reply> {
  const lines: Buffer[] = [];
  for (;;) {
    if (lines.length >= MAX_REPLY_LINES) throw new DialogueStop(`server reply longer than ${MAX_REPLY_LINES} lines`);
    const line = await io.line('upstream');
    lines.push(line);
    const m = REPLY_LINE.exec(text(line));
    if (!m || (lines.length > 1 && m[1] !== REPLY_LINE.exec(text(lines[0] as Buffer))?.[1])) return { code: null, lines };
    if (m[2] === ' ') return { code: m[1] as string, lines };
  }
}

/** Whether an EHLO reply lists STARTTLS (each line after the first is "250-KEYWORD params"). */
function listsStartTls(reply: Reply): boolean {
  return reply.lines.slice(1).some((l) => /^STARTTLS$/i.test(text(l).slice(4).trim().split(/\s+/)[0] ?? ''));
}

/** The EHLO reply with "250-STARTTLS" before its last line, the last keeping its "250 " form. */
function withStartTls(reply: Reply): Buffer {
  const last = reply.lines[reply.lines.length - 1] as Buffer;
  if (reply.lines.length === 1) {
    // A one-line reply ("250 host") becomes "250-host" + "250 STARTTLS".
    return Buffer.concat([Buffer.from(`250-${text(last).slice(4)}${eol(last)}`, 'latin1'), Buffer.from(`250 STARTTLS${eol(last)}`)]);
  }
  return Buffer.concat([...reply.lines.slice(0, -1), Buffer.from(`250-STARTTLS${eol(last)}`), last]);
}

class SmtpDialogue implements Dialogue {
  readonly protocol = 'smtp' as const;

  run(client: net.Socket, upstream: net.Socket, first: Buffer, signal: AbortSignal): Promise<UpgradeOutcome> {
    return runDialogue(new LineIo(client, upstream, first, signal), (io) => this.talk(io));
  }

  private async talk(io: LineIo): Promise<UpgradeOutcome> {
    const passthrough = (toClient: Buffer[] = [], toServer: Buffer[] = []): UpgradeOutcome => io.passthrough(toClient, toServer);
    const greeting = await readReply(io);
    // Not a 220 greeting (a 554 refusal, or no SMTP at all): none of our business.
    if (greeting.code !== '220') return passthrough(greeting.lines);
    io.write('client', Buffer.concat(greeting.lines));
    let offered = false;
    for (let n = 0; n < MAX_COMMANDS; n++) {
      const command = await io.line('client');
      const verb = (/^([A-Za-z]+)/.exec(text(command))?.[1] ?? '').toUpperCase();
      if (verb === 'STARTTLS' && offered && text(command).trim().length === 'STARTTLS'.length) {
        io.write('client', '220 2.0.0 Ready to start TLS\r\n');
        return { kind: 'tls', clientRest: io.rest('client'), upstreamRest: io.rest('upstream') };
      }
      // HELO, MAIL, STARTTLS before EHLO, anything else: the client goes on without TLS.
      if (verb !== 'EHLO') return passthrough([], [command]);
      io.write('upstream', command);
      const reply = await readReply(io);
      if (reply.code === null) return passthrough(reply.lines);
      if (reply.code !== '250') {
        // Refused EHLO: relayed as is; the client may try again (or HELO).
        offered = false;
        io.write('client', Buffer.concat(reply.lines));
        continue;
      }
      // The server does TLS itself: never stand in its way.
      if (listsStartTls(reply)) return passthrough(reply.lines);
      io.write('client', withStartTls(reply));
      offered = true;
    }
    // A client that keeps saying EHLO is odd, not hostile to the service: step aside.
    return passthrough();
  }
}

export const smtpDialogue: DialogueFactory = {
  protocol: 'smtp',
  firstSpeaker: 'server',
  defaultPorts: [25, 587],
  // "220 " or "220-": many services greet with a number; by port only.
  detect: (first) => {
    const r = startsWith(first, '220');
    if (r !== 'yes') return r;
    if (first.length < 4) return 'need-more';
    return first[3] === 0x20 || first[3] === 0x2d ? 'yes' : 'no';
  },
  detectAnywhere: false,
  create: () => new SmtpDialogue(),
};

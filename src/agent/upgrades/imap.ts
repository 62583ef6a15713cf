// SPDX-License-Identifier: MIT
// IMAP STARTTLS (RFC 3501 6.2.1, RFC 2595) on behalf of a server without TLS:
// STARTTLS is added to the capabilities the server lists (greeting response
// code, CAPABILITY answer), and the client's STARTTLS is answered here.
// Authentication policy stays the server's: LOGINDISABLED is left as it is.
import type net from 'node:net';
import { DialogueStop, runDialogue } from './dialogue-run';
import { LineIo, startsWith, text } from './lines';
import type { Dialogue, DialogueFactory, UpgradeOutcome } from './upgrade';

/** Lines in one server response, and client commands before the client must decide. */
const MAX_RESPONSE_LINES = 100;
const MAX_COMMANDS = 10;
/** The tag of the CAPABILITY jfe asks itself when a client sends STARTTLS without asking first. */
const PROBE_TAG = 'JFE0';

const UNTAGGED_CAPS = /^(\* CAPABILITY)( [^\r\n]*?)?(\r?\n)$/i;
const CODE_CAPS = /^([^\r\n]*?\[CAPABILITY)( [^\]\r\n]*)?(\][^\r\n]*\r?\n)$/i;

/** The capabilities a line lists (untagged CAPABILITY or a [CAPABILITY …] code), or null. */
export function capabilitiesOf(line: Buffer): string[] | null {
  const s = line.toString('latin1');
  const m = UNTAGGED_CAPS.exec(s) ?? CODE_CAPS.exec(s);
  if (!m) return null;
  return (m[2] ?? '').trim().split(/\s+/).filter((c) => c.length > 0);
}

/** The line with STARTTLS appended to its capability list. */
function addStartTls(line: Buffer): Buffer {
  const s = line.toString('latin1');
  const m = UNTAGGED_CAPS.exec(s) ?? CODE_CAPS.exec(s);
  if (!m) return line;
  return Buffer.from(`${m[1] ?? ''}${m[2] ?? ''} STARTTLS${m[3] ?? ''}`, 'latin1');
}

const hasStartTls = (caps: string[]): boolean => caps.some((c) => c.toUpperCase() === 'STARTTLS');

class ImapDialogue implements Dialogue {
  readonly protocol = 'imap' as const;

  run(client: net.Socket, upstream: net.Socket, first: Buffer, signal: AbortSignal): Promise<UpgradeOutcome> {
    return runDialogue(new LineIo(client, upstream, first, signal), (io) => this.talk(io));
  }

  /** Server lines up to and including the one tagged `tag`. */
  private async response(io: LineIo, tag: string): Promise<Buffer[]> {
    const lines: Buffer[] = [];
    for (;;) {
      if (lines.length >= MAX_RESPONSE_LINES) throw new DialogueStop(`server response longer than ${MAX_RESPONSE_LINES} lines`);
      const line = await io.line('upstream');
      lines.push(line);
      if (text(line).startsWith(`${tag} `)) return lines;
    }
  }

  private async talk(io: LineIo): Promise<UpgradeOutcome> {
    const passthrough = (toClient: Buffer[] = [], toServer: Buffer[] = []): UpgradeOutcome => io.passthrough(toClient, toServer);
    const greeting = await io.line('upstream');
    // PREAUTH, BYE: nothing to upgrade.
    if (!/^\* OK\b/i.test(text(greeting))) return passthrough([greeting]);
    // Whether the client has been told about STARTTLS (by us: the server lacks it).
    let offered = false;
    const greetingCaps = capabilitiesOf(greeting);
    if (greetingCaps !== null) {
      if (hasStartTls(greetingCaps)) return passthrough([greeting]);
      offered = true;
      io.write('client', addStartTls(greeting));
    } else {
      io.write('client', greeting);
    }
    for (let n = 0; n < MAX_COMMANDS; n++) {
      const command = await io.line('client');
      const m = /^([^\s(){%*"\\\]]+) ([A-Za-z]+)\r?\n$/.exec(command.toString('latin1'));
      const verb = m?.[2]?.toUpperCase();
      const tag = m?.[1] ?? '';
      if (verb === 'CAPABILITY') {
        io.write('upstream', command);
        const lines = await this.response(io, tag);
        const edited: Buffer[] = [];
        for (const line of lines) {
          const caps = capabilitiesOf(line);
          if (caps !== null && hasStartTls(caps)) return passthrough(lines);
          if (caps !== null) offered = true;
          edited.push(caps === null ? line : addStartTls(line));
        }
        io.write('client', Buffer.concat(edited));
        continue;
      }
      if (verb !== 'STARTTLS') return passthrough([], [command]);
      if (!offered) {
        // STARTTLS without asking: ask the server ourselves, unseen by the client.
        io.write('upstream', `${PROBE_TAG} CAPABILITY\r\n`);
        const lines = await this.response(io, PROBE_TAG);
        if (lines.some((l) => hasStartTls(capabilitiesOf(l) ?? []))) return passthrough([], [command]);
      }
      io.write('client', `${tag} OK Begin TLS negotiation now\r\n`);
      return { kind: 'tls', clientRest: io.rest('client'), upstreamRest: io.rest('upstream') };
    }
    throw new DialogueStop(`more than ${MAX_COMMANDS} commands before STARTTLS`);
  }
}

export const imapDialogue: DialogueFactory = {
  protocol: 'imap',
  firstSpeaker: 'server',
  defaultPorts: [143],
  detect: (first) => startsWith(first, '* OK', true),
  detectAnywhere: false,
  create: () => new ImapDialogue(),
};

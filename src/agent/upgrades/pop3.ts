// SPDX-License-Identifier: MIT
// POP3 STLS (RFC 2595 4) on behalf of a server without TLS: STLS is added to
// the server's CAPA list (RFC 2449) and the client's STLS is answered here.
import type net from 'node:net';
import { DialogueStop, runDialogue } from './dialogue-run';
import { LineIo, eol, startsWith, text } from './lines';
import type { Dialogue, DialogueFactory, UpgradeOutcome } from './upgrade';

/** Lines in one CAPA list, and client commands before the client must decide. */
const MAX_CAPA_LINES = 100;
const MAX_COMMANDS = 10;

interface Capa {
  /** +OK: a list follows, ended by "."; -ERR: the server knows no CAPA. */
  ok: boolean;
  lines: Buffer[];
}

async function readCapa(io: LineIo): Promise<Capa> {
  const lines = [await io.line('upstream')];
  if (!/^\+OK\b/i.test(text(lines[0] as Buffer))) return { ok: false, lines };
  for (;;) {
    if (lines.length >= MAX_CAPA_LINES) throw new DialogueStop(`CAPA list longer than ${MAX_CAPA_LINES} lines`);
    const line = await io.line('upstream');
    lines.push(line);
    if (text(line) === '.') return { ok: true, lines };
  }
}

const listsStls = (capa: Capa): boolean => capa.ok && capa.lines.slice(1, -1).some((l) => /^STLS$/i.test(text(l).trim().split(/\s+/)[0] ?? ''));

class Pop3Dialogue implements Dialogue {
  readonly protocol = 'pop3' as const;

  run(client: net.Socket, upstream: net.Socket, first: Buffer, signal: AbortSignal): Promise<UpgradeOutcome> {
    return runDialogue(new LineIo(client, upstream, first, signal), (io) => this.talk(io));
  }

  private async talk(io: LineIo): Promise<UpgradeOutcome> {
    const passthrough = (toClient: Buffer[] = [], toServer: Buffer[] = []): UpgradeOutcome => io.passthrough(toClient, toServer);
    const greeting = await io.line('upstream');
    if (!/^\+OK\b/i.test(text(greeting))) return passthrough([greeting]);
    io.write('client', greeting);
    // Whether the server's CAPA list was seen (and lacked STLS, which we added).
    let offered = false;
    for (let n = 0; n < MAX_COMMANDS; n++) {
      const command = await io.line('client');
      const verb = /^([A-Za-z]+)\r?\n$/.exec(command.toString('latin1'))?.[1]?.toUpperCase();
      if (verb === 'CAPA') {
        io.write('upstream', command);
        const capa = await readCapa(io);
        if (listsStls(capa)) return passthrough(capa.lines);
        if (capa.ok) {
          const end = capa.lines[capa.lines.length - 1] as Buffer;
          io.write('client', Buffer.concat([...capa.lines.slice(0, -1), Buffer.from(`STLS${eol(end)}`), end]));
          offered = true;
        } else {
          io.write('client', Buffer.concat(capa.lines));
        }
        continue;
      }
      if (verb !== 'STLS') return passthrough([], [command]);
      if (!offered) {
        // STLS without CAPA (openssl s_client does this): ask the server ourselves, unseen by the client.
        io.write('upstream', 'CAPA\r\n');
        if (listsStls(await readCapa(io))) return passthrough([], [command]);
      }
      io.write('client', '+OK Begin TLS\r\n');
      return { kind: 'tls', clientRest: io.rest('client'), upstreamRest: io.rest('upstream') };
    }
    throw new DialogueStop(`more than ${MAX_COMMANDS} commands before STLS`);
  }
}

export const pop3Dialogue: DialogueFactory = {
  protocol: 'pop3',
  firstSpeaker: 'server',
  defaultPorts: [110],
  detect: (first) => startsWith(first, '+OK', true),
  detectAnywhere: false,
  create: () => new Pop3Dialogue(),
};

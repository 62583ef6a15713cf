// SPDX-License-Identifier: MIT
// Line-by-line reading of both sockets for the text protocols' upgrade
// dialogues (SMTP, IMAP, POP3), and the line helpers they share. Every line
// is bounded: a peer that never sends LF must not make us buffer without end.
import type net from 'node:net';
import { type Cut, DialogueIo, type Side } from './dialogue-io';
import type { UpgradeOutcome } from './upgrade';

/** Longest line either side may send during a dialogue (SMTP's limit is 512; IMAP capability lists run longer). */
export const MAX_LINE_BYTES = 4096;

const LF = 0x0a;

/** A whole line, terminator included (LF, usually CRLF); a line that reaches `maxLine` bytes without one stops the dialogue. */
function lineCut(side: Side, maxLine: number): Cut {
  return (buffered) => {
    const end = buffered.indexOf(LF);
    if (end >= 0 && end < maxLine) return end + 1;
    if (end >= 0 || buffered.length >= maxLine) return { stop: `${side} line longer than ${maxLine} bytes` };
    return null;
  };
}

/** Both sockets of one dialogue, read as lines. */
export class LineIo extends DialogueIo {
  constructor(
    client: net.Socket,
    upstream: net.Socket,
    /** What the server sent first (all three mail protocols: the greeting). */
    first: Buffer,
    signal: AbortSignal,
    private readonly maxLine = MAX_LINE_BYTES,
  ) {
    super(client, upstream, first, 'upstream', signal, (side) => `${side} closed during the dialogue`);
  }

  /** The next line from `side`; rejects with DialogueStop on close, error, abort or an overlong line. */
  line(side: Side): Promise<Buffer> {
    return this.read(side, lineCut(side, this.maxLine));
  }

  /**
   * Step aside: each side gets what it has not seen yet (`toClient` lines the
   * server sent, `toServer` lines the client sent), then whatever was read past them.
   */
  passthrough(toClient: Buffer[] = [], toServer: Buffer[] = []): UpgradeOutcome {
    return {
      kind: 'passthrough',
      clientRest: Buffer.concat([...toServer, this.rest('client')]),
      upstreamRest: Buffer.concat([...toClient, this.rest('upstream')]),
    };
  }
}

/** A line without its CRLF or LF, as latin1 text (bytes kept one-to-one). */
export function text(line: Buffer): string {
  return line.toString('latin1').replace(/\r?\n$/, '');
}

/** The line's own terminator, so an edited line keeps the server's style. */
export function eol(line: Buffer): string {
  return line.length >= 2 && line[line.length - 2] === 0x0d ? '\r\n' : '\n';
}

/** 'yes' when `first` starts with `opening`, 'need-more' while it is a prefix of it, else 'no'. */
export function startsWith(first: Buffer, opening: string, caseInsensitive = false): 'yes' | 'no' | 'need-more' {
  const n = Math.min(first.length, opening.length);
  let head = first.subarray(0, n).toString('latin1');
  let want = opening.slice(0, n);
  if (caseInsensitive) {
    head = head.toUpperCase();
    want = want.toUpperCase();
  }
  if (head !== want) return 'no';
  return first.length >= opening.length ? 'yes' : 'need-more';
}

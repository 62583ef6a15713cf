// SPDX-License-Identifier: MIT
// Line streams for the mail dialogues' fuzz targets: protocol lines picked
// from a target's vocabulary, ended with CRLF or LF, now and then a line
// without its end, one longer than the dialogues' bound, or raw bytes
// (a ClientHello after STARTTLS); the stream of one peer, whole.
import fc from 'fast-check';
import { MAX_LINE_BYTES } from '../../../src/agent/upgrades/lines';
import { toBuffer } from '../inputs';

const line = (vocabulary: readonly string[]): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...vocabulary) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...vocabulary), fc.string({ maxLength: 24 })).map(([a, b]) => a + b) },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.integer({ min: MAX_LINE_BYTES - 2, max: MAX_LINE_BYTES + 2 }).map((n) => 'x'.repeat(n)) },
  );

const ending = fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '', '\r');

/** A peer's whole stream: lines of `vocabulary`, then maybe raw bytes (what a client sends once TLS is agreed). */
export function lineStream(vocabulary: readonly string[]): fc.Arbitrary<Buffer> {
  const lines = fc.array(fc.tuple(line(vocabulary), ending), { maxLength: 14 });
  // Now and then past the dialogues' bounds on lines per reply (100) and commands (10).
  const many = fc
    .tuple(fc.constantFrom(...vocabulary), fc.integer({ min: 90, max: 130 }))
    .map(([l, n]): [string, string][] => Array.from({ length: n }, () => [l, '\r\n']));
  return fc
    .tuple(fc.oneof({ weight: 19, arbitrary: lines }, { weight: 1, arbitrary: many }), fc.option(fc.uint8Array({ maxLength: 64 }), { freq: 3 }))
    .map(([lines, raw]) =>
      Buffer.concat([Buffer.from(lines.map(([l, e]) => l + e).join(''), 'latin1'), raw === null ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), toBuffer(raw)])]),
    );
}

/** How much of a server's stream was read before a mail dialogue starts: its greeting line, as the registry sees it. */
export const greetingLength = (server: Buffer): number => {
  const lf = server.indexOf(0x0a);
  return lf < 0 ? server.length : lf + 1;
};

// SPDX-License-Identifier: MIT
// Fuzz target: the pure parsers inside the dialogues, fed directly (the
// dialogue targets reach them a few thousand times a second; here they get
// hostile inputs by the hundred thousand): MySQL's parseGreeting over a
// server greeting's payload, IMAP's capabilitiesOf over a server line (its
// regular expressions over lines up to the dialogues' bound).
// Properties: never an exception; parseGreeting gives null or offsets and
// fields inside the payload, as Handshake v10 lays them out; capabilitiesOf
// gives null or whitespace-free names, the same for the line with CRLF or LF.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { capabilitiesOf } from '../../../src/agent/upgrades/imap';
import { MAX_LINE_BYTES } from '../../../src/agent/upgrades/lines';
import { parseGreeting } from '../../../src/agent/upgrades/mysql';
import { bytesInput } from '../inputs';
import { type Corpus, type FuzzTarget, filesEnding } from '../target';
import { tally } from '../tally';

type Input = { greeting: Buffer } | { line: string };

/** The payload of each greeting packet the corpus's MySQL servers sent first. */
const greetingsOf = (corpus: Corpus): Buffer[] => filesEnding(corpus, '.server').filter((b) => b[4] === 0x0a).map((b) => b.subarray(4, 4 + b.readUIntLE(0, 3)));

/** Lines of the dialogues' bound at most, from pieces that make the capability patterns backtrack. */
const imapLine = fc
  .array(fc.constantFrom('* ', 'OK ', '[CAPABILITY', '[capability', ' ', 'IMAP4rev1', 'STARTTLS', ']', '[', 'a1 ', 'CAPABILITY', '\r', 'x'), { maxLength: 600 })
  .map((parts) => `${parts.join('').slice(0, MAX_LINE_BYTES - 2)}\r\n`);

/** Capability lines as servers write them, and nearly. */
const capabilityLine = fc
  .tuple(
    fc.constantFrom('* CAPABILITY', '* OK [CAPABILITY', 'a1 OK [CAPABILITY', '* ok [capability', '* OK [', '* CAPABILITYX'),
    fc.array(fc.constantFrom(' IMAP4rev1', ' STARTTLS', ' AUTH=PLAIN', ' LOGINDISABLED', '  ', ' [', ']', 'x', '\t'), { maxLength: 40 }),
    fc.constantFrom('', ']', '] Dovecot ready.', ']]'),
    fc.constantFrom('\r\n', '\n', '', '\r'),
  )
  .map((parts) => parts.join(''));

function checkGreeting(payload: Buffer): void {
  const g = parseGreeting(payload);
  tally(g === null ? 'greeting: null' : 'greeting');
  if (g === null) return;
  assert.equal(payload[0], 0x0a, 'a greeting is protocol 10');
  const nul = payload.indexOf(0, 1);
  assert.equal(g.version, payload.subarray(1, nul).toString('latin1'), 'the version is the bytes up to the first NUL');
  assert.equal(g.capsOffset, nul + 1 + 4 + 8 + 1, 'caps follow the thread id, scramble and filler');
  assert.ok(g.capsOffset + 2 <= payload.length, 'the low caps are inside the payload');
  assert.ok(Number.isInteger(g.caps) && g.caps >= 0 && g.caps <= 0xffffffff, 'caps are 32 bits');
  assert.equal(g.caps & 0xffff, payload.readUInt16LE(g.capsOffset), 'the low caps are the payload\'s');
}

function checkLine(line: string): void {
  const caps = capabilitiesOf(Buffer.from(line, 'latin1'));
  tally(caps === null ? 'capabilities: null' : 'capabilities');
  if (caps === null) return;
  for (const c of caps) assert.ok(c.length > 0 && !/\s/.test(c), `capability ${JSON.stringify(c)}`);
  assert.deepEqual(capabilitiesOf(Buffer.from(line.replace(/\r\n$/, '\n'), 'latin1')), caps, 'CRLF or LF, the same capabilities');
}

export const packetParsersTarget: FuzzTarget<Input> = {
  name: 'packet-parsers',
  corpusDirs: ['test/fuzz/corpus/mysql', 'test/fuzz/corpus/imap'],
  smokeRuns: 20_000,
  async: false,
  seeds: (corpus) => [
    ...greetingsOf(corpus).map((greeting) => ({ greeting })),
    ...filesEnding(corpus, '.server')
      .flatMap((b) => b.toString('latin1').split(/(?<=\n)/))
      .filter((l) => l.startsWith('*') || /^\w+ OK/.test(l))
      .map((line) => ({ line })),
  ],
  input: (corpus) =>
    fc.oneof(
      bytesInput(greetingsOf(corpus), undefined, 256).map((greeting) => ({ greeting })),
      fc.oneof(imapLine, capabilityLine, bytesInput(filesEnding(corpus, '.server'), undefined, MAX_LINE_BYTES).map((b) => b.toString('latin1'))).map((line) => ({ line })),
    ),
  check(input: Input): void {
    if ('greeting' in input) checkGreeting(input.greeting);
    else checkLine(input.line);
  },
};

// SPDX-License-Identifier: MIT
// Fuzz target: the TLS-answer check, which reads a service's first answer to
// a ClientHello and decides whether the service terminates TLS itself.
// Properties: one of the documented verdicts, never an exception; real TLS
// answers (captured ServerHellos and alerts, and well-formed ones built here,
// followed by anything) are TLS, and real plaintext answers are not; nothing
// that does not start with a handshake or alert record is TLS. With the
// rewritten check (issue 13 part 1) also: every prefix is need-more or the
// whole answer's verdict; a handshake record that does not open with a
// ServerHello, a ClientHello sent back (an echo) among them, is never TLS.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { tlsAnswer } from '../../../src/agent/tls-answer';
import { clientHelloFixtures, ext, frame, handshake, u16, u8, vec16, vec8 } from '../../helpers/tls-records';
import { assertPrefixesAgree, bytesInput, cutPoints, toBuffer } from '../inputs';
import { tally } from '../tally';
import { type Corpus, type FuzzTarget, filesEnding } from '../target';

// ---- the check as the properties see it: adapting to a new signature changes this block only ----
type AnswerVerdict = 'tls' | 'not-tls' | 'need-more';
/** What the probe sent: a real client's ClientHello (an answer that repeats it is an echo). */
const SENT = (clientHelloFixtures()[0] as [string, Buffer])[1];
const answerCheck = {
  verdict: (answer: Buffer): AnswerVerdict => tlsAnswer(answer, SENT),
  /** The check is asked again with more bytes while it says need-more. */
  incremental: true,
  /** Only a ServerHello (HelloRetryRequest included) or an alert is a TLS answer. */
  serverHelloOrAlertOnly: true,
};
// ---- end of the adapter ----

const VERDICTS = new Set<string>(['tls', 'not-tls', 'need-more']);
const HANDSHAKE = 0x16;
const ALERT = 0x15;
const SERVER_HELLO = 2;
/** RFC 8446 4.1.3: the random of a HelloRetryRequest. */
const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

interface Input {
  bytes: Buffer;
  /** The verdict every version of the check must give: a real answer captured, or a well-formed one built here; null when unknown (mutated). */
  expect: 'tls' | 'not-tls' | null;
  cuts: number[];
}

/** A well-formed ServerHello or HelloRetryRequest record (RFC 8446 4.1.3), then whatever the server sent next. */
const serverHello: fc.Arbitrary<Buffer> = fc
  .record({
    retry: fc.boolean(),
    random: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    sessionId: fc.uint8Array({ maxLength: 32 }),
    suite: fc.constantFrom(0x1301, 0x1302, 0x1303, 0xc02f, 0xc030, 0x009e),
    tls13: fc.boolean(),
    keyShare: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    recordVersion: fc.constantFrom(0x0303, 0x0301),
    after: fc.uint8Array({ maxLength: 64 }),
  })
  .map((f) => {
    const exts = f.tls13 ? Buffer.concat([ext(43, u16(0x0304)), ext(51, f.retry ? u16(0x001d) : Buffer.concat([u16(0x001d), vec16(toBuffer(f.keyShare))]))]) : Buffer.alloc(0);
    const body = Buffer.concat([u16(0x0303), f.retry ? HRR_RANDOM : toBuffer(f.random), vec8(toBuffer(f.sessionId)), u16(f.suite), u8(0), vec16(exts)]);
    return Buffer.concat([frame(handshake(body, SERVER_HELLO), [], f.recordVersion), toBuffer(f.after)]);
  });

/** An alert record (RFC 8446 6): level warning or fatal, a description servers send before any handshake. */
const alert: fc.Arbitrary<Buffer> = fc
  .record({
    level: fc.constantFrom(1, 2),
    description: fc.constantFrom(0, 10, 40, 47, 70, 71, 80, 86, 109, 112, 120),
    recordVersion: fc.constantFrom(0x0303, 0x0301, 0x0300),
    after: fc.uint8Array({ maxLength: 8 }),
  })
  .map((f) => Buffer.concat([u8(ALERT), u16(f.recordVersion), u16(2), u8(f.level), u8(f.description), toBuffer(f.after)]));

/** Handshake records of any other message type: what a reflecting service or a confused one may send. */
const otherHandshake: fc.Arbitrary<Buffer> = fc
  .tuple(fc.integer({ min: 0, max: 255 }).filter((t) => t !== SERVER_HELLO), fc.uint8Array({ maxLength: 80 }))
  .map(([type, body]) => frame(handshake(toBuffer(body), type), [], 0x0303));

const wellFormed = fc.oneof(serverHello, alert);

function seedsOf(corpus: Corpus): Input[] {
  return [
    ...filesEnding(corpus, '.tls.bin').map((bytes) => ({ bytes, expect: 'tls' as const, cuts: [] })),
    ...filesEnding(corpus, '.plain.bin').map((bytes) => ({ bytes, expect: 'not-tls' as const, cuts: [] })),
    // What the mail and database servers of the dialogue corpora sent first: plaintext banners and answers.
    ...filesEnding(corpus, '.server').map((bytes) => ({ bytes, expect: 'not-tls' as const, cuts: [] })),
    // The ClientHello fixtures, as a service that echoes would send them back.
    ...filesEnding(corpus, '.bin')
      .filter((b) => b[0] === HANDSHAKE && b[5] === 1)
      .map((bytes) => ({ bytes, expect: null, cuts: [] })),
  ];
}

export const tlsAnswerTarget: FuzzTarget<Input> = {
  name: 'tls-answer',
  corpusDirs: ['test/fuzz/corpus/tls-answer', 'test/fuzz/corpus/client-hello', 'test/fixtures/client-hello', 'test/fuzz/corpus/smtp', 'test/fuzz/corpus/imap', 'test/fuzz/corpus/pop3', 'test/fuzz/corpus/postgres', 'test/fuzz/corpus/mysql'],
  smokeRuns: 30_000,
  async: false,

  seeds: seedsOf,

  input: (corpus: Corpus) =>
    fc.oneof(
      { weight: 1, arbitrary: fc.record({ bytes: wellFormed, expect: fc.constant('tls' as const), cuts: cutPoints }) },
      {
        weight: 4,
        arbitrary: fc.record({
          bytes: bytesInput([...filesEnding(corpus, '.bin'), ...filesEnding(corpus, '.server')], fc.oneof(wellFormed, otherHandshake)),
          expect: fc.constant(null),
          cuts: cutPoints,
        }),
      },
    ),

  check(input: Input): void {
    const { bytes } = input;
    if (bytes.length === 0) return; // never asked: a read delivers at least one byte
    const whole = answerCheck.verdict(bytes);
    assert.ok(VERDICTS.has(whole), `undocumented verdict ${JSON.stringify(whole)}`);
    tally(whole);
    if (input.expect !== null) assert.equal(whole, input.expect, `a real or well-formed answer is ${input.expect}`);
    if (bytes[0] !== HANDSHAKE && bytes[0] !== ALERT) assert.notEqual(whole, 'tls', 'an answer that is no handshake or alert record is not TLS');
    if (answerCheck.serverHelloOrAlertOnly && bytes[0] === HANDSHAKE && bytes.length > 5 && bytes[5] !== SERVER_HELLO) {
      assert.notEqual(whole, 'tls', `a handshake record opening with message type ${bytes[5]} (not a ServerHello) is not TLS`);
    }
    if (answerCheck.incremental) {
      const verdict = (prefix: Buffer): AnswerVerdict => {
        const v = answerCheck.verdict(prefix);
        assert.ok(VERDICTS.has(v), `undocumented verdict ${JSON.stringify(v)}`);
        return v;
      };
      assertPrefixesAgree(bytes, input.cuts, whole, verdict, (v) => v === 'need-more', String, 1);
    }
  },
};

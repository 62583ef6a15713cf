// SPDX-License-Identifier: MIT
// Fuzz target: matchHttp01, which reads the first bytes a client sends to
// port 80 and answers ACME http-01 validation requests itself.
// Properties: one of its documented outcomes, never an exception; a token is
// base64url of 1 to 128 characters, taken from a request line that says
// exactly "GET /.well-known/acme-challenge/<token> HTTP/1.x"; a validation
// request built here gives its token back; every prefix is need-more or the
// whole input's verdict, and need-more only while shorter than the longest
// validation request line.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { type Http01Match, MAX_REQUEST_LINE, matchHttp01 } from '../../../src/agent/acme-challenges';
import { assertPrefixesAgree, bytesInput, cutPoints } from '../inputs';
import { tally } from '../tally';
import { type Corpus, type FuzzTarget, filesEnding } from '../target';

const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
/** The token the corpus's captured validation requests (NAME-challenge.bin) ask for. */
export const CAPTURED_TOKEN = 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0';
const PREFIX = 'GET /.well-known/acme-challenge/';

interface Input {
  bytes: Buffer;
  /** The token of a well-formed validation request built here, else null. */
  token: string | null;
  cuts: number[];
}

const token = fc.string({ unit: fc.constantFrom(...'AZaz09_-xQ'.split('')), minLength: 1, maxLength: 128 });

/** A validation request as an ACME server's validator sends it: request line, then headers. */
const validation: fc.Arbitrary<{ bytes: Buffer; token: string }> = fc
  .record({ token, minor: fc.constantFrom('0', '1'), cr: fc.boolean(), headers: fc.constantFrom('', 'Host: a.example\r\nUser-Agent: Go-http-client/1.1\r\n\r\n') })
  .map((f) => ({ bytes: Buffer.from(`${PREFIX}${f.token} HTTP/1.${f.minor}${f.cr ? '\r' : ''}\n${f.headers}`, 'latin1'), token: f.token }));

/** Near misses: another method, path or version, odd spaces, a token too long or with a foreign byte. */
const nearMiss: fc.Arbitrary<Buffer> = fc
  .tuple(fc.constantFrom('GET ', 'get ', 'HEAD ', 'GET  '), fc.constantFrom('/.well-known/acme-challenge/', '/.well-known/acme-challenge', '/.well-known/acme-challenge//'), fc.string({ maxLength: 140 }), fc.constantFrom(' HTTP/1.1', ' HTTP/1.2', ' HTTP/2', 'HTTP/1.1', '  HTTP/1.1', ' HTTP/1.1 '), fc.constantFrom('\r\n', '\n', '\r', '', '\r\r\n'))
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

function assertDocumented(m: Http01Match, bytes: Buffer): void {
  switch (m.kind) {
    case 'need-more':
      // Bounded: past the longest request line it could be, an opening is decided.
      assert.ok(bytes.length < MAX_REQUEST_LINE, `need-more after ${bytes.length} bytes`);
      return;
    case 'no':
      return;
    case 'token': {
      assert.match(m.token, TOKEN, 'a token is base64url, 1 to 128 characters');
      const line = `${PREFIX}${m.token} HTTP/1.`;
      assert.equal(bytes.subarray(0, line.length).toString('latin1'), line, 'the token comes from the request line');
      const rest = bytes.subarray(line.length, line.length + 3).toString('latin1');
      assert.ok(/^[01](\r?\n)/.test(rest), `the request line ends right after the version, not with ${JSON.stringify(rest)}`);
      return;
    }
    default:
      assert.fail(`undocumented outcome ${JSON.stringify(m)}`);
  }
}

export const acmeHttp01Target: FuzzTarget<Input> = {
  name: 'acme-http01',
  corpusDirs: ['test/fuzz/corpus/acme-http01'],
  smokeRuns: 30_000,
  async: false,

  seeds: (corpus: Corpus) => [
    ...filesEnding(corpus, '-challenge.bin').map((bytes) => ({ bytes, token: CAPTURED_TOKEN, cuts: [] })),
    ...filesEnding(corpus, '.plain.bin').map((bytes) => ({ bytes, token: null, cuts: [] })),
  ],

  input: (corpus: Corpus) =>
    fc.oneof(
      { weight: 1, arbitrary: fc.record({ request: validation, cuts: cutPoints }).map(({ request, cuts }) => ({ ...request, cuts })) },
      {
        weight: 4,
        arbitrary: fc.record({
          bytes: bytesInput(filesEnding(corpus, '.bin'), fc.oneof(validation.map((v) => v.bytes), nearMiss)),
          token: fc.constant(null),
          cuts: cutPoints,
        }),
      },
    ),

  check(input: Input): void {
    const { bytes } = input;
    const whole = matchHttp01(bytes);
    assertDocumented(whole, bytes);
    tally(whole.kind);
    if (input.token !== null) assert.deepEqual(whole, { kind: 'token', token: input.token }, 'a validation request gives its token');
    const verdict = (prefix: Buffer): Http01Match => {
      const m = matchHttp01(prefix);
      assertDocumented(m, prefix);
      return m;
    };
    assertPrefixesAgree(bytes, input.cuts, whole, verdict, (m) => m.kind === 'need-more');
  },
};

// SPDX-License-Identifier: MIT
// Fuzz target: parseClientHello, the first bytes of every steered connection.
// Properties: one of its four documented outcomes (an invalid one with a
// reason from the closed set), never an exception; a hello's fields are what
// its documentation promises and take no more bytes than were given; no
// need-more past maxBytes; every prefix is need-more or the whole input's
// verdict; a hello framed into other records parses to the same hello; an
// independent reading of the same bytes (client-hello-reference.ts) gives the
// same verdict and fields wherever it decides.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_MAX_HELLO_BYTES, HELLO_INVALID_REASONS, type HelloResult, parseClientHello } from '../../../src/agent/client-hello';
import { alpnExt, ext, frame, handshake, helloBody, sniEntry, sniExt, unframe, vec16, vec8, versionsExt } from '../../helpers/tls-records';
import { assertPrefixesAgree, bytesInput, cutPoints, toBuffer } from '../inputs';
import { referenceHello } from './client-hello-reference';
import { tally } from '../tally';
import { type Corpus, type FuzzTarget, filesEnding } from '../target';

interface Input {
  bytes: Buffer;
  maxBytes: number;
  /** Prefix lengths to check, and record sizes for re-framing a hello. */
  cuts: number[];
}

const REASONS = new Set<string>(HELLO_INVALID_REASONS);
const HOST_CHARS = /^[\x21-\x7e]{1,253}$/;

/** Host names as clients send them, and as they should not: case, dots, spaces, bytes past ASCII, 253+ characters. */
const hostName = fc.oneof(
  fc.domain(),
  fc.domain().map((d) => `${d.toUpperCase()}.`),
  fc.string({ unit: fc.constantFrom('a', 'Z', '.', '-', '0', ' ', '\x00', '\x7f', '\xe9', '_'), maxLength: 260 }),
  fc.constantFrom('', '.', 'a..b', '.a', 'a.', 'x'.repeat(253), 'x'.repeat(254), `${'x'.repeat(253)}.`),
);

const extension = fc.oneof(
  fc.array(fc.tuple(fc.constantFrom(0, 0, 1, 255), hostName), { minLength: 1, maxLength: 3 }).map((es) => sniExt(...es.map(([t, n]) => sniEntry(n, t)))),
  fc.array(fc.string({ minLength: 0, maxLength: 12 }), { maxLength: 6 }).map((names) => alpnExt(...names)),
  fc.array(fc.oneof(fc.constantFrom(0x0304, 0x0303, 0x0302, 0x0a0a), fc.nat({ max: 0xffff })), { maxLength: 6 }).map((v) => versionsExt(...v)),
  fc.tuple(fc.constantFrom(0, 16, 43, 10, 13, 21, 51, 0xff01), fc.uint8Array({ maxLength: 40 })).map(([t, d]) => ext(t, toBuffer(d))),
);

/** A ClientHello assembled from fields, framed into one or more records of any 3.x version. */
const structuredHello: fc.Arbitrary<Buffer> = fc
  .record({
    version: fc.oneof(fc.constant(0x0303), fc.nat({ max: 0xffff })),
    sessionId: fc.uint8Array({ maxLength: 33 }),
    suites: fc.uint8Array({ minLength: 0, maxLength: 9 }),
    compression: fc.uint8Array({ minLength: 0, maxLength: 2 }),
    extensions: fc.option(fc.array(extension, { maxLength: 6 }), { freq: 8 }),
    type: fc.oneof(fc.constant(1), fc.nat({ max: 255 })),
    sizes: fc.array(fc.integer({ min: 1, max: 600 }), { maxLength: 3 }),
    recordVersion: fc.constantFrom(0x0301, 0x0303, 0x0300, 0x0304),
  })
  .map((f) =>
    frame(
      handshake(
        helloBody({
          version: f.version,
          sessionId: toBuffer(f.sessionId),
          suites: vec16(toBuffer(f.suites)),
          compression: vec8(toBuffer(f.compression)),
          extensions: f.extensions,
        }),
        f.type,
      ),
      f.sizes,
      f.recordVersion,
    ),
  );

// The agent's bound, or a small one (not below the 50 bytes of the smallest hello: the agent's bound is not configurable).
const maxBytes = fc.oneof({ weight: 6, arbitrary: fc.constant(DEFAULT_MAX_HELLO_BYTES) }, { weight: 1, arbitrary: fc.integer({ min: 47, max: 2048 }) });

/** The documented outcomes, and what a hello promises about its fields. */
function assertDocumented(r: HelloResult, input: Input): void {
  switch (r.kind) {
    case 'need-more':
      // Bounded: a sniff never waits past maxBytes.
      assert.ok(input.bytes.length === 0 || input.bytes.length <= input.maxBytes, `need-more after ${input.bytes.length} bytes (maxBytes ${input.maxBytes})`);
      return;
    case 'not-tls':
      return;
    case 'invalid':
      assert.ok(REASONS.has(r.reason), `invalid with an undocumented reason ${JSON.stringify(r.reason)}`);
      return;
    case 'hello': {
      const h = r.hello;
      assert.ok(h.recordsLength > 0 && h.recordsLength <= input.bytes.length && h.recordsLength <= input.maxBytes, `recordsLength ${h.recordsLength} outside the input or maxBytes`);
      assert.equal(h.legacyVersion >> 8, 3, 'legacy_version major 3');
      if (h.sni !== null) {
        assert.match(h.sni, HOST_CHARS, 'sni printable ASCII, 1 to 253 characters');
        assert.equal(h.sni, h.sni.toLowerCase(), 'sni lower-cased');
        assert.ok(!h.sni.endsWith('.') && !h.sni.startsWith('.') && !h.sni.includes('..'), 'sni without empty labels');
      }
      for (const a of h.alpn) assert.ok(a.length >= 1 && a.length <= 255, 'ALPN names of 1 to 255 bytes');
      assert.ok(h.supportedVersions.length <= 127, 'at most 127 supported_versions');
      return;
    }
    default:
      assert.fail(`undocumented outcome ${JSON.stringify(r)}`);
  }
}

export const clientHelloTarget: FuzzTarget<Input> = {
  name: 'client-hello',
  corpusDirs: ['test/fuzz/corpus/client-hello', 'test/fixtures/client-hello'],
  smokeRuns: 10_000,
  async: false,

  seeds: (corpus: Corpus) => filesEnding(corpus, '.bin').map((bytes) => ({ bytes, maxBytes: DEFAULT_MAX_HELLO_BYTES, cuts: [] })),

  input: (corpus: Corpus) =>
    fc.record({
      bytes: bytesInput(filesEnding(corpus, '.bin'), structuredHello),
      maxBytes,
      cuts: cutPoints,
    }),

  check(input: Input): void {
    const { bytes, maxBytes: max } = input;
    const whole = parseClientHello(bytes, max);
    assertDocumented(whole, input);
    tally(whole.kind === 'invalid' ? `invalid: ${whole.reason}` : whole.kind);

    // A second, independent reading agrees wherever it can decide (it waits for whole records, the parser may not).
    if (max === DEFAULT_MAX_HELLO_BYTES) {
      const ref = referenceHello(bytes);
      if (ref.kind !== 'incomplete') {
        const mine = whole.kind === 'hello' ? { kind: 'hello', ...whole.hello } : { kind: whole.kind };
        assert.deepEqual(mine, ref, 'the parser and the reference reading (client-hello-reference.ts) disagree');
      }
    }

    // Need-more never turns into another verdict: each prefix says need-more or what the whole says.
    const verdict = (prefix: Buffer): HelloResult => {
      const r = parseClientHello(prefix, max);
      assertDocumented(r, { ...input, bytes: prefix });
      return r;
    };
    assertPrefixesAgree(bytes, input.cuts, whole, verdict, (r) => r.kind === 'need-more');
    if (whole.kind === 'need-more') return;

    // The same hello in other records is the same hello (record framing is the sender's choice).
    if (whole.kind === 'hello') {
      const hs = unframe(bytes.subarray(0, whole.hello.recordsLength));
      const sizes = input.cuts.map((c) => 1 + (c % 16384));
      const again = frame(hs, sizes, 0x0303);
      const r = parseClientHello(again, DEFAULT_MAX_HELLO_BYTES);
      if (again.length <= DEFAULT_MAX_HELLO_BYTES) {
        assert.equal(r.kind, 'hello', `re-framed into records of ${sizes.join(', ')} bytes: ${JSON.stringify(r)}`);
        if (r.kind === 'hello') assert.deepEqual({ ...r.hello, recordsLength: 0 }, { ...whole.hello, recordsLength: 0 }, 're-framed hello differs');
      }
    }
  },
};

// SPDX-License-Identifier: MIT
// tlsAnswer against what real TLS servers answer first (captured), every split
// of it, echoes of what was sent, and hand-built answers that only look like TLS.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_ANSWER_BYTES, MAX_ANSWER_RECORDS, SENT_PREFIX_BYTES, type TlsAnswer, tlsAnswer } from '../../../src/agent/tls-answer';
import { clientHelloFixtures, ext, frame, handshake, u16, u8, vec16, vec8 } from '../../helpers/tls-records';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/*
 * The first bytes of real answers: Node 20.20.2's tls.Server (OpenSSL 3.0.19),
 * captured 2026-12 through a TCP relay. Each is cut a few bytes into the record
 * that follows the ServerHello (the rest of the server's flight).
 */
const CAPTURED = {
  /** TLS 1.3 ServerHello (X25519), then the ChangeCipherSpec record. */
  'TLS 1.3 ServerHello': {
    bytes: hex(`
      160303007a 02000076 0303 36dab8fac7e4af404fa2360f2a556be26ded4113200ab40e059acb2a11a76350
      20 929d0c85424b44ce9277e48d03a2326dd449c98fcba99fde7dd128ec656bbc64 1302 00
      002e 002b00020304 00330024001d00208ee10310bbde2164a323ae508811315547e3d3b892d06147eedf4eab0a64d064
      1403030001 01`),
    decisive: 127,
  },
  /** HelloRetryRequest: the client's first key share (P-256) was not one the server takes (X25519 only). */
  HelloRetryRequest: {
    bytes: hex(`
      1603030058 02000054 0303 cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c
      20 cb1105d0e4da9e023b2ca3f8d25cf7eb45d11167817b0e0a253c2aa2c9d0d66f 1302 00
      000c 002b00020304 00330002001d
      1403030001 01`),
    decisive: 93,
  },
  /** TLS 1.2 ServerHello (no session id, extended master secret, ...), then the Certificate record. */
  'TLS 1.2 ServerHello': {
    bytes: hex(`
      1603030041 0200003d 0303 4e680e11b57843dc7202541791d0b63d4bbf26dd5d214c66444f574e47524401
      00 c02b 00
      0015 ff01000100 000b000403000102 00230000 00170000
      1603030185 0b000181`),
    decisive: 70,
  },
  /** A fatal protocol_version alert: the client offered TLS 1.2 at most, the server takes 1.3 only. */
  'a fatal alert': { bytes: hex('15030300020246'), decisive: 7 },
};

const HRR_RANDOM = 'cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c';
const CLIENT_HELLOS = clientHelloFixtures();
const [, A_HELLO] = CLIENT_HELLOS[0] ?? ['', Buffer.alloc(0)];
const NOTHING = Buffer.alloc(0);

function assertAnswer(answer: Buffer, sent: Buffer, want: TlsAnswer, what: string): void {
  const got = tlsAnswer(answer, sent);
  if (got !== want) assert.fail(`${what}: ${got}, want ${want} (${answer.length} bytes: ${answer.subarray(0, 16).toString('hex')}…)`);
}

/** Every strict prefix shorter than `decisive` is need-more; from there on, `want`. */
function assertDecidedAt(answer: Buffer, sent: Buffer, decisive: number, want: TlsAnswer): void {
  for (let i = 0; i <= answer.length; i++) {
    assertAnswer(answer.subarray(0, i), sent, i < decisive ? 'need-more' : want, `prefix of ${i}/${answer.length}, decisive at ${decisive}`);
  }
}

interface ServerHelloOptions {
  version?: number;
  random?: Buffer;
  sessionId?: Buffer;
  extensions?: Buffer[] | null; // null: no extensions block at all
  rawExtensions?: Buffer; // the whole block, length prefix included
}

function serverHelloBody(o: ServerHelloOptions = {}): Buffer {
  const parts = [u16(o.version ?? 0x0303), o.random ?? Buffer.alloc(32, 0x5a), vec8(o.sessionId ?? Buffer.alloc(32, 0x11)), u16(0x1301), u8(0)];
  if (o.rawExtensions) parts.push(o.rawExtensions);
  else if (o.extensions !== null) parts.push(vec16(Buffer.concat(o.extensions ?? [ext(43, u16(0x0304)), ext(51, Buffer.concat([u16(29), vec16(Buffer.alloc(32, 7))]))])));
  return Buffer.concat(parts);
}

const serverHello = (o: ServerHelloOptions = {}, sizes: number[] = []): Buffer => frame(handshake(serverHelloBody(o), 2), sizes, 0x0303);
const record = (type: number, fragment: Buffer, version = 0x0303): Buffer => Buffer.concat([u8(type), u16(version), vec16(fragment)]);

describe('tlsAnswer: what TLS servers answer', () => {
  for (const [what, { bytes, decisive }] of Object.entries(CAPTURED)) {
    it(`${what}: TLS once whole, need-more on every split before that`, () => {
      assertDecidedAt(bytes, A_HELLO, decisive, 'tls');
      assertDecidedAt(bytes, NOTHING, decisive, 'tls');
    });
  }

  it('the HelloRetryRequest capture carries the special random (so it is one)', () => {
    assert.equal(CAPTURED.HelloRetryRequest.bytes.subarray(11, 43).toString('hex'), HRR_RANDOM);
  });

  it('a ServerHello split over records (the server fragments its flight): TLS once the last fragment is in', () => {
    const whole = serverHello();
    for (const sizes of [[1], [4], [5, 1], [40], [1, 1, 1, 1, 1, 1]]) {
      const buf = serverHello({}, sizes);
      assert.ok(buf.length > whole.length);
      assertDecidedAt(buf, A_HELLO, buf.length, 'tls');
    }
  });

  it('TLS 1.2 and older shapes: no extensions block, an empty one, an empty session id, record version 3.1', () => {
    for (const o of [{ extensions: null }, { extensions: [] }, { sessionId: NOTHING }, { version: 0x0301, extensions: null }]) {
      const buf = serverHello(o);
      assertDecidedAt(buf, A_HELLO, buf.length, 'tls');
    }
    const v31 = frame(handshake(serverHelloBody(), 2), [], 0x0301);
    assertAnswer(v31, A_HELLO, 'tls', 'record version 3.1');
  });

  it('alerts: warning or fatal, any description, any 3.x record version', () => {
    for (const [level, description, version] of [
      [1, 112, 0x0303], // warning unrecognized_name (some servers, then their ServerHello)
      [2, 112, 0x0303], // fatal unrecognized_name (nginx ssl_reject_handshake)
      [2, 40, 0x0301], // handshake_failure
      [2, 70, 0x0300], // protocol_version from an SSL 3.0-era record layer
      [2, 250, 0x0303], // a description the registry does not have yet
    ] as const) {
      const buf = record(21, Buffer.from([level, description]), version);
      assertDecidedAt(buf, A_HELLO, 7, 'tls');
    }
  });
});

describe('tlsAnswer: echoes are never TLS', () => {
  for (const [name, hello] of CLIENT_HELLOS) {
    it(`${name} sent back: never TLS on any split, not TLS from its handshake type on`, () => {
      for (let i = 0; i <= hello.length; i++) {
        assertAnswer(hello.subarray(0, i), hello, i < 6 ? 'need-more' : 'not-tls', `echo prefix ${i}/${hello.length}`);
      }
      // Echoed behind another client's hello, or answered with someone else's: not TLS either.
      assertAnswer(hello, A_HELLO, 'not-tls', 'a ClientHello as the answer');
    });
  }

  it('plaintext that looks like an alert or a ServerHello, echoed: not TLS, on every split that could decide', () => {
    const alert = record(21, Buffer.from([2, 40]));
    for (const sent of [alert, Buffer.concat([alert, Buffer.from('GET / HTTP/1.1\r\n')])]) {
      assertDecidedAt(sent, sent, 7, 'not-tls');
    }
    const hello = CAPTURED['TLS 1.3 ServerHello'];
    assertDecidedAt(hello.bytes, hello.bytes, hello.decisive, 'not-tls');
    // Only the first SENT_PREFIX_BYTES of what was sent are compared: a caller may keep just those.
    assertAnswer(hello.bytes, hello.bytes.subarray(0, SENT_PREFIX_BYTES), 'not-tls', 'echo against a kept prefix');
  });

  it('an echo is what repeats the bytes sent: the same alert, sent nothing or sent something else, is TLS', () => {
    const alert = record(21, Buffer.from([2, 40]));
    assertAnswer(alert, NOTHING, 'tls', 'nothing sent');
    assertAnswer(alert, Buffer.from('GET / HTTP/1.1\r\n'), 'tls', 'an HTTP request sent');
    assertAnswer(alert, record(21, Buffer.from([2, 41])), 'tls', 'a different alert sent');
    // The shorter of the two decides: a first chunk of one byte that the answer repeats is taken for an echo.
    assertAnswer(alert, alert.subarray(0, 1), 'not-tls', 'one byte sent, repeated');
  });
});

describe('tlsAnswer: answers that only look like TLS', () => {
  const sh = serverHelloBody();
  const cases: Array<[string, Buffer, TlsAnswer]> = [
    ['an HTTP error', Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'), 'not-tls'],
    ['a Redis error', Buffer.from('-ERR unknown command\r\n'), 'not-tls'],
    ['an SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), 'not-tls'],
    ['a lone 0x16', Buffer.from([0x16]), 'need-more'],
    ['16 03 and nothing else yet', Buffer.from([0x16, 0x03]), 'need-more'],
    ['record major version 2', Buffer.from([0x16, 0x02, 0x00]), 'not-tls'],
    ['record minor version 5', Buffer.from([0x16, 0x03, 0x05]), 'not-tls'],
    ['an application-data record first', record(23, Buffer.alloc(32, 1)), 'not-tls'],
    ['a ChangeCipherSpec record first', record(20, u8(1)), 'not-tls'],
    ['a zero-length handshake record', record(22, NOTHING), 'not-tls'],
    ['a handshake record over 2^14', Buffer.from([0x16, 0x03, 0x03, 0x40, 0x01, 0x02]), 'not-tls'],
    ['a handshake header only, record cut there', Buffer.from([0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00, 0x76]), 'need-more'],
    ['a Certificate message first', frame(handshake(Buffer.alloc(40, 0), 11), [], 0x0303), 'not-tls'],
    ['a ClientHello-typed message', frame(handshake(sh, 1), [], 0x0303), 'not-tls'],
    ['a ServerHello body of 37 bytes', frame(handshake(sh.subarray(0, 37), 2), [], 0x0303), 'not-tls'],
    ['a ServerHello longer than MAX_ANSWER_BYTES', Buffer.concat([Buffer.from([0x16, 0x03, 0x03, 0x40, 0x00, 0x02]), Buffer.from([0x01, 0x00, 0x01])]), 'not-tls'],
    ['legacy_version 2.0', serverHello({ version: 0x0200 }), 'not-tls'],
    ['legacy_version 3.5', serverHello({ version: 0x0305 }), 'not-tls'],
    ['a 33-byte session id', serverHello({ sessionId: Buffer.alloc(33) }), 'not-tls'],
    ['a session id past the body', frame(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), u8(32), Buffer.alloc(8)]), 2), [], 0x0303), 'not-tls'],
    ['one stray byte for extensions', serverHello({ rawExtensions: u8(0) }), 'not-tls'],
    ['an extensions length longer than the body', serverHello({ rawExtensions: Buffer.concat([u16(20), ext(43, u16(0x0304))]) }), 'not-tls'],
    ['an extensions length shorter than the body', serverHello({ rawExtensions: Buffer.concat([u16(0), ext(43, u16(0x0304))]) }), 'not-tls'],
    ['an extension past the list', serverHello({ rawExtensions: vec16(Buffer.concat([u16(43), u16(50), Buffer.alloc(10)])) }), 'not-tls'],
    ['a truncated extension header', serverHello({ rawExtensions: vec16(Buffer.from([0, 43, 0])) }), 'not-tls'],
    ['a ServerHello fragment, then an alert record', Buffer.concat([serverHello({}, [20]).subarray(0, 25), record(21, Buffer.from([2, 10]))]), 'not-tls'],
    ['a ServerHello fragment, then a record of version 2.0', Buffer.concat([serverHello({}, [20]).subarray(0, 25), Buffer.from([0x16, 0x02])]), 'not-tls'],
    ['an alert of length 3', record(21, Buffer.from([2, 40, 0])), 'not-tls'],
    ['an alert of level 0', record(21, Buffer.from([0, 40])), 'not-tls'],
    ['an alert of level 3', record(21, Buffer.from([3, 40])), 'not-tls'],
    ['an alert header alone', Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02]), 'need-more'],
    ['an alert missing its description', Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02]), 'need-more'],
    ['a truncated ServerHello (the service then closes)', serverHello().subarray(0, 60), 'need-more'],
  ];
  for (const [what, buf, want] of cases) {
    it(`${what}: ${want}`, () => assertAnswer(buf, A_HELLO, want, what));
  }

  it('bounded: not TLS past MAX_ANSWER_RECORDS records or MAX_ANSWER_BYTES bytes, need-more up to there', () => {
    const small = handshake(serverHelloBody(), 2);
    const tiny = frame(small, new Array<number>(small.length).fill(1), 0x0303);
    // Records of 6 bytes (a header and one byte): the 32nd record's length shows that the ServerHello needs a 33rd.
    assertAnswer(tiny.subarray(0, 6 * MAX_ANSWER_RECORDS - 2), A_HELLO, 'need-more', 'the last record allowed, its length not yet in');
    assertAnswer(tiny.subarray(0, 6 * MAX_ANSWER_RECORDS - 1), A_HELLO, 'not-tls', 'the last record allowed, and the ServerHello needs more');
    // A ServerHello that ends past the bound is not TLS as soon as its header says so.
    const withData = (n: number): Buffer => handshake(serverHelloBody({ rawExtensions: vec16(ext(0xffff, Buffer.alloc(n))) }), 2);
    const big = frame(withData(MAX_ANSWER_BYTES), [16384, 16384], 0x0303);
    assertAnswer(big.subarray(0, 9), A_HELLO, 'not-tls', 'a body longer than the bound');
    const edge = withData(MAX_ANSWER_BYTES - frame(withData(0), [], 0x0303).length - 2); // 2 bytes short of the bound in one record
    const fits = frame(edge, [], 0x0303);
    assert.ok(fits.length <= MAX_ANSWER_BYTES);
    assertAnswer(fits, A_HELLO, 'tls', 'a ServerHello that just fits');
    const spans = frame(edge, [MAX_ANSWER_BYTES - 300], 0x0303);
    assert.ok(spans.length > MAX_ANSWER_BYTES);
    assertAnswer(spans, A_HELLO, 'not-tls', 'the same ServerHello, pushed past the bound by a second record header');
  });

  it('random bytes after 16 03 (a service that answers noise): never TLS', () => {
    // A fixed-seed generator: the same 2,000 answers on every run.
    let seed = 0x2545f491;
    const next = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed & 0xff;
    };
    for (let i = 0; i < 2000; i++) {
      const buf = Buffer.alloc(1 + (i % 600));
      for (let j = 0; j < buf.length; j++) buf[j] = next();
      buf[0] = 0x16;
      buf[1] = 0x03;
      if (i % 2 === 0) buf[2] = 0x03; // a plausible record version, so the record and handshake checks are reached
      if (i % 4 === 0 && buf.length > 5) buf[5] = 0x02; // and a server_hello type, so the body checks are
      assert.notEqual(tlsAnswer(buf, A_HELLO), 'tls', `noise taken for TLS: ${buf.toString('hex')}`);
    }
  });
});

// SPDX-License-Identifier: MIT
// parseClientHello against hellos captured from real clients (test/fixtures/client-hello),
// every prefix and re-framing of them, and hand-built hostile inputs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DEFAULT_MAX_HELLO_BYTES, type HelloResult, parseClientHello } from '../../../src/agent/client-hello';
import { alpnExt, clientHelloFixtures, ext, frame, handshake, helloBody, sniEntry, sniExt, u16, u8, unframe, vec16, vec8, versionsExt } from '../../helpers/tls-records';


interface Expected {
  sni: string | null;
  alpn: string[];
  supportedVersions: number[];
  records: number;
}

const TLS13_12 = [0x0304, 0x0303];
const TLS13_10 = [0x0304, 0x0303, 0x0302, 0x0301];
const LONG_ALPN = Array.from({ length: 40 }, (_, i) => `proto-number-${i}`);

/** What each capture must decode to; README.md says how each was made. */
const EXPECTED: Record<string, Expected> = {
  'openssl-tls13-sni.bin': { sni: 'openssl.example.test', alpn: [], supportedVersions: TLS13_10, records: 1 },
  'openssl-tls13-nosni.bin': { sni: null, alpn: [], supportedVersions: TLS13_10, records: 1 },
  'openssl-tls12-sni.bin': { sni: 'tls12.example.test', alpn: [], supportedVersions: [], records: 1 },
  'openssl-mixed-case-dot.bin': { sni: 'mixed.example.test', alpn: ['h2', 'http/1.1'], supportedVersions: TLS13_10, records: 1 },
  'openssl-split-records.bin': { sni: 'split.example.test', alpn: LONG_ALPN, supportedVersions: TLS13_10, records: 2 },
  'curl-http11-sni.bin': { sni: 'curl.example.test', alpn: ['http/1.1'], supportedVersions: TLS13_10, records: 1 },
  'curl-http2-sni.bin': { sni: 'curl2.example.test', alpn: ['h2', 'http/1.1'], supportedVersions: TLS13_10, records: 1 },
  'node-alpn.bin': { sni: 'node.example.test', alpn: ['h2', 'http/1.1'], supportedVersions: TLS13_12, records: 1 },
  'python-ssl.bin': { sni: 'python.example.test', alpn: ['http/1.1'], supportedVersions: TLS13_12, records: 1 },
  'java-alpn.bin': { sni: 'java.example.test', alpn: ['h2', 'http/1.1'], supportedVersions: TLS13_12, records: 1 },
};

function parseHello(buf: Buffer, maxBytes?: number) {
  const r = parseClientHello(buf, maxBytes);
  assert.equal(r.kind, 'hello', `expected a hello, got ${JSON.stringify(r)}`);
  if (r.kind !== 'hello') throw new Error('unreachable');
  return r.hello;
}

function assertInvalid(r: HelloResult, reason?: string): void {
  assert.equal(r.kind, 'invalid', `expected invalid, got ${JSON.stringify(r)}`);
  if (reason !== undefined && r.kind === 'invalid') assert.equal(r.reason, reason);
}

/** Every strict prefix is need-more; the whole buffer is a hello taking all of it. */
function assertPrefixesNeedMore(buf: Buffer): void {
  for (let i = 0; i < buf.length; i++) {
    const r = parseClientHello(buf.subarray(0, i));
    if (r.kind !== 'need-more') assert.fail(`prefix of ${i}/${buf.length} bytes: ${JSON.stringify(r)}`);
  }
  assert.equal(parseHello(buf).recordsLength, buf.length);
}

const minimalHello = (extensions: Buffer[] = [sniExt(sniEntry('example.com'))]): Buffer =>
  frame(handshake(helloBody({ extensions })));

// ---- tests ----

describe('parseClientHello: captured hellos', () => {
  const fixtures = clientHelloFixtures();

  it('has an expectation for every fixture and a fixture for every expectation', () => {
    assert.deepEqual(fixtures.map(([name]) => name), Object.keys(EXPECTED).sort());
  });

  for (const [name, buf] of fixtures) {
    const want = EXPECTED[name];
    it(`${name}: decodes whole`, () => {
      assert.ok(want, `no expectation for ${name}`);
      assert.deepEqual(parseHello(buf), {
        sni: want.sni,
        alpn: want.alpn,
        legacyVersion: 0x0303,
        supportedVersions: want.supportedVersions,
        recordsLength: buf.length,
      });
      let records = 0;
      for (let off = 0; off < buf.length; off += 5 + buf.readUInt16BE(off + 3)) records++;
      assert.equal(records, want.records);
    });

    it(`${name}: every prefix is need-more`, () => {
      assertPrefixesNeedMore(buf);
    });

    it(`${name}: bytes after the hello are left to the caller`, () => {
      const ccs = Buffer.from([20, 3, 3, 0, 1, 1]);
      const withCcs = Buffer.concat([buf, ccs, Buffer.from('early data')]);
      assert.equal(parseHello(withCcs).recordsLength, buf.length);
    });

    it(`${name}: the same hello re-framed as 2 and 3 records, split anywhere`, () => {
      const hs = unframe(buf);
      const whole = parseHello(buf);
      for (let cut = 1; cut < hs.length; cut++) {
        const two = frame(hs, [cut]);
        assert.deepEqual(parseHello(two), { ...whole, recordsLength: two.length }, `cut at ${cut}`);
      }
      for (const sizes of [[1, 1], [2, 3], [4, 100], [3, 40]]) {
        const three = frame(hs, sizes);
        assert.deepEqual(parseHello(three), { ...whole, recordsLength: three.length }, `sizes ${sizes.join(',')}`);
        assertPrefixesNeedMore(three);
      }
    });

    it(`${name}: maxBytes is a bound on the records, exact at the edge`, () => {
      assert.equal(parseHello(buf, buf.length).recordsLength, buf.length);
      assertInvalid(parseClientHello(buf, buf.length - 1), 'too large');
    });
  }

  it('a hello framed as one-byte records still parses, and is bounded by maxBytes', () => {
    const [, buf] = fixtures.find(([name]) => name === 'node-alpn.bin') ?? assert.fail('node-alpn.bin missing');
    const hs = unframe(buf);
    const tiny = frame(hs, new Array<number>(hs.length).fill(1));
    assert.equal(tiny.length, hs.length * 6);
    assert.equal(parseHello(tiny).sni, 'node.example.test');
    assertInvalid(parseClientHello(tiny, 1000), 'too large');
    // Decided from the headers before the input reaches the bound.
    assertInvalid(parseClientHello(tiny.subarray(0, 1000), 1000), 'too large');
  });
});

describe('parseClientHello: first bytes', () => {
  const cases: Array<[string, Buffer, HelloResult['kind']]> = [
    ['empty', Buffer.alloc(0), 'need-more'],
    ['a single 0x16', Buffer.from([0x16]), 'need-more'],
    ['0x16 0x03', Buffer.from([0x16, 0x03]), 'need-more'],
    ['a record header without fragment', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]), 'need-more'],
    ['0x16 then a non-TLS major version', Buffer.from([0x16, 0x02]), 'not-tls'],
    ['HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'not-tls'],
    ['the first byte of HTTP', Buffer.from('G'), 'not-tls'],
    ['PostgreSQL SSLRequest', Buffer.from([0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f]), 'not-tls'],
    ['SSLv2-style hello', Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10]), 'not-tls'],
    ['SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), 'not-tls'],
    ['a TLS alert record', Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]), 'not-tls'],
    ['a lone NUL', Buffer.from([0x00]), 'not-tls'],
  ];
  for (const [name, buf, kind] of cases) {
    it(`${name} → ${kind}`, () => {
      assert.equal(parseClientHello(buf).kind, kind);
    });
  }
});

describe('parseClientHello: records and handshake header', () => {
  it('refuses a record of length 0', () => {
    assertInvalid(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])), 'bad record length');
  });

  it('refuses a record longer than 2^14+256, accepts one of exactly that', () => {
    assertInvalid(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x41, 0x01])), 'bad record length');
    assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x41, 0x00, 0x01])).kind, 'need-more');
  });

  it('refuses any handshake message but client_hello, from its first byte', () => {
    const serverHello = frame(handshake(helloBody(), 2));
    assertInvalid(parseClientHello(serverHello.subarray(0, 6)), 'not a client hello');
    assertInvalid(parseClientHello(serverHello), 'not a client hello');
  });

  it('refuses a non-handshake record in the middle of a hello', () => {
    const hs = handshake(helloBody({ extensions: [sniExt(sniEntry('a.example'))] }));
    const first = frame(hs.subarray(0, 20));
    for (const type of [20, 21, 23, 0x80]) {
      const other = Buffer.from([type, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00]);
      assertInvalid(parseClientHello(Buffer.concat([first, other])), 'non-handshake record in hello');
      assertInvalid(parseClientHello(Buffer.concat([first, other.subarray(0, 1)])), 'non-handshake record in hello');
    }
  });

  it('refuses a later record with a bad version', () => {
    const hs = handshake(helloBody());
    const buf = Buffer.concat([frame(hs.subarray(0, 20)), frame(hs.subarray(20), [], 0x0201)]);
    assertInvalid(parseClientHello(buf), 'bad record version');
  });

  it('refuses handshake bytes after the hello in its last record', () => {
    const hs = handshake(helloBody());
    const buf = frame(Buffer.concat([hs, Buffer.from([0x0f, 0, 0, 0])]));
    // Decided from the headers, before the record is complete.
    assertInvalid(parseClientHello(buf.subarray(0, 9)), 'trailing data after hello');
    assertInvalid(parseClientHello(buf), 'trailing data after hello');
    // Same when the handshake length itself is short of the record.
    const short = Buffer.from(hs);
    short.writeUIntBE(hs.length - 4 - 10, 1, 3);
    assertInvalid(parseClientHello(frame(short)), 'trailing data after hello');
  });

  it('refuses a handshake length that overflows the bound at once (2^24-1)', () => {
    const buf = Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff]);
    assertInvalid(parseClientHello(buf), 'too large');
    assert.equal(parseClientHello(buf.subarray(0, 8)).kind, 'need-more');
  });

  it('refuses a 64 KiB+ hello by default from its headers, accepts it under a larger bound', () => {
    const padding = ext(21, Buffer.alloc(65535 - 4 - 30, 0)); // extensions block near its 2^16-1 maximum
    const hs = handshake(helloBody({ extensions: [sniExt(sniEntry('big.example')), padding] }));
    const buf = frame(hs, [16384, 16384, 16384, 16384]);
    assert.ok(buf.length > DEFAULT_MAX_HELLO_BYTES);
    assertInvalid(parseClientHello(buf), 'too large');
    assertInvalid(parseClientHello(buf.subarray(0, 9)), 'too large');
    const hello = parseHello(buf, 128 * 1024);
    assert.equal(hello.sni, 'big.example');
    assert.equal(hello.recordsLength, buf.length);
  });

  it('refuses input that keeps coming past maxBytes without completing', () => {
    const hs = handshake(helloBody({ extensions: [ext(21, Buffer.alloc(3000))] }));
    const buf = frame(hs, new Array<number>(20).fill(100));
    assertInvalid(parseClientHello(buf, 1500), 'too large');
    assertInvalid(parseClientHello(buf.subarray(0, 1400), 1500), 'too large');
  });
});

describe('parseClientHello: ClientHello body', () => {
  it('accepts a hello with no extensions block (TLS 1.2 and earlier)', () => {
    const hello = parseHello(frame(handshake(helloBody({ extensions: null }))));
    assert.deepEqual(hello, { sni: null, alpn: [], legacyVersion: 0x0303, supportedVersions: [], recordsLength: hello.recordsLength });
  });

  it('reports legacy_version and supported_versions in client order, GREASE included', () => {
    const hello = parseHello(minimalHello([versionsExt(0x0a0a, 0x0304, 0x0303)]));
    assert.equal(hello.legacyVersion, 0x0303);
    assert.deepEqual(hello.supportedVersions, [0x0a0a, 0x0304, 0x0303]);
    assert.equal(parseHello(frame(handshake(helloBody({ version: 0x0301 })))).legacyVersion, 0x0301);
  });

  const bad: Array<[string, Buffer, string]> = [
    ['an empty body', frame(handshake(Buffer.alloc(0))), 'truncated hello'],
    ['a body shorter than version+random', frame(handshake(Buffer.alloc(20, 3))), 'truncated hello'],
    ['client version 2.0', frame(handshake(helloBody({ version: 0x0200 }))), 'bad client version'],
    ['a 33-byte session id', frame(handshake(helloBody({ sessionId: Buffer.alloc(33) }))), 'bad session id'],
    ['a session id past the body', frame(handshake(helloBody().subarray(0, 2 + 32 + 1 + 10))), 'truncated hello'],
    ['odd cipher suites length', frame(handshake(helloBody({ suites: vec16(Buffer.alloc(3)) }))), 'bad cipher suites'],
    ['no cipher suites', frame(handshake(helloBody({ suites: vec16(Buffer.alloc(0)) }))), 'bad cipher suites'],
    ['cipher suites past the body', frame(handshake(helloBody({ suites: u16(0xfffe), compression: Buffer.alloc(0), extensions: null }))), 'bad cipher suites'],
    ['no compression methods', frame(handshake(helloBody({ compression: vec8(Buffer.alloc(0)) }))), 'bad compression methods'],
    ['compression methods past the body', frame(handshake(helloBody({ compression: u8(200), extensions: null }))), 'bad compression methods'],
    ['one stray byte for extensions', frame(handshake(helloBody({ rawExtensions: u8(0) }))), 'truncated extensions'],
    ['extension list longer than the hello', frame(handshake(helloBody({ rawExtensions: Buffer.concat([u16(100), sniExt(sniEntry('a.example'))]) }))), 'bad extensions length'],
    ['extension list length 0xffff', frame(handshake(helloBody({ rawExtensions: Buffer.concat([u16(0xffff), u16(0)]) }))), 'bad extensions length'],
    ['extension list shorter than the hello', frame(handshake(helloBody({ rawExtensions: Buffer.concat([u16(0), sniExt(sniEntry('a.example'))]) }))), 'bad extensions length'],
    ['a truncated extension header', frame(handshake(helloBody({ rawExtensions: vec16(Buffer.from([0, 0, 0])) }))), 'truncated extension'],
    ['an extension longer than the list', frame(handshake(helloBody({ rawExtensions: vec16(Buffer.concat([u16(0x1234), u16(50), Buffer.alloc(10)])) }))), 'extension overflows hello'],
    ['an extension with length 0xffff', frame(handshake(helloBody({ rawExtensions: vec16(Buffer.concat([u16(0), u16(0xffff)])) }))), 'extension overflows hello'],
    ['a bad extension after a good one', minimalHello([alpnExt('h2'), Buffer.concat([u16(0), u16(0x0100), Buffer.alloc(4)])]), 'extension overflows hello'],
    ['duplicate server_name', minimalHello([sniExt(sniEntry('a.example')), sniExt(sniEntry('b.example'))]), 'duplicate server_name'],
    ['duplicate alpn', minimalHello([alpnExt('h2'), alpnExt('http/1.1')]), 'duplicate alpn'],
    ['duplicate supported_versions', minimalHello([versionsExt(0x0304), versionsExt(0x0303)]), 'duplicate supported_versions'],
  ];
  for (const [name, buf, reason] of bad) {
    it(`refuses ${name}`, () => {
      assertInvalid(parseClientHello(buf), reason);
    });
  }
});

describe('parseClientHello: server_name', () => {
  const sniOf = (entries: Buffer[]): string | null => parseHello(minimalHello([sniExt(...entries)])).sni;

  it('lower-cases the name and strips one trailing dot', () => {
    assert.equal(sniOf([sniEntry('WWW.Example.COM.')]), 'www.example.com');
    assert.equal(sniOf([sniEntry('a')]), 'a');
    assert.equal(sniOf([sniEntry('_acme-challenge.x-1.example')]), '_acme-challenge.x-1.example');
  });

  it('accepts 253 characters and refuses 254', () => {
    const name253 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    assert.equal(name253.length, 253);
    assert.equal(sniOf([sniEntry(name253)]), name253);
    assert.equal(sniOf([sniEntry(`${name253}.`)]), name253);
    assertInvalid(parseClientHello(minimalHello([sniExt(sniEntry(`${name253}x`))])), 'bad server_name');
  });

  it('skips other name types, and is null when only they are present', () => {
    assert.equal(sniOf([sniEntry('ignored', 7), sniEntry('host.example')]), 'host.example');
    assert.equal(sniOf([sniEntry('ignored', 7)]), null);
  });

  const badNames: Array<[string, Buffer]> = [
    ['an empty name', Buffer.alloc(0)],
    ['a lone dot', Buffer.from('.')],
    ['a NUL byte', Buffer.from('evil.example\0.good.example', 'latin1')],
    ['a control character', Buffer.from('a\tb.example')],
    ['a space', Buffer.from('a b.example')],
    ['DEL', Buffer.from('a\x7fb.example', 'latin1')],
    ['a non-ASCII byte', Buffer.from('caf\xe9.example', 'latin1')],
    ['UTF-8', Buffer.from('bücher.example', 'utf8')],
    ['an empty label', Buffer.from('a..example')],
    ['a leading dot', Buffer.from('.example')],
    ['two trailing dots', Buffer.from('example..')],
  ];
  for (const [what, name] of badNames) {
    it(`refuses ${what}`, () => {
      assertInvalid(parseClientHello(minimalHello([sniExt(sniEntry(name))])), 'bad server_name');
    });
  }

  const badLists: Array<[string, Buffer]> = [
    ['an empty extension', ext(0, Buffer.alloc(0))],
    ['an empty list', ext(0, vec16(Buffer.alloc(0)))],
    ['a list longer than the extension', ext(0, Buffer.concat([u16(40), sniEntry('a.example')]))],
    ['a list shorter than the extension', ext(0, Buffer.concat([u16(3), sniEntry('a.example')]))],
    ['a truncated entry header', ext(0, vec16(Buffer.from([0, 0])))],
    ['a name longer than the list', ext(0, vec16(Buffer.concat([u8(0), u16(500), Buffer.from('a.example')])))],
    ['two host names', sniExt(sniEntry('a.example'), sniEntry('b.example'))],
  ];
  for (const [what, extension] of badLists) {
    it(`refuses ${what}`, () => {
      assertInvalid(parseClientHello(minimalHello([extension])), 'bad server_name');
    });
  }
});

describe('parseClientHello: alpn and supported_versions', () => {
  it('keeps ALPN names in client order, byte for byte', () => {
    const hello = parseHello(minimalHello([alpnExt('acme-tls/1', 'h2', 'http/1.1')]));
    assert.deepEqual(hello.alpn, ['acme-tls/1', 'h2', 'http/1.1']);
    const raw = ext(16, vec16(vec8(Buffer.from([0xff, 0x00, 0x41]))));
    assert.deepEqual(parseHello(minimalHello([raw])).alpn, ['\xff\x00A']);
  });

  const badAlpn: Array<[string, Buffer]> = [
    ['an empty extension', ext(16, Buffer.alloc(0))],
    ['an empty list', ext(16, vec16(Buffer.alloc(0)))],
    ['an empty name', ext(16, vec16(Buffer.concat([vec8(Buffer.from('h2')), u8(0)])))],
    ['a name longer than the list', ext(16, vec16(Buffer.concat([u8(9), Buffer.from('h2')])))],
    ['a list longer than the extension', ext(16, Buffer.concat([u16(30), vec8(Buffer.from('h2'))]))],
  ];
  for (const [what, extension] of badAlpn) {
    it(`alpn: refuses ${what}`, () => {
      assertInvalid(parseClientHello(minimalHello([extension])), 'bad alpn');
    });
  }

  const badVersions: Array<[string, Buffer]> = [
    ['an empty extension', ext(43, Buffer.alloc(0))],
    ['an empty list', ext(43, vec8(Buffer.alloc(0)))],
    ['an odd list', ext(43, vec8(Buffer.from([3, 4, 3])))],
    ['a list longer than the extension', ext(43, Buffer.from([6, 3, 4]))],
    ['a list shorter than the extension', ext(43, Buffer.from([2, 3, 4, 3, 3]))],
  ];
  for (const [what, extension] of badVersions) {
    it(`supported_versions: refuses ${what}`, () => {
      assertInvalid(parseClientHello(minimalHello([extension])), 'bad supported_versions');
    });
  }
});

describe('parseClientHello: never throws, never reads past the end', () => {
  it('survives random corruption and truncation of every fixture', () => {
    // xorshift32 with a fixed seed: failures reproduce.
    let seed = 0x9e3779b9;
    const rand = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const kinds = new Set(['need-more', 'not-tls', 'invalid', 'hello']);
    for (const [name, original] of clientHelloFixtures()) {
      for (let round = 0; round < 300; round++) {
        const buf = Buffer.from(original);
        for (let k = 1 + rand(4); k > 0; k--) buf[rand(buf.length)] = rand(256);
        // Parse a view inside a larger buffer: bytes beyond the view must never count.
        const backing = Buffer.concat([buf, Buffer.alloc(64, 0x41)]);
        const view = backing.subarray(0, rand(buf.length + 1));
        const r = parseClientHello(view);
        assert.ok(kinds.has(r.kind), `${name} round ${round}`);
        if (r.kind === 'hello') assert.ok(r.hello.recordsLength <= view.length, `${name} round ${round}`);
      }
    }
  });
});

// SPDX-License-Identifier: MIT
// decideFirstBytes: the verdict the native core asks for on a connection's
// first bytes. Named cases for each verdict, then the property that plain is
// returned only where the Sniffer, fed the same bytes by adoptConnection,
// relays plaintext (test/fuzz/targets/first-bytes.ts; npm run fuzz runs it longer).
import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { FIRST_VERDICT, decideFirstBytes } from '../../../src/agent/first-bytes';
import { checkFirstBytes, firstBytesTarget } from '../../fuzz/targets/first-bytes';
import { loadCorpus } from '../../fuzz/target';
import { clientHelloFixtures, frame, handshake, helloBody } from '../../helpers/tls-records';

const { plain, takeOver, reset } = FIRST_VERDICT;
const NONE = Buffer.alloc(0);
const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const HELLO = frame(handshake(helloBody()));
const SSL_REQUEST = hex('0000000804d2162f');

describe('decideFirstBytes', () => {
  test('plaintext protocols that speak first from the client are relayed natively', () => {
    for (const opening of ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', '*1\r\n$4\r\nPING\r\n', 'SSH-2.0-OpenSSH_9.6\r\n', 'x']) {
      assert.equal(decideFirstBytes(8080, b(opening), NONE, false), plain, opening);
      assert.equal(decideFirstBytes(8080, b(opening), NONE, true), plain, `${opening} then FIN`);
    }
  });

  test('0x16 not followed by 0x03 is not TLS (client-hello.ts settles it by two bytes): plain', () => {
    assert.equal(decideFirstBytes(9000, hex('1600'), NONE, false), plain);
    assert.equal(decideFirstBytes(9000, hex('1604abcdef'), NONE, false), plain);
  });

  test('a ClientHello, whole, cut short after 1, 2 or 5 bytes, or invalid: Node takes over', () => {
    for (const n of [1, 2, 3, 5, HELLO.length - 1, HELLO.length]) assert.equal(decideFirstBytes(443, HELLO.subarray(0, n), NONE, false), takeOver, `${n} bytes`);
    for (const [name, hello] of clientHelloFixtures()) assert.equal(decideFirstBytes(8443, hello, NONE, false), takeOver, name);
    // Invalid: Node counts hello-invalid and resets, as today.
    assert.equal(decideFirstBytes(443, hex('1603010000'), NONE, false), takeOver);
    // A TLS prefix and the client's FIN: Node's Sniffer decides (bounded by maxHelloBytes, not known here).
    assert.equal(decideFirstBytes(443, hex('160301'), NONE, true), takeOver);
  });

  test('PostgreSQL SSLRequest/GSSENCRequest (detected on any port), whole or a prefix: Node takes over; another 8-byte packet is plain', () => {
    for (const port of [5432, 6432, 8080]) {
      assert.equal(decideFirstBytes(port, SSL_REQUEST, NONE, false), takeOver);
      assert.equal(decideFirstBytes(port, SSL_REQUEST.subarray(0, 3), NONE, false), takeOver);
      assert.equal(decideFirstBytes(port, hex('0000000804d21630'), NONE, false), takeOver);
    }
    assert.equal(decideFirstBytes(8080, hex('0000000904d2162f'), NONE, false), plain);
    assert.equal(decideFirstBytes(8080, hex('00'), NONE, false), takeOver, 'a prefix of a request');
  });

  test('an http-01 request line on port 80 (or a prefix of one) goes to Node; other requests on 80, and the same line elsewhere, are plain', () => {
    const challenge = b('GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0 HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(decideFirstBytes(80, challenge, NONE, false), takeOver);
    assert.equal(decideFirstBytes(80, b('GET /.well-kn'), NONE, false), takeOver);
    assert.equal(decideFirstBytes(80, b('G'), NONE, false), takeOver);
    assert.equal(decideFirstBytes(80, b('GET /index.html HTTP/1.1\r\n'), NONE, false), plain);
    assert.equal(decideFirstBytes(80, b('POST /.well-known/acme-challenge/x HTTP/1.1\r\n'), NONE, false), plain);
    assert.equal(decideFirstBytes(8080, challenge, NONE, false), plain);
  });

  test('the service spoke first: plain, whatever the client sent after it (a ClientHello too)', () => {
    const banner = b('220 mx.example ESMTP\r\n');
    assert.equal(decideFirstBytes(2525, NONE, banner, false), plain);
    assert.equal(decideFirstBytes(2525, b('EHLO a\r\n'), banner, false), plain);
    assert.equal(decideFirstBytes(2525, HELLO, banner, true), plain);
  });

  test('the client closed having sent nothing: plain (the service may still answer the half-closed connection)', () => {
    assert.equal(decideFirstBytes(8080, NONE, NONE, true), plain);
  });

  test('the service closed its side first (FIN, no byte): plain, the client may still send (the Sniffer\'s onUpstreamEnd)', () => {
    assert.equal(decideFirstBytes(8080, NONE, NONE, false, true), plain);
    assert.equal(decideFirstBytes(443, HELLO, NONE, false, true), plain);
  });

  test('nothing read either way and no FIN (the core\'s wait, the idle timeout, ran out): reset', () => {
    assert.equal(decideFirstBytes(8080, NONE, NONE, false), reset);
    assert.equal(decideFirstBytes(443, NONE, NONE, false), reset);
  });

  test('takes any Uint8Array view (the core\'s reused memory), reading only the view\'s bytes', () => {
    const memory = new Uint8Array(64);
    memory.set([0x16, 0x03, 0x01], 10);
    memory.set([0x47], 20); // 'G'
    assert.equal(decideFirstBytes(443, memory.subarray(10, 13), NONE, false), takeOver);
    assert.equal(decideFirstBytes(443, memory.subarray(11, 13), NONE, false), plain, '03 01: not TLS');
    assert.equal(decideFirstBytes(80, memory.subarray(20, 21), NONE, false), takeOver);
    assert.equal(decideFirstBytes(80, memory.subarray(20, 21), memory.subarray(0, 0), false), takeOver);
    assert.equal(decideFirstBytes(80, new Uint8Array(0), new Uint8Array([0x32]), false), plain);
  });

  test('the plain path allocates nothing (it runs once per connection): two million plain verdicts on 80, 8080 and a banner, no garbage collection', async () => {
    const request = new Uint8Array(b('GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n'));
    const banner = new Uint8Array(b('220 mx.example ESMTP\r\n'));
    const none = new Uint8Array(0);
    const run = (n: number): number => {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += decideFirstBytes(80, request, none, false) + decideFirstBytes(8080, request, none, false) + decideFirstBytes(25, none, banner, false);
      return sum;
    };
    assert.equal(run(100_000), plain, 'warmed up, and plain each time');
    let collections = 0;
    const observer = new PerformanceObserver((list) => {
      collections += list.getEntries().length;
    });
    observer.observe({ entryTypes: ['gc'] });
    assert.equal(run(2_000_000), plain);
    // GC entries are delivered after the loop, from the event loop.
    await new Promise((r) => setTimeout(r, 200));
    observer.disconnect();
    // 0 here; some 1,500 collections when each call allocated a small Buffer view and a result.
    assert.ok(collections <= 2, `${collections} garbage collections`);
  });

  test('property: plain only where the Sniffer, fed the same bytes by adoptConnection, relays plaintext byte-exact (two agent configurations)', async () => {
    const corpus = loadCorpus(firstBytesTarget.corpusDirs);
    for (const seed of firstBytesTarget.seeds(corpus)) await checkFirstBytes(seed);
    await fc.assert(fc.asyncProperty(firstBytesTarget.input(corpus), checkFirstBytes), { numRuns: 1500 });
  });
});

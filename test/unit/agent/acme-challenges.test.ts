// SPDX-License-Identifier: MIT
// Guards the http-01 matcher: only a well-formed validation request line is
// ours; every other request (and every prefix of one) is left to the service.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { http01Response, matchHttp01 } from '../../../src/agent/acme-challenges';

const TOKEN = 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0';

test('matchHttp01: a validation request line gives its token', () => {
  for (const eol of ['\r\n', '\n']) {
    const r = matchHttp01(Buffer.from(`GET /.well-known/acme-challenge/${TOKEN} HTTP/1.1${eol}Host: a.example${eol}${eol}`));
    assert.deepEqual(r, { kind: 'token', token: TOKEN });
  }
});

test('matchHttp01: every prefix of a validation request needs more', () => {
  const req = `GET /.well-known/acme-challenge/${TOKEN} HTTP/1.1\r\n`;
  for (let i = 1; i < req.length - 1; i++) {
    assert.deepEqual(matchHttp01(Buffer.from(req.slice(0, i))), { kind: 'need-more' }, `prefix of ${i} bytes`);
  }
});

test('matchHttp01: anything else is not ours', () => {
  const cases = [
    'GET / HTTP/1.1\r\n',
    'POST /.well-known/acme-challenge/abc HTTP/1.1\r\n',
    'GET /.well-known/acme-challenge/../../etc/passwd HTTP/1.1\r\n',
    'GET /.well-known/acme-challenge/abc?x=1 HTTP/1.1\r\n',
    'GET /.well-known/acme-challenge/abc HTTP/2\r\n',
    'GET /.well-known/acme-challenge/ HTTP/1.1\r\n',
    `GET /.well-known/acme-challenge/${'a'.repeat(129)} HTTP/1.1\r\n`,
    `GET /.well-known/acme-challenge/${'a'.repeat(400)}`,
    'get /.well-known/acme-challenge/abc HTTP/1.1\r\n',
    '\x16\x03\x01',
  ];
  for (const c of cases) assert.deepEqual(matchHttp01(Buffer.from(c, 'latin1')), { kind: 'no' }, JSON.stringify(c));
});

test('http01Response: 200, exact length, closes', () => {
  const text = http01Response(`${TOKEN}.thumb`).toString('latin1');
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(text, new RegExp(`Content-Length: ${TOKEN.length + 6}\\r\\n`));
  assert.match(text, /Connection: close\r\n\r\n/);
  assert.ok(text.endsWith(`${TOKEN}.thumb`));
});

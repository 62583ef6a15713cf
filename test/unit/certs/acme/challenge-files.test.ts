// SPDX-License-Identifier: MIT
// Guards the challenge files shared by the primary and the workers: what one
// writes the other reads, ids never become paths outside the directory, and
// the validation ports are reported pending exactly while a challenge is.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as acme from 'acme-client';
import { ChallengeFiles, readChallengeFiles } from '../../../../src/certs/acme/challenge-files';
import { tempDir } from '../temp-state';

test('http-01: written, read, removed; odd tokens are refused', async (t) => {
  const dir = path.join(tempDir(t), 'acme-challenges');
  const files = new ChallengeFiles(dir);
  await files.open();
  const ports: number[][] = [];
  files.onPendingPorts = (p) => ports.push(p);
  const reader = readChallengeFiles(dir);
  files.setHttp01('tok_en-1', 'tok_en-1.thumb');
  assert.equal(reader.http01('tok_en-1'), 'tok_en-1.thumb');
  assert.equal(reader.http01('other'), null);
  assert.equal(reader.http01('../http-01/tok_en-1'), null);
  assert.throws(() => files.setHttp01('../x', 'y'), { code: 'JFE_ERR_CERT' });
  files.remove('http-01', 'tok_en-1');
  assert.equal(reader.http01('tok_en-1'), null);
  assert.deepEqual(ports, [[80], []]);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
});

test('tls-alpn-01: names are normalised before they touch a path', async (t) => {
  const dir = path.join(tempDir(t), 'acme-challenges');
  const files = new ChallengeFiles(dir);
  await files.open();
  const reader = readChallengeFiles(dir);
  assert.equal(reader.tlsAlpn01('../../etc'), null);
  assert.equal(reader.tlsAlpn01('a.example'), null);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  // A garbage certificate: the reader answers null rather than throwing in the handshake path.
  files.setTlsAlpn01('a.example', 'not a certificate', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  assert.equal(reader.tlsAlpn01('A.Example.'), null);
  const [key, cert] = await acme.crypto.createAlpnCertificate({ identifier: { type: 'dns', value: 'b.example' } } as acme.Authorization, 'tok.thumb');
  files.setTlsAlpn01('b.example', cert.toString(), key.toString());
  assert.ok(reader.tlsAlpn01('B.example'), 'the RFC 8737 certificate was not served');
  files.remove('tls-alpn-01', 'b.example');
  assert.equal(reader.tlsAlpn01('b.example'), null);
});

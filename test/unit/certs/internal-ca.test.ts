// SPDX-License-Identifier: MIT
// Guards the internal CA: one root per state directory, kept and checked on
// load; leaves that verify against it for DNS names and IP addresses.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { isJfeError } from '../../../src/errors';
import { BACKDATE_MS, CA_CERT_FILE, CA_DIR, CA_KEY_FILE, CA_VALIDITY_MS, InternalCa, LEAF_VALIDITY_MS } from '../../../src/certs/internal-ca';
import { StateDir } from '../../../src/certs/state-dir';
import { bufferLogger, modeOf, tempDir } from './temp-state';

const DAY_MS = 86_400_000;

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];
}

async function openCa(root: string, now?: () => number): Promise<InternalCa> {
  const stateDir = await StateDir.open(root);
  return InternalCa.open({ stateDir, log: bufferLogger(), hostname: 'testhost', now });
}

test('the root is created once, private, and reused by later instances', async (t) => {
  const root = tempDir(t);
  const a = await openCa(root);
  const b = await openCa(root);
  assert.equal(b.rootPem(), a.rootPem());
  assert.equal(modeOf(path.join(root, CA_DIR)), 0o700);
  assert.equal(modeOf(path.join(root, CA_DIR, CA_KEY_FILE)), 0o600);
  assert.deepEqual(fs.readdirSync(path.join(root, CA_DIR)).sort(), [CA_CERT_FILE, CA_KEY_FILE]);
  assert.deepEqual(fs.readdirSync(root), [CA_DIR], 'no temp directory left');
});

test('concurrent first starts agree on one root', async (t) => {
  const root = tempDir(t);
  const cas = await Promise.all([openCa(root), openCa(root), openCa(root), openCa(root)]);
  for (const ca of cas) assert.equal(ca.rootPem(), cas[0]?.rootPem());
  assert.deepEqual(fs.readdirSync(root), [CA_DIR]);
});

test('the root: self-signed P-256 CA, critical CA:true, keyCertSign+cRLSign, 10 years, host in subject', async (t) => {
  const ca = await openCa(tempDir(t));
  const cert = new X509Certificate(ca.rootPem());
  assert.equal(cert.ca, true);
  assert.ok(cert.verify(cert.publicKey));
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.match(cert.subject, /^CN=jfe internal CA testhost [0-9a-f]{8}$/m);
  const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / DAY_MS;
  assert.ok(Math.abs(days - (CA_VALIDITY_MS + BACKDATE_MS) / DAY_MS) < 0.01, `validity ${days} days`);
  const px = new x509.X509Certificate(ca.rootPem());
  const bc = px.getExtension(x509.BasicConstraintsExtension);
  assert.equal(bc?.ca, true);
  assert.equal(bc?.critical, true);
  const ku = px.getExtension(x509.KeyUsagesExtension);
  assert.equal(ku?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  assert.equal(ku?.critical, true);
  assert.ok(px.getExtension(x509.SubjectKeyIdentifierExtension));
});

test('a DNS leaf verifies against the root and has the promised profile', async (t) => {
  const ca = await openCa(tempDir(t));
  const before = Date.now();
  const issued = await ca.issue('www.example.com');
  const [leafPem, chainPem, ...rest] = splitPem(issued.certPem);
  assert.equal(rest.length, 0);
  assert.equal(chainPem, ca.rootPem(), 'the chain ends with the root');
  const leaf = new X509Certificate(leafPem ?? '');
  const root = new X509Certificate(ca.rootPem());
  assert.ok(leaf.verify(root.publicKey));
  assert.ok(leaf.checkIssued(root));
  assert.equal(leaf.ca, false);
  assert.equal(leaf.checkHost('www.example.com'), 'www.example.com');
  assert.equal(leaf.checkHost('other.example.com'), undefined);
  assert.equal(leaf.subjectAltName, 'DNS:www.example.com');
  assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1']);
  assert.ok(leaf.checkPrivateKey(createPrivateKey(issued.keyPem)));
  assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  // 90 days from now, backdated an hour (seconds precision in the certificate).
  assert.ok(Math.abs(issued.notBefore.getTime() - (before - BACKDATE_MS)) < 5000);
  assert.ok(Math.abs(issued.notAfter.getTime() - (before + LEAF_VALIDITY_MS)) < 5000);
  assert.equal(issued.notAfter.getTime(), Date.parse(leaf.validTo));
  const px = new x509.X509Certificate(leafPem ?? '');
  assert.equal(px.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.digitalSignature);
  const aki = px.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
  const rootSki = new x509.X509Certificate(ca.rootPem()).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  assert.ok(aki !== undefined && aki === rootSki, 'AKI names the root key');
  assert.ok(px.getExtension(x509.SubjectKeyIdentifierExtension));
});

test('IPv4 and IPv6 leaves carry an iPAddress SAN', async (t) => {
  const ca = await openCa(tempDir(t));
  for (const ip of ['192.0.2.7', '2001:db8::1']) {
    const issued = await ca.issue(ip);
    const leaf = new X509Certificate(splitPem(issued.certPem)[0] ?? '');
    assert.equal(leaf.checkIP(ip), ip);
    assert.match(leaf.subjectAltName ?? '', /^IP Address:/);
    assert.ok(leaf.verify(new X509Certificate(ca.rootPem()).publicKey));
  }
});

test('serials are random 128-bit numbers', async (t) => {
  const ca = await openCa(tempDir(t));
  const serials = new Set<string>();
  for (let i = 0; i < 8; i++) {
    const leaf = new X509Certificate(splitPem((await ca.issue('a.example')).certPem)[0] ?? '');
    assert.ok(leaf.serialNumber.replace(/^0+/, '').length >= 24, leaf.serialNumber);
    assert.ok(leaf.serialNumber.length <= 34);
    serials.add(leaf.serialNumber);
  }
  assert.equal(serials.size, 8);
});

test('a name longer than a CN allows gets an empty subject and a critical SAN', async (t) => {
  const ca = await openCa(tempDir(t));
  const name = `${'a'.repeat(63)}.${'b'.repeat(20)}.example`;
  const issued = await ca.issue(name);
  const px = new x509.X509Certificate(splitPem(issued.certPem)[0] ?? '');
  assert.equal(px.subject, '');
  assert.equal(px.getExtension(x509.SubjectAlternativeNameExtension)?.critical, true);
  assert.equal(new X509Certificate(splitPem(issued.certPem)[0] ?? '').checkHost(name), name);
});

test('issue refuses names that are not normalised', async (t) => {
  const ca = await openCa(tempDir(t));
  for (const bad of ['Example.com', 'a..b', 'x y', '2001:DB8::1', '::ffff:1.2.3.4']) {
    await assert.rejects(ca.issue(bad), (err) => isJfeError(err, 'JFE_ERR_CERT'), bad);
  }
});

test('a key that does not match the root is refused with what to do', async (t) => {
  const a = tempDir(t);
  const b = tempDir(t);
  await openCa(a);
  await openCa(b);
  fs.copyFileSync(path.join(b, CA_DIR, CA_KEY_FILE), path.join(a, CA_DIR, CA_KEY_FILE));
  await assert.rejects(openCa(a), (err) => isJfeError(err, 'JFE_ERR_STATE') && /does not match/.test(err.message) && /move .* away/.test(err.message));
});

test('half a root (key without certificate) is refused, not overwritten', async (t) => {
  const root = tempDir(t);
  await openCa(root);
  fs.rmSync(path.join(root, CA_DIR, CA_CERT_FILE));
  await assert.rejects(openCa(root), (err) => isJfeError(err, 'JFE_ERR_STATE') && err.message.includes(CA_CERT_FILE));
  assert.ok(fs.existsSync(path.join(root, CA_DIR, CA_KEY_FILE)));
});

test('an expired root is refused; a root near its end cuts leaves short', async (t) => {
  const root = tempDir(t);
  const ca = await openCa(root);
  const rootEnd = Date.parse(new X509Certificate(ca.rootPem()).validTo);
  await assert.rejects(openCa(root, () => rootEnd + 1000), (err) => isJfeError(err, 'JFE_ERR_STATE') && /expired/.test(err.message));
  const late = await openCa(root, () => rootEnd - 10 * DAY_MS);
  const issued = await late.issue('late.example');
  assert.equal(issued.notAfter.getTime(), rootEnd);
});

test('a group-readable CA key is tightened to 0600', async (t) => {
  const root = tempDir(t);
  await openCa(root);
  const key = path.join(root, CA_DIR, CA_KEY_FILE);
  fs.chmodSync(key, 0o644);
  await openCa(root);
  assert.equal(modeOf(key), 0o600);
});

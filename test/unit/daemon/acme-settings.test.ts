// SPDX-License-Identifier: MIT
// Guards the ACME settings that span several options: refused combinations
// (before anything is touched), the challenge types the steered ports allow,
// and the handshake wait that must fit within the hello timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RateWindow } from '../../../src/config/rate-limit';
import { challengeTypes, effectiveIssueWaitMs, validateAcmeSettings } from '../../../src/daemon/acme';

const base = {
  issuer: 'acme', acmeDirectory: '', staging: false, acmeEmail: '', acmeEabKid: '', acmeEabHmacKey: '',
  acmeFallbackDirectory: '', acmeCaFile: '', issueWait: 10_000, challenge: 'auto', domain: ['example.com'] as string[],
  ask: '', askTimeout: 3000, publicIp: [] as string[], dnsServer: '', rateLimitDomain: [] as RateWindow[], rateLimitTotal: [] as RateWindow[], rateLimitClientShare: 1,
  negativeCacheTtl: 600_000, negativeCacheSize: 10_000,
  acmeRetryMin: 60_000, acmeRenewCheck: 3_600_000, acmeClockOffset: 0, runDir: '/run/jfe', ports: '23-65535', excludePorts: '', helloTimeout: 10_000,
} as const;

test('challengeTypes: pinned, or those whose port is steered', () => {
  assert.deepEqual(challengeTypes(base), ['http-01', 'tls-alpn-01']);
  assert.deepEqual(challengeTypes({ ...base, excludePorts: '80' }), ['tls-alpn-01']);
  assert.deepEqual(challengeTypes({ ...base, ports: '1000-2000' }), []);
  assert.deepEqual(challengeTypes({ ...base, challenge: 'tls-alpn-01' }), ['tls-alpn-01']);
});

test('validateAcmeSettings refuses contradictions with JFE_ERR_CONFIG_INVALID', () => {
  assert.doesNotThrow(() => validateAcmeSettings(base));
  assert.doesNotThrow(() => validateAcmeSettings({ ...base, issuer: 'internal', ports: '1000-2000' }));
  const bad = [
    { ...base, staging: true, acmeDirectory: 'https://ca.example/dir' },
    { ...base, acmeEabKid: 'kid' },
    { ...base, acmeEabHmacKey: 'a2V5' },
    { ...base, ports: '1000-2000' },
    { ...base, acmeCaFile: '/nonexistent/pebble.minica.pem' },
  ];
  for (const s of bad) assert.throws(() => validateAcmeSettings(s), { code: 'JFE_ERR_CONFIG_INVALID' });
});

test('the issue wait leaves the fallback time within the hello timeout', () => {
  assert.equal(effectiveIssueWaitMs({ issueWait: 10_000, helloTimeout: 10_000 }), 8_000);
  assert.equal(effectiveIssueWaitMs({ issueWait: 2_000, helloTimeout: 10_000 }), 2_000);
  assert.equal(effectiveIssueWaitMs({ issueWait: 5_000, helloTimeout: 1_000 }), 0);
});

// SPDX-License-Identifier: MIT
// --upstream-ports: one range, above the privileged ports, and the default
// below every client OS's ephemeral range (the collision it exists for).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadSettings } from '../../../src/config/load';
import { DEFAULT_UPSTREAM_PORTS, parseUpstreamPorts } from '../../../src/config/upstream-ports';

test('a range LO-HI is read, spaces allowed, one port allowed', () => {
  assert.deepEqual(parseUpstreamPorts('1024-32767'), { lo: 1024, hi: 32767 });
  assert.deepEqual(parseUpstreamPorts(' 20000 - 20999 '), { lo: 20000, hi: 20999 });
  assert.deepEqual(parseUpstreamPorts('5000-5000'), { lo: 5000, hi: 5000 });
  assert.deepEqual(parseUpstreamPorts('61000-65535'), { lo: 61000, hi: 65535 });
});

test('anything else is refused with the reason and the value', () => {
  for (const bad of ['', '5000', '1023-2000', '0-100', '3000-2000', '1024-65536', '1024-99999', '1024-', '-2000', 'a-b', '1024-2000,3000-4000', '1024..2000', '1e3-2000']) {
    assert.throws(() => parseUpstreamPorts(bad), { code: 'JFE_ERR_CONFIG_INVALID', message: `upstream ports must be a range LO-HI with 1024 <= LO <= HI <= 65535, e.g. "1024-32767", got "${bad}"` }, bad);
  }
});

test('the default lies below the ephemeral ranges clients draw from (Linux 32768-60999, Windows/macOS 49152-65535)', () => {
  const { lo, hi } = parseUpstreamPorts(DEFAULT_UPSTREAM_PORTS);
  assert.equal(lo, 1024);
  assert.ok(hi < 32768);
});

test('flag, environment and config key; errors name the source', () => {
  const names = ['upstreamPorts'] as const;
  assert.deepEqual(loadSettings({}, names, { env: {} }), { upstreamPorts: { lo: 1024, hi: 32767 } });
  assert.deepEqual(loadSettings({}, names, { env: { JFE_UPSTREAM_PORTS: '10000-20000' } }), { upstreamPorts: { lo: 10000, hi: 20000 } });
  assert.deepEqual(loadSettings({ upstreamPorts: '2000-3000' }, names, { env: { JFE_UPSTREAM_PORTS: '10000-20000' } }), { upstreamPorts: { lo: 2000, hi: 3000 } });
  assert.throws(() => loadSettings({ upstreamPorts: '80-90' }, names, { env: {} }), { code: 'JFE_ERR_CONFIG_INVALID', message: /^invalid --upstream-ports \(command line\): upstream ports must be a range LO-HI/ });
  assert.throws(() => loadSettings({}, names, { env: { JFE_UPSTREAM_PORTS: '40000-30000' } }), { code: 'JFE_ERR_CONFIG_INVALID', message: /^invalid JFE_UPSTREAM_PORTS \(environment\): .*got "40000-30000"$/ });
});

test('the config file key upstreamPorts, checked the same way', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-upstream-ports-'));
  try {
    const good = path.join(dir, 'good.yaml');
    fs.writeFileSync(good, 'upstreamPorts: 20000-29999\n');
    assert.deepEqual(loadSettings({ config: good }, ['upstreamPorts'] as const, { env: {} }), { upstreamPorts: { lo: 20000, hi: 29999 } });
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'upstreamPorts: 40000\n');
    assert.throws(() => loadSettings({ config: bad }, ['upstreamPorts'] as const, { env: {} }), { code: 'JFE_ERR_CONFIG_INVALID', message: /upstreamPorts.*upstream ports must be a range LO-HI.*got "40000"/ });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// SPDX-License-Identifier: MIT
// One precedence for every setting (flag, JFE_ env, command default, table
// default) and errors that name the flag and the variable.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadSettings } from '../../../src/config/load';
import { envName, flagName } from '../../../src/config/options';

test('names derive from the option key', () => {
  assert.equal(flagName('pinDir'), 'pin-dir');
  assert.equal(envName('pinDir'), 'JFE_PIN_DIR');
  assert.equal(envName('excludePorts'), 'JFE_EXCLUDE_PORTS');
});

test('flag beats environment beats command default beats table default', () => {
  const names = ['pinDir', 'logLevel'] as const;
  assert.deepEqual(loadSettings({}, names, { env: {} }), { pinDir: '/sys/fs/bpf/jfe', logLevel: 'info' });
  assert.deepEqual(loadSettings({}, names, { env: {}, defaults: { logLevel: 'warn' } }), { pinDir: '/sys/fs/bpf/jfe', logLevel: 'warn' });
  assert.deepEqual(loadSettings({}, names, { env: { JFE_LOG_LEVEL: 'debug', JFE_PIN_DIR: '/x' }, defaults: { logLevel: 'warn' } }), { pinDir: '/x', logLevel: 'debug' });
  assert.deepEqual(loadSettings({ pinDir: '/flag' }, names, { env: { JFE_PIN_DIR: '/x' } }), { pinDir: '/flag', logLevel: 'info' });
});

test('values are converted: numbers, marks in hex, durations, booleans from the environment', () => {
  const s = loadSettings({}, ['mark', 'workers', 'idleTimeout', 'json'] as const, { env: { JFE_MARK: '0x10', JFE_WORKERS: '3', JFE_IDLE_TIMEOUT: '2m', JFE_JSON: 'true' } });
  assert.deepEqual(s, { mark: 16, workers: 3, idleTimeout: 120_000, json: true });
  assert.ok(Object.isFrozen(s));
});

test('errors name the setting as its source spells it, and the source', () => {
  const cases: [Record<string, unknown>, NodeJS.ProcessEnv, RegExp][] = [
    [{ workers: '-1' }, {}, /^invalid --workers \(command line\): workers must be an integer from 0 to 64, got "-1"$/],
    [{}, { JFE_IDLE_TIMEOUT: '300' }, /^invalid JFE_IDLE_TIMEOUT \(environment\): "300" is not a duration/],
    [{ upstreamSource: 'nat' }, {}, /^invalid --upstream-source \(command line\)/],
    [{ stateDir: 'var/lib' }, {}, /^invalid --state-dir \(command line\): must be an absolute path$/],
    [{ idleTimeout: '100ms' }, {}, /^invalid --idle-timeout \(command line\): must be between 1000 ms and/],
    [{ maxConnectionsPerClient: '0' }, {}, /^invalid --max-connections-per-client \(command line\): max connections per client must be an integer from 1 to 10000000, got "0"$/],
    [{}, { JFE_MAX_CONNECTIONS_PER_CLIENT: 'lots' }, /^invalid JFE_MAX_CONNECTIONS_PER_CLIENT \(environment\): max connections per client must be an integer/],
    [{ certCacheIdle: '10' }, {}, /^invalid --cert-cache-idle \(command line\): "10" is not a duration/],
    [{ maxStoredCerts: '0' }, {}, /^invalid --max-stored-certs \(command line\): max stored certificates must be an integer from 1/],
  ];
  for (const [argv, env, msg] of cases) {
    assert.throws(() => loadSettings(argv, ['workers', 'idleTimeout', 'upstreamSource', 'stateDir', 'maxConnectionsPerClient', 'certCacheIdle', 'maxStoredCerts'] as const, { env }), { code: 'JFE_ERR_CONFIG_INVALID', message: msg });
  }
});

test('the connection and store limits: defaults, and values from each source', () => {
  const names = ['maxConnections', 'maxConnectionsPerClient', 'certCacheIdle', 'maxStoredCerts'] as const;
  assert.deepEqual(loadSettings({}, names, { env: {} }), { maxConnections: 20_000, maxConnectionsPerClient: 2000, certCacheIdle: 600_000, maxStoredCerts: 2000 });
  assert.deepEqual(
    loadSettings({ maxConnectionsPerClient: '50' }, names, { env: { JFE_MAX_CONNECTIONS: '900', JFE_CERT_CACHE_IDLE: '30s' } }),
    { maxConnections: 900, maxConnectionsPerClient: 50, certCacheIdle: 30_000, maxStoredCerts: 2000 },
  );
});

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
  ];
  for (const [argv, env, msg] of cases) {
    assert.throws(() => loadSettings(argv, ['workers', 'idleTimeout', 'upstreamSource', 'stateDir'] as const, { env }), { code: 'JFE_ERR_CONFIG_INVALID', message: msg });
  }
});

// SPDX-License-Identifier: MIT
// --metrics-listen: the accepted forms, "off", and the error for each bad one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadSettings } from '../../../src/config/load';
import { parseListenAddress } from '../../../src/config/listen-address';
import { isJfeError } from '../../../src/errors';

test('accepted forms', () => {
  assert.deepEqual(parseListenAddress('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(parseListenAddress('[::1]:9464'), { host: '::1', port: 9464 });
  assert.deepEqual(parseListenAddress(':9464'), { host: '::', port: 9464 });
  assert.deepEqual(parseListenAddress('metrics.local:1'), { host: 'metrics.local', port: 1 });
  assert.equal(parseListenAddress('off'), null);
});

test('bad values name the setting and the problem', () => {
  const cases: [string, string][] = [
    ['9464', 'invalid --metrics-listen (command line): must be host:port (e.g. 127.0.0.1:9464, [::1]:9464, :9464) or "off", got "9464"'],
    ['127.0.0.1:70000', 'invalid --metrics-listen (command line): must be host:port (e.g. 127.0.0.1:9464, [::1]:9464, :9464) or "off", got "127.0.0.1:70000"'],
    ['::1:9464', 'invalid --metrics-listen (command line): must be host:port (e.g. 127.0.0.1:9464, [::1]:9464, :9464) or "off", got "::1:9464"'],
    ['[1.2.3.4]:9464', 'invalid --metrics-listen (command line): "1.2.3.4" in brackets is not an IPv6 address'],
  ];
  for (const [v, msg] of cases) {
    assert.throws(() => loadSettings({ metricsListen: v }, ['metricsListen'], { env: {} }), (err: unknown) => {
      assert.ok(isJfeError(err, 'JFE_ERR_CONFIG_INVALID'));
      assert.equal(err.message, msg);
      return true;
    });
  }
  assert.deepEqual(loadSettings({}, ['metricsListen'], { env: {} }).metricsListen, { host: '127.0.0.1', port: 9464 });
  assert.equal(loadSettings({}, ['metricsListen'], { env: { JFE_METRICS_LISTEN: 'off' } }).metricsListen, null);
});

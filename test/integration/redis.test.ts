// SPDX-License-Identifier: MIT
// Guards TLS for a non-HTTP service: redis-cli --tls against a plaintext
// redis-server, through jfe, with the internal CA verified.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startRedis } from '../helpers/servers';
import { run } from '../helpers/spawn';

test('redis-cli --tls against a plaintext redis-server', async (t) => {
  if (!requireRoot(t, ['redis-server', 'redis-cli'])) return;
  const w = createWorld(t);
  await startRedis(w);
  const jfe = await startJfe(w);
  const cli = (args: string[]) => run('ip', ['netns', 'exec', w.cli.name, 'redis-cli', '-h', w.srv4, '-p', '6379', ...args]);

  await t.test('TLS: SET then GET', async () => {
    const set = await cli(['--tls', '--cacert', jfe.caFile, 'SET', 'greeting', 'over-tls']);
    assert.equal(set.stdout.trim(), 'OK', set.stderr);
    const get = await cli(['--tls', '--cacert', jfe.caFile, 'GET', 'greeting']);
    assert.equal(get.stdout.trim(), 'over-tls', get.stderr);
  });

  await t.test('plaintext clients see the same data', async () => {
    const get = await cli(['GET', 'greeting']);
    assert.equal(get.stdout.trim(), 'over-tls', get.stderr);
  });

  await t.test('redis sees the client, not the host', async () => {
    const r = await cli(['--tls', '--cacert', jfe.caFile, 'CLIENT', 'INFO']);
    assert.match(r.stdout, /addr=10\.77\.0\.1:\d+/, r.stdout + r.stderr);
  });

  await t.test('a wrong CA is refused by the client (verification is real)', async () => {
    const r = await cli(['--tls', '--cacert', '/etc/ssl/certs/ca-certificates.crt', 'PING']);
    assert.notEqual(r.stdout.trim(), 'PONG');
  });
});

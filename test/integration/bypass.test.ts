// SPDX-License-Identifier: MIT
// Guards the two exemptions that keep the agent from steering its own
// traffic and the host's: loopback sources, and bypass-map entries (the
// agent's upstream connections from the client's address).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requireRoot } from '../helpers/root';
import { dial } from '../helpers/sockets';
import { steeredWorld } from '../helpers/steered';

test('loopback sources and bypass entries are not steered', async (t) => {
  if (!requireRoot(t)) return;
  const { w, steering, addrs } = await steeredWorld(t, { servicePorts: [8080] });

  await t.test('loopback clients reach the service (IPv4 and IPv6)', async () => {
    assert.deepEqual(await dial(w.srv, 4, '127.0.0.1', 8080), { kind: 'answered', tag: 'service:8080' });
    assert.deepEqual(await dial(w.srv, 6, '::1', 8080), { kind: 'answered', tag: 'service:8080' });
    assert.equal(steering.counters().passLoopback, 2);
  });

  for (const { family, cli, srv } of addrs) {
    await t.test(`IPv${family}: a bypass entry for (client address, source port) reaches the service`, async () => {
      const port = 40000 + family;
      assert.deepEqual(await dial(w.cli, family, srv, 8080, { local: { address: cli, port } }), { kind: 'answered', tag: 'agent' });
      steering.addBypass(family, cli, port);
      assert.deepEqual(await dial(w.cli, family, srv, 8080, { local: { address: cli, port } }), { kind: 'answered', tag: 'service:8080' });
      // Another source port of the same client is still steered.
      assert.deepEqual(await dial(w.cli, family, srv, 8080, { local: { address: cli, port: port + 100 } }), { kind: 'answered', tag: 'agent' });
      assert.equal(steering.deleteBypass(family, cli, port), true);
      assert.deepEqual(await dial(w.cli, family, srv, 8080, { local: { address: cli, port } }), { kind: 'answered', tag: 'agent' });
    });
  }

  await t.test('bypass hits are counted', () => {
    assert.equal(steering.counters().passBypass, 2);
  });
});

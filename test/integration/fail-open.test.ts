// SPDX-License-Identifier: MIT
// Guards fail-open: when the agent's socket is gone (closed, agent crashed),
// connections reach the services directly instead of being refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requireRoot } from '../helpers/root';
import { dial } from '../helpers/sockets';
import { steeredWorld } from '../helpers/steered';

test('closing the registered socket fails open', async (t) => {
  if (!requireRoot(t)) return;
  const { w, steering, agents, addrs } = await steeredWorld(t, { servicePorts: [8080] });

  for (const { family, srv } of addrs) {
    assert.deepEqual(await dial(w.cli, family, srv, 8080), { kind: 'answered', tag: 'agent' });
  }
  for (const a of agents.values()) await a.close();

  await t.test('the kernel dropped the closed sockets from the sockmap', () => {
    assert.equal(steering.socketCookie(4, 0), null);
    assert.equal(steering.socketCookie(6, 0), null);
  });

  for (const { family, srv } of addrs) {
    await t.test(`IPv${family}: connections reach the service directly`, async () => {
      assert.deepEqual(await dial(w.cli, family, srv, 8080), { kind: 'answered', tag: 'service:8080' });
    });
  }

  await t.test('counted as passed for want of a socket', () => {
    assert.equal(steering.counters().passNoSocket, 2);
  });
});

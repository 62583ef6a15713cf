// SPDX-License-Identifier: MIT
// Guards the core verdict of the sk_lookup program in a real kernel: in-range
// ports with a listener land on the registered agent socket with the original
// destination intact; out-of-range, excluded and unlisted ports reach the real
// service; a port with nothing listening is refused by the kernel.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { requireRoot } from '../helpers/root';
import { dial } from '../helpers/sockets';
import { run } from '../helpers/spawn';
import { steeredWorld } from '../helpers/steered';

test('steering in a real kernel', async (t) => {
  if (!requireRoot(t)) return;
  // Real services on the wildcard address of each family; the listeners map says
  // what the agent would have learnt: all but 8082.
  const { w, steering, agents } = await steeredWorld(t, {
    attachArgs: ['--ports', '8000-8999', '--exclude-ports', '8081'],
    servicePorts: [8080, 8081, 8082, 9500],
    unlisted: [8082],
  });

  for (const [family, dst] of [[4, w.srv4], [6, w.srv6]] as const) {
    await t.test(`IPv${family}: in-range port with a listener lands on the agent socket`, async () => {
      const agent = agents.get(family);
      assert.ok(agent);
      const before = agent.accepted.length;
      assert.deepEqual(await dial(w.cli, family, dst, 8080), { kind: 'answered', tag: 'agent' });
      const got = agent.accepted[before];
      assert.ok(got, 'the agent socket accepted the connection');
      assert.equal(got.localAddress, dst, 'getsockname() is the original destination address');
      assert.equal(got.localPort, 8080, 'getsockname() is the original destination port');
      assert.equal(got.remoteAddress, family === 4 ? w.cli4 : w.cli6, 'the peer is the real client');
    });

    await t.test(`IPv${family}: out-of-range and excluded ports reach the real service`, async () => {
      assert.deepEqual(await dial(w.cli, family, dst, 9500), { kind: 'answered', tag: 'service:9500' });
      assert.deepEqual(await dial(w.cli, family, dst, 8081), { kind: 'answered', tag: 'service:8081' });
    });

    await t.test(`IPv${family}: a service missing from the listeners map is not steered`, async () => {
      assert.deepEqual(await dial(w.cli, family, dst, 8082), { kind: 'answered', tag: 'service:8082' });
    });

    await t.test(`IPv${family}: a port with nothing listening is refused by the kernel`, async () => {
      const agent = agents.get(family);
      assert.ok(agent);
      const before = agent.accepted.length;
      assert.deepEqual(await dial(w.cli, family, dst, 8500), { kind: 'refused' });
      assert.equal(agent.accepted.length, before, 'the agent accepted nothing');
    });
  }

  await t.test('counters count each verdict', () => {
    const c = steering.counters();
    assert.equal(c.steered, 2);
    assert.equal(c.passPort, 4, '9500 and 8081, both families');
    assert.equal(c.passNoListener, 4, '8082 and 8500, both families');
    assert.equal(c.assignFailed, 0);
  });

  await t.test('a sock_diag lookup (the agent\'s upstream collision check) is neither steered nor counted', async () => {
    // The kernel answers it with the same listener lookup a SYN gets, which
    // runs the program; counted, every proxied connection would count twice.
    const before = steering.counters();
    // sock_diag answers for the caller's namespace: ask from inside it.
    const script = `const n = require(${JSON.stringify(path.join(__dirname, '../../src/native.js'))}).native();
      const fd = n.diagOpen();
      console.log([n.diagExists(fd, 4, '${w.srv4}', 8080, '${w.cli4}', 40000), n.diagExists(fd, 6, '${w.srv6}', 8080, '${w.cli6}', 40000)].join());`;
    const r = await run('ip', ['netns', 'exec', w.srv.name, process.execPath, '-e', script]);
    assert.equal(r.stdout.trim(), 'false,false', r.stderr);
    assert.deepEqual(steering.counters(), before);
  });

  await t.test('a port scan looks the same as without jfe', async () => {
    const scan = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const family of [4, 6] as const) {
        for (const port of [8079, 8080, 8081, 8082, 8083, 8500, 9500, 9501]) {
          const o = await dial(w.cli, family, family === 4 ? w.srv4 : w.srv6, port);
          out.push(`${family}/${port}:${o.kind}`);
        }
      }
      return out;
    };
    const withJfe = await scan();
    steering.setSlotCount(0);
    const without = await scan();
    steering.setSlotCount(1);
    assert.deepEqual(withJfe, without);
  });
});

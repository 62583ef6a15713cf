// SPDX-License-Identifier: MIT
// Guards "a port scan looks the same with jfe running": a service bound only
// to 127.0.0.1 stays unreachable from the network, a port with nothing
// listening is refused at the SYN, a service that starts is steered and one
// that stops is no longer steered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitListed } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { spawnIn, startNginx, waitForPort } from '../helpers/servers';
import { dial, portState } from '../helpers/sockets';
import { run } from '../helpers/spawn';

test('only destinations with a listener are steered', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl'])) return;
  const w = createWorld(t);
  await startNginx(w);
  const scan = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const port of [8079, 8080, 8081, 8082, 9000]) {
      for (const [family, host] of [[4, w.srv4], [6, w.srv6]] as const) out.push(`${family}/${port}:${await portState(w.cli, family, host, port)}`);
    }
    return out;
  };
  const before = await scan();
  t.diagnostic(`without jfe: ${before.join(' ')}`);
  const jfe = await startJfe(w);
  const httpsOk = async (port: number): Promise<boolean> => {
    const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '3', '--cacert', jfe.caFile, `https://${w.srv4}:${port}/`]);
    return r.status === 0;
  };

  await t.test('a port scan sees the same open and closed ports as without jfe', async () => {
    assert.deepEqual(await scan(), before);
    assert.ok(before.includes('4/8081:refused'), 'the 127.0.0.1-only service is refused from outside');
    assert.ok(before.includes('4/9000:refused'));
  });

  await t.test('the 127.0.0.1-only service still answers on loopback', async () => {
    const r = await run('ip', ['netns', 'exec', w.srv.name, 'curl', '-sS', 'http://127.0.0.1:8081/']);
    assert.equal(r.stdout, 'local-only\n');
  });

  // What is asserted is the map and what a client gets, not how soon: the map follows
  // the host's listeners at --listeners-interval (100 ms here), however busy the machine.
  await t.test('a service that starts is steered (answers TLS); once it stops, it is refused', async () => {
    assert.equal((await dial(w.cli, 4, w.srv4, 9100)).kind, 'refused');
    const svc = spawnIn(w, w.srv, [process.execPath, '-e', "require('http').createServer((q,r)=>r.end('late\\n')).listen(9100,'::')"], 'late service');
    await waitForPort(w, w.srv4, 9100);
    const listening = Date.now();
    await waitListed(w, 9100, true);
    t.diagnostic(`listed ${Date.now() - listening} ms after it listened`);
    assert.ok(await httpsOk(9100), 'https to the new service: jfe answers TLS for it');
    await svc.stop();
    await waitListed(w, 9100, false);
    const o = await dial(w.cli, 4, w.srv4, 9100);
    assert.equal(o.kind, 'refused', `${JSON.stringify(o)}; ss: ${w.exec(w.srv, ['ss', '-tlnp'])}`);
  });
});

// SPDX-License-Identifier: MIT
// Guards "a port scan looks the same with jfe running": a service bound only
// to 127.0.0.1 stays unreachable from the network, a port with nothing
// listening is refused at the SYN, a service that starts is steered within a
// second and one that stops is no longer steered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { spawnIn, startNginx, waitForPort } from '../helpers/servers';
import { dial, portState } from '../helpers/sockets';
import { run } from '../helpers/spawn';

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

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

  await t.test('a service that starts is steered (answers TLS) within a second; once it stops, it is refused', async () => {
    assert.equal((await dial(w.cli, 4, w.srv4, 9100)).kind, 'refused');
    const svc = spawnIn(w, w.srv, [process.execPath, '-e', "require('http').createServer((q,r)=>r.end('late\\n')).listen(9100,'::')"], 'late service');
    await waitForPort(w, w.srv4, 9100);
    const took = await until('https to the new service', () => httpsOk(9100), 1000);
    t.diagnostic(`steered ${took} ms after it listened`);
    await svc.stop();
    let last = '';
    await until('refused after the service stopped', async () => {
      const o = await dial(w.cli, 4, w.srv4, 9100);
      last = JSON.stringify(o);
      return o.kind === 'refused';
    }, 1000).catch((err: Error) => assert.fail(`${err.message}; last dial: ${last}; ss: ${w.exec(w.srv, ['ss', '-tlnp'])}`));
  });
});

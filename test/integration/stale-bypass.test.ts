// SPDX-License-Identifier: MIT
// Guards the bypass map across a worker crash: the entries of a killed
// worker's upstream connections must not outlive them, or a later client that
// happens to use the same address and source port is never steered (its TLS
// meets the service's plaintext).
import assert from 'node:assert/strict';
import type net from 'node:net';
import { test } from 'node:test';
import { openSteering } from '../../src/bpf/steering';
import { connectRaw, waitSteered, workerPid } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startBanner, startNginx } from '../helpers/servers';

test('a killed worker leaves no bypass entries behind', async (t) => {
  if (!requireRoot(t, ['nginx'])) return;
  const w = createWorld(t);
  await startNginx(w);
  await startBanner(w, 9100, 'banner');
  const jfe = await startJfe(w);
  await waitSteered(w, 8080);
  await waitSteered(w, 9100);
  const bypass = () => {
    const maps = openSteering({ netnsPath: w.srv.path, pinDir: w.pinDir });
    try {
      return maps.bypassEntries();
    } finally {
      maps.close();
    }
  };

  // Long-lived connections through both workers (the banner proves each is relayed).
  const held: net.Socket[] = [];
  for (let i = 0; i < 10; i++) {
    const s = await connectRaw(w.cli, w.srv4, 9100);
    s.on('error', () => undefined);
    await new Promise((r) => s.once('data', r));
    held.push(s);
  }
  assert.equal(bypass().length, 10, 'one entry per upstream connection');

  const victim = workerPid(jfe, 0) as number;
  process.kill(victim, 'SIGKILL');
  await jfe.waitForLog((l) => l.msg === 'worker registered' && l.slot === 0 && l.pid !== victim, 15_000);
  for (const s of held) s.destroy();
  const deadline = Date.now() + 5000;
  let stale = bypass();
  while (stale.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    stale = bypass();
  }
  assert.deepEqual(stale, [], 'no bypass entry outlives its connection');
  await jfe.waitForLog((l) => l.msg === 'removed the bypass entries of a dead worker');
});

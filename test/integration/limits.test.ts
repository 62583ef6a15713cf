// SPDX-License-Identifier: MIT
// Guards the bounds an operator relies on: the connection cap refuses (and
// logs) what is over it while the rest keep working, and an idle connection
// is closed after --idle-timeout.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { native } from '../../src/native';
import { eventually } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { type World, createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startBanner } from '../helpers/servers';

/** Connects from the client namespace and waits for the banner line. */
function open(w: World, port: number): Promise<{ sock: net.Socket; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const sock = new net.Socket({ fd: native().tcpSocket(4, w.cli.fd), readable: true, writable: true });
    const closed = new Promise<string>((res) => {
      sock.on('error', (err: NodeJS.ErrnoException) => res(err.code ?? 'error'));
      sock.on('close', () => res('closed'));
    });
    sock.once('data', () => resolve({ sock, closed }));
    sock.once('close', () => reject(new Error('closed before the banner')));
    sock.connect(port, w.srv4);
  });
}

test('the connection cap refuses what is over it, and counts it', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  await startBanner(w, 2600, 'hi');
  const jfe = await startJfe(w, ['--max-connections', '3'], { workers: 1 });
  const held = await Promise.all([open(w, 2600), open(w, 2600), open(w, 2600)]);
  await assert.rejects(open(w, 2600), /closed before the banner/, 'the fourth is refused');
  await jfe.waitForLog((l) => l.msg === 'connection limit reached; refusing connections');
  held[0]?.sock.destroy();
  await held[0]?.closed;
  // The agent frees the slot when it sees that close, however long that takes here.
  const again = await eventually(() => open(w, 2600).catch(() => null), 10_000);
  assert.ok(again, 'a connection is accepted again once a held one closed');
  again.sock.destroy();
  for (const h of held) h.sock.destroy();
});

test('an idle connection is closed after --idle-timeout', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  await startBanner(w, 2601, 'hi');
  await startJfe(w, ['--idle-timeout', '2s']);
  const { sock, closed } = await open(w, 2601);
  // Traffic keeps it open past the timeout (a line every 200 ms, a tenth of it)...
  let lastWrite = 0;
  for (let i = 0; i < 15; i++) {
    await new Promise((r) => setTimeout(r, 200));
    sock.write('ping\n');
    lastWrite = Date.now();
  }
  assert.equal(sock.destroyed, false, 'still open while traffic flows');
  // ...and silence closes it: not before the timeout. How long after depends on how busy
  // the machine is; the 30 s bound only tells a close from none.
  const how = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('still open'), 30_000))]);
  assert.notEqual(how, 'still open');
  const idleFor = Date.now() - lastWrite;
  assert.ok(idleFor >= 1900, `closed ${idleFor} ms after the last byte (${how})`);
});

// SPDX-License-Identifier: MIT
// Guards the bounds an operator relies on: the connection cap refuses (and
// logs) what is over it while the rest keep working, and an idle connection
// is closed after --idle-timeout.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { native } from '../../src/native';
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
  await new Promise((r) => setTimeout(r, 200));
  const again = await open(w, 2600);
  again.sock.destroy();
  for (const h of held) h.sock.destroy();
});

test('an idle connection is closed after --idle-timeout', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  await startBanner(w, 2601, 'hi');
  await startJfe(w, ['--idle-timeout', '1s']);
  const { sock, closed } = await open(w, 2601);
  const started = Date.now();
  // Traffic keeps it open past the timeout...
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 400));
    sock.write('ping\n');
  }
  assert.equal(sock.destroyed, false, 'still open while traffic flows');
  // ...and silence closes it.
  const how = await closed;
  const idleFor = Date.now() - started - 1600;
  assert.ok(idleFor >= 900 && idleFor < 4000, `closed ${idleFor} ms after the last byte (${how})`);
});

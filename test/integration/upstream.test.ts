// SPDX-License-Identifier: MIT
// Guards the upstream leg: --upstream-source host connects from the host's
// own address; a service that stopped a moment ago (still in the listeners
// map) gets the client a reset, at once, as the host itself would give.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { native } from '../../src/native';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { spawnIn, startNginx, waitForPort } from '../helpers/servers';
import { run } from '../helpers/spawn';

test('--upstream-source host: the service sees the host address', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl'])) return;
  const w = createWorld(t);
  const nginx = await startNginx(w);
  const jfe = await startJfe(w, ['--upstream-source', 'host']);
  const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--cacert', jfe.caFile, `https://${w.srv4}:8080/`]);
  assert.equal(r.stdout, 'nginx-plain\n', r.stderr);
  const plain = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', `http://${w.srv4}:8080/`]);
  assert.equal(plain.stdout, 'nginx-plain\n', plain.stderr);
  // (The first TLS client's hello is also shown to nginx once, to learn that it
  // does not speak TLS itself: a 400 line, also from the host address.)
  const lines = fs.readFileSync(nginx.accessLog, 'utf8').trim().split('\n');
  assert.equal(lines.filter((l) => l.includes('"GET / HTTP/1.1" 200')).length, 2);
  for (const l of lines) assert.match(l, /^10\.77\.0\.2 8080 /, l);
});

test('a service that just stopped: the client is reset at once', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  const svc = spawnIn(w, w.srv, [process.execPath, '-e', "require('net').createServer((s)=>s.end('up\\n')).listen(9300,'0.0.0.0')"], 'short-lived service');
  await waitForPort(w, w.srv4, 9300);
  // The listeners map is refreshed slowly here, so it still lists the stopped service.
  const jfe = await startJfe(w, ['--listeners-interval', '60s']);
  void jfe;
  await svc.stop();
  const started = Date.now();
  const outcome = await new Promise<string>((resolve) => {
    const sock = new net.Socket({ fd: native().tcpSocket(4, w.cli.fd), readable: true, writable: true });
    sock.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    sock.on('end', () => resolve('eof'));
    sock.on('data', () => resolve('data'));
    sock.connect(9300, w.srv4);
    setTimeout(() => resolve('hang'), 10_000);
  });
  assert.ok(['ECONNRESET', 'ECONNREFUSED'].includes(outcome), `client got ${outcome}`);
  assert.ok(Date.now() - started < 5000, 'at once, not after a timeout');
});

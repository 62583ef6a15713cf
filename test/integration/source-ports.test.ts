// SPDX-License-Identifier: MIT
// Guards upstream source ports under connection churn: the service keeps the
// TIME_WAIT of each closed upstream connection, and a new upstream connection
// from the same client address may reuse such a port (a SYN reopens
// TIME_WAIT). Only a live connection is a collision. With the legs' range
// cut to 100 ports (--upstream-ports), every port is soon in TIME_WAIT. The client namespace draws its own ports
// elsewhere: a client port equal to a live leg's is what --upstream-ports
// prevents, and not this test's subject.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { run } from '../helpers/spawn';

test('many short connections from one client reuse source ports without failing', async (t) => {
  if (!requireRoot(t, ['nginx', 'wrk'])) return;
  const w = createWorld(t);
  await startNginx(w);
  w.exec(w.srv, ['sh', '-c', 'echo "40000 40099" > /proc/sys/net/ipv4/ip_local_port_range']);
  w.exec(w.cli, ['sh', '-c', 'echo "50000 60999" > /proc/sys/net/ipv4/ip_local_port_range']);
  const jfe = await startJfe(w, ['--upstream-ports', '40000-40099']);
  const r = await run('ip', ['netns', 'exec', w.cli.name, 'wrk', '-t1', '-c4', '-d4s', '-H', 'Connection: close', `http://${w.srv4}:8080/`]);
  assert.equal(r.status, 0, r.stderr);
  const done = Number(/(\d+) requests in/.exec(r.stdout)?.[1] ?? 0);
  assert.ok(done > 300, `well past the 100 ports of the range: ${done} requests`);
  assert.doesNotMatch(r.stdout, /Socket errors|Non-2xx/, r.stdout);
  const timeWait = w.exec(w.srv, ['sh', '-c', 'ss -tan state time-wait | wc -l']);
  t.diagnostic(`${done} requests; ${timeWait.trim()} TIME_WAIT sockets on the server side`);
  assert.equal(jfe.logs.filter((l) => l.msg === 'upstream socket failed').length, 0);
});

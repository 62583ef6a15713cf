// SPDX-License-Identifier: MIT
// Guards the upgrade of the steering program: an attach finding a program of
// another jfe build attached replaces it in the same link and on the same
// maps (registered sockets, ports, listeners and counters kept, no lookup
// without a program); when the maps differ, the attach fails with the fix and
// leaves the attached program as it was.
// The "other builds" are this program's source compiled with one change,
// loaded by bpftool: a different hash seed (same maps), and a listeners map
// of another size.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { netnsPinDir, pinPath } from '../../src/bpf/pins';
import { native } from '../../src/native';
import { BPFTOOL, compileVariant, installOlderBuild, linkedTag, thisBuildsTag } from '../helpers/older-program';
import { steeredWorld } from '../helpers/steered';
import { requireRoot } from '../helpers/root';
import { dial } from '../helpers/sockets';
import { BIN, run, runSync } from '../helpers/spawn';

test('an attach replaces the program of another build in place, maps kept', async (t) => {
  if (!requireRoot(t, ['clang', BPFTOOL])) return;
  const { w, steering, addrs } = await steeredWorld(t, { attachArgs: ['--ports', '8000-8999'], servicePorts: [8080] });
  const pins = netnsPinDir(w.pinDir, fs.statSync(w.srv.path).ino);
  const ours = thisBuildsTag();
  assert.equal(linkedTag(pins), ours);

  // Put an "older build" in the link, on the maps the attach made.
  installOlderBuild(pins, path.join(w.tmp, 'seed'));
  const olderTag = linkedTag(pins);
  assert.notEqual(olderTag, ours);
  for (const a of addrs) assert.deepEqual(await dial(w.cli, a.family, a.srv, 8080), { kind: 'answered', tag: 'agent' }, 'the older build steers');
  const countedBefore = steering.counters().steered;

  // Dials keep landing on the agent while the attach runs (no gap, no lost slot).
  let attaching = true;
  const outcomes: string[] = [];
  const dials = (async () => {
    for (let i = 0; i < 2000 && (attaching || outcomes.length === 0); i++) {
      const o = await dial(w.cli, 4, w.srv4, 8080);
      outcomes.push(o.kind === 'answered' ? o.tag : o.kind);
    }
  })();
  const r = await run(BIN.jfeBpf, ['attach', ...w.steeringArgs, '--ports', '8000-8999']);
  attaching = false;
  await dials;
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /program replaced by this version's/);
  assert.equal(linkedTag(pins), ours, 'this build\'s program is linked');
  assert.ok(!fs.existsSync(path.join(pins, 'prog-next')), 'no stray pin');
  assert.ok(outcomes.length > 0);
  t.diagnostic(`${outcomes.length} dials during the attach`);
  assert.deepEqual([...new Set(outcomes)], ['agent'], `every dial during the attach reached the agent (${outcomes.length} dials)`);

  // The state carried over: the registered sockets, the listeners, the ports and the counters.
  for (const a of addrs) {
    assert.deepEqual(await dial(w.cli, a.family, a.srv, 8080), { kind: 'answered', tag: 'agent' });
    assert.deepEqual(await dial(w.cli, a.family, a.srv, 9500), { kind: 'refused' }, 'port outside the set: the kernel answers');
  }
  assert.ok(steering.counters().steered >= countedBefore + outcomes.length + addrs.length, 'counters kept counting from where they were');

  // Attaching again with the same build changes nothing.
  const again = runSync(BIN.jfeBpf, ['attach', ...w.steeringArgs, '--ports', '8000-8999']);
  assert.equal(again.status, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /replaced/);
  assert.equal(linkedTag(pins), ours);
});

test('an attached program whose maps differ from this build\'s is left as it was; the attach says how to replace it', async (t) => {
  if (!requireRoot(t, ['clang', BPFTOOL])) return;
  const { w, addrs } = await steeredWorld(t, { attachArgs: ['--ports', '8000-8999'], servicePorts: [8080] });
  const ns = fs.statSync(w.srv.path).ino;
  const pins = netnsPinDir(w.pinDir, ns);
  // An "older build" with a smaller listeners map, attached by hand as its jfe would have.
  const detach = runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]);
  assert.equal(detach.status, 0, detach.stderr);
  const variant = compileVariant(path.join(w.tmp, 'maps'), { file: 'jfe.h', from: '#define JFE_MAX_LISTENERS (16384)', to: '#define JFE_MAX_LISTENERS (8192)' });
  fs.mkdirSync(pins, { recursive: true, mode: 0o700 });
  const load = runSync(BPFTOOL, ['prog', 'load', variant, pinPath(pins, 'prog'), 'type', 'sk_lookup', 'pinmaps', pins]);
  assert.equal(load.status, 0, load.stderr);
  const n = native();
  const prog = n.objGet(pinPath(pins, 'prog'));
  const link = n.attachNetns(prog, w.srv.fd);
  n.objPin(link, pinPath(pins, 'link'));
  fs.closeSync(link);
  fs.closeSync(prog);
  const olderTag = linkedTag(pins);

  const r = runSync(BIN.jfeBpf, ['attach', ...w.steeringArgs, '--ports', '8000-8999']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /pinned map .*listeners does not match this jfe build \(maxEntries differ\): run "jfe-bpf detach" then "jfe-bpf attach"/);
  assert.equal(linkedTag(pins), olderTag, 'the older program is still linked');
  // It still steers the way it did: nothing registered in its maps, so it fails open.
  for (const a of addrs) assert.deepEqual(await dial(w.cli, a.family, a.srv, 8080), { kind: 'answered', tag: 'service:8080' });
});

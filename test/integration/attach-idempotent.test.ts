// SPDX-License-Identifier: MIT
// Guards idempotent attach and status: attach twice equals attach once, a
// changed port set is applied in place (same link, no gap), and status tells
// the truth with exit codes 0 (attached) and 3 (not attached).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { BIN, runSync } from '../helpers/spawn';

interface StatusJson {
  attached: boolean;
  linkId?: number;
  progId?: number;
  ports?: string;
  routing: { change: string; present: boolean }[];
}

test('attach is idempotent and status tells the truth', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  w.cleanup.add('detach', () => runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]));
  const status = (): { code: number; json: StatusJson } => {
    const r = runSync(BIN.jfeBpf, ['status', '--json', ...w.steeringArgs]);
    return { code: r.status, json: JSON.parse(r.stdout) as StatusJson };
  };
  const ruleCount = (): number => w.exec(w.srv, ['ip', '-4', 'rule', 'show']).split('\n').filter((l) => l.includes('fwmark')).length;

  await t.test('before attach: status exits 3, not attached', () => {
    const s = status();
    assert.equal(s.code, 3);
    assert.equal(s.json.attached, false);
    assert.ok(s.json.routing.every((r) => !r.present));
  });

  const first = runSync(BIN.jfeBpf, ['attach', '--json', ...w.steeringArgs]);
  assert.equal(first.status, 0, first.stderr);
  const a1 = JSON.parse(first.stdout) as { state: string; linkId: number; progId: number };
  assert.equal(a1.state, 'attached');

  await t.test('attached: status exits 0 with the same ids and the default ports', () => {
    const s = status();
    assert.equal(s.code, 0);
    assert.equal(s.json.attached, true);
    assert.equal(s.json.linkId, a1.linkId);
    assert.equal(s.json.progId, a1.progId);
    assert.equal(s.json.ports, '23-65535');
    assert.ok(s.json.routing.every((r) => r.present));
  });

  await t.test('attach again changes nothing', () => {
    const again = runSync(BIN.jfeBpf, ['attach', '--json', ...w.steeringArgs]);
    assert.equal(again.status, 0, again.stderr);
    const a2 = JSON.parse(again.stdout) as { state: string; linkId: number; routingAdded: string[] };
    assert.equal(a2.state, 'unchanged');
    assert.equal(a2.linkId, a1.linkId);
    assert.deepEqual(a2.routingAdded, []);
    assert.equal(ruleCount(), 1);
    const ino = fs.statSync(w.srv.path).ino;
    const links = JSON.parse(runSync('bpftool', ['-j', 'link', 'show']).stdout) as { netns_ino?: number }[];
    assert.equal(links.filter((l) => l.netns_ino === ino).length, 1, 'one link in the namespace');
  });

  await t.test('a changed port set is applied in place', () => {
    const r = runSync(BIN.jfeBpf, ['attach', '--json', ...w.steeringArgs, '--ports', '80,443,8000-8999', '--exclude-ports', '8080']);
    assert.equal(r.status, 0, r.stderr);
    const a3 = JSON.parse(r.stdout) as { state: string; linkId: number };
    assert.equal(a3.state, 'updated');
    assert.equal(a3.linkId, a1.linkId, 'same link: no moment without steering');
    assert.equal(status().json.ports, '80,443,8000-8079,8081-8999');
  });

  await t.test('routing removed behind our back is restored by attach', () => {
    w.exec(w.srv, ['ip', '-4', 'rule', 'del', 'fwmark', String(w.mark), 'lookup', String(w.table), 'pref', String(w.priority)]);
    assert.equal(status().json.routing.filter((r) => !r.present).length, 1);
    assert.equal(runSync(BIN.jfeBpf, ['attach', ...w.steeringArgs, '--ports', '80,443,8000-8999', '--exclude-ports', '8080']).status, 0);
    assert.ok(status().json.routing.every((r) => r.present));
  });

  await t.test('after detach: status exits 3 again', () => {
    assert.equal(runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]).status, 0);
    const s = status();
    assert.equal(s.code, 3);
    assert.equal(s.json.attached, false);
  });

  await t.test('human status says the same', () => {
    const r = runSync(BIN.jfeBpf, ['status', ...w.steeringArgs]);
    assert.equal(r.status, 3);
    assert.match(r.stdout, /^steering: not attached/);
  });
});

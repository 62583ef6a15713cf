// SPDX-License-Identifier: MIT
// Guards detach: afterwards everything reaches the services directly, and the
// pins, routing rules, routes and sysctl that attach added are gone.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { requireRoot } from '../helpers/root';
import { dial } from '../helpers/sockets';
import { steeredWorld } from '../helpers/steered';
import { BIN, runSync } from '../helpers/spawn';

test('detach removes steering, pins and routing', async (t) => {
  if (!requireRoot(t)) return;
  const { w, addrs } = await steeredWorld(t, { servicePorts: [8080] });
  const ino = fs.statSync(w.srv.path).ino;
  const rules = (family: 4 | 6): string => w.exec(w.srv, ['ip', `-${family}`, 'rule', 'show']);
  const routes = (family: 4 | 6): string => w.exec(w.srv, ['ip', `-${family}`, 'route', 'show', 'table', 'all']);
  const sysctls = (): string => ['net/ipv4/tcp_fwmark_accept', 'net/ipv4/fwmark_reflect', 'net/ipv6/fwmark_reflect'].map((k) => w.exec(w.srv, ['cat', `/proc/sys/${k}`]).trim()).join(',');

  await t.test('attach added the routing', () => {
    for (const family of [4, 6] as const) {
      assert.match(rules(family), new RegExp(`fwmark 0x${w.mark.toString(16)} lookup ${w.table}`));
      assert.match(routes(family), new RegExp(`local (default|0.0.0.0/0|::/0) dev lo table ${w.table}`));
    }
    assert.equal(sysctls(), '1,1,1');
    assert.ok(fs.existsSync(path.join(w.pinDir, String(ino), 'link')));
  });

  const r = runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^detached/);

  for (const { family, srv } of addrs) {
    await t.test(`IPv${family}: connections reach the service`, async () => {
      assert.deepEqual(await dial(w.cli, family, srv, 8080), { kind: 'answered', tag: 'service:8080' });
    });
  }

  await t.test('pins, rules, routes and the sysctl are gone', () => {
    assert.deepEqual(fs.readdirSync(w.pinDir).filter((f) => !f.endsWith('.debug')), []);
    for (const family of [4, 6] as const) {
      assert.doesNotMatch(rules(family), /fwmark/);
      assert.doesNotMatch(routes(family), new RegExp(`table ${w.table}`));
    }
    assert.equal(sysctls(), '0,0,0');
  });

  await t.test('detach again is a no-op that succeeds', () => {
    const again = runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /^not attached/);
  });

  await t.test('routing an operator set up before attach is left alone', () => {
    w.exec(w.srv, ['ip', '-4', 'rule', 'add', 'fwmark', String(w.mark), 'lookup', String(w.table), 'pref', String(w.priority)]);
    assert.equal(runSync(BIN.jfeBpf, ['attach', ...w.steeringArgs]).status, 0);
    assert.equal(runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]).status, 0);
    assert.match(rules(4), new RegExp(`fwmark 0x${w.mark.toString(16)} lookup ${w.table}`), 'the pre-existing rule survives detach');
    assert.doesNotMatch(rules(6), /fwmark/, 'the rule jfe added is gone');
  });
});

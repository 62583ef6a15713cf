// SPDX-License-Identifier: MIT
// Guards "bad input gets a clear error and changes nothing": an invalid port
// spec, a missing netns path, a caller without privileges, and a pin dir with
// no bpffs (mounted for the caller, not an error).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { BIN, mustRun, runSync, runUnprivileged } from '../helpers/spawn';

test('jfe-bpf rejects bad input and changes nothing', async (t) => {
  if (!requireRoot(t, ['setpriv', 'unshare'])) return;
  const w = createWorld(t);
  const rules = (): string => w.exec(w.srv, ['ip', '-4', 'rule', 'show']);
  const pins = (): string[] => fs.readdirSync(w.pinDir).filter((f) => !f.endsWith('.debug'));
  const rulesBefore = rules();

  const cases: { name: string; args: string[]; code: number; message: RegExp }[] = [
    { name: 'port out of range', args: ['--ports', '20-70000'], code: 2, message: /^Error: invalid --ports \(command line\): port 70000 out of range/ },
    { name: 'backwards range', args: ['--ports', '9000-8000'], code: 2, message: /runs backwards: write 8000-9000/ },
    { name: 'garbage port', args: ['--exclude-ports', '25,http'], code: 2, message: /invalid --exclude-ports \(command line\): invalid port "http"/ },
    { name: 'everything excluded', args: ['--ports', '80', '--exclude-ports', '80'], code: 2, message: /leaves no port to steer/ },
    { name: 'bad mark', args: ['--mark', 'zero'], code: 2, message: /invalid --mark \(command line\)/ },
    { name: 'unknown flag', args: ['--portz', '80'], code: 2, message: /Unknown argument/ },
  ];
  for (const c of cases) {
    await t.test(`${c.name}: exit ${c.code}, one clear line, nothing attached`, () => {
      const r = runSync(BIN.jfeBpf, ['attach', ...w.steeringArgs, ...c.args]);
      assert.equal(r.status, c.code, r.stderr);
      assert.match(r.stderr, c.message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.deepEqual(pins(), []);
      assert.equal(rules(), rulesBefore);
    });
  }

  await t.test('bad values from the environment are named by their variable', () => {
    const r = runSync(BIN.jfeBpf, ['attach', ...w.steeringArgs], { JFE_PORTS: '0-10' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /invalid JFE_PORTS \(environment\): port 0 out of range/);
  });

  await t.test('a missing netns path: exit 1, says which path', () => {
    const missing = `/run/netns/${w.id}-nope`;
    const r = runSync(BIN.jfeBpf, ['attach', ...w.steeringArgs.map((a) => (a === w.srv.path ? missing : a))]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim(), `Error: no network namespace at ${missing}`);
    assert.deepEqual(pins(), []);
  });

  await t.test('a file that is not a netns: exit 1', () => {
    const r = runSync(BIN.jfeBpf, ['status', ...w.steeringArgs.map((a) => (a === w.srv.path ? '/etc/hostname' : a))]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /\/etc\/hostname is not a network namespace/);
  });

  await t.test('not root: exit 1 with "run as root"', (st) => {
    for (const cmd of ['attach', 'detach', 'status']) {
      const r = runUnprivileged(st, BIN.jfeBpf, [cmd, ...w.steeringArgs]);
      assert.equal(r.status, 1, `${cmd}: ${r.stderr}`);
      assert.equal(r.stderr.trim(), 'Error: run as root: needs CAP_BPF and CAP_NET_ADMIN');
    }
    assert.deepEqual(pins(), []);
    assert.equal(rules(), rulesBefore);
  });

  await t.test('a pin dir without bpffs gets one mounted', () => {
    const dir = path.join(w.tmp, 'fresh-pins');
    w.cleanup.add(`unmount ${dir}`, () => runSync('umount', [dir]));
    const args = w.steeringArgs.map((a) => (a === w.pinDir ? dir : a));
    const r = runSync(BIN.jfeBpf, ['attach', ...args]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(mustRun('findmnt', ['-n', '-o', 'FSTYPE', dir]), /bpf/);
    assert.equal(runSync(BIN.jfeBpf, ['detach', ...args]).status, 0);
  });
});

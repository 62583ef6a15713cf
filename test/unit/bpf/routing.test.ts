// SPDX-License-Identifier: MIT
// The routing record: attach adds only what is missing, records it first,
// and detach removes exactly that. Driven by a fake `ip`.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ensureRouting, readRecord, removeRouting, type Run } from '../../../src/bpf/routing';
import { silentLogger } from '../../../src/log';

/** A namespace's routing state, and an `ip`/`cat`/`sh` that act on it. */
const ACCEPT = '/proc/sys/net/ipv4/tcp_fwmark_accept';

function fakeNetns(initial: { rules?: string[]; routes?: string[]; sysctls?: Record<string, string> } = {}) {
  const state = { rules: new Set(initial.rules ?? []), routes: new Set(initial.routes ?? []), sysctls: new Map(Object.entries(initial.sysctls ?? {})), calls: [] as string[] };
  const ok = (stdout = '') => ({ status: 0, stdout, stderr: '' });
  const run: Run = (argv) => {
    state.calls.push(argv.join(' '));
    const [cmd, ...rest] = argv;
    if (cmd === 'cat') return ok(`${state.sysctls.get(rest[0] ?? '') ?? '0'}\n`);
    if (cmd === 'sh') {
      const m = /echo (\d+) > (\S+)/.exec(rest[1] ?? '');
      state.sysctls.set(m?.[2] ?? '?', m?.[1] ?? '?');
      return ok();
    }
    if (rest[0] === '-j') {
      const fam = rest[1]?.slice(1);
      if (rest[2] === 'rule') {
        return ok(JSON.stringify([...state.rules].filter((r) => r.startsWith(`${fam}:`)).map((r) => {
          const [, mark, table, pref] = r.split(':');
          return { priority: Number(pref), fwmark: `0x${Number(mark).toString(16)}`, table };
        })));
      }
      const table = rest[5];
      const has = state.routes.has(`${fam}:${table}`);
      return has ? ok(JSON.stringify([{ type: 'local', dst: 'default', dev: 'lo' }])) : { status: 2, stdout: '', stderr: 'Error: ipv4: FIB table does not exist.' };
    }
    const fam = rest[0]?.slice(1);
    const [what, op] = [rest[1], rest[2]];
    const key = what === 'rule' ? `${fam}:${rest[4]}:${rest[6]}:${rest[8]}` : `${fam}:${rest[8]}`;
    const set = what === 'rule' ? state.rules : state.routes;
    if (op === 'add') {
      if (set.has(key)) return { status: 2, stdout: '', stderr: 'RTNETLINK answers: File exists' };
      set.add(key);
    } else set.delete(key);
    return ok();
  };
  return { state, run };
}

const opts = { mark: 0x4a4645, table: 4645, priority: 4645 };

function tmpRecord(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-routing-'));
  return path.join(dir, 'routing.json');
}

test('attach adds all, twice adds nothing, detach removes all and restores the sysctls', () => {
  const ns = fakeNetns();
  const record = tmpRecord();
  const added = ensureRouting(ns.run, opts, record, true, silentLogger);
  assert.deepEqual(added, [
    'sysctl net.ipv4.tcp_fwmark_accept=1',
    'sysctl net.ipv4.fwmark_reflect=1',
    'sysctl net.ipv6.fwmark_reflect=1',
    'sysctl net.ipv4.tcp_tw_reuse=1',
    'ip -4 rule fwmark 0x4a4645 lookup 4645 pref 4645',
    'ip -4 route local 0.0.0.0/0 dev lo table 4645',
    'ip -6 rule fwmark 0x4a4645 lookup 4645 pref 4645',
    'ip -6 route local ::/0 dev lo table 4645',
  ]);
  assert.deepEqual([...ns.state.rules].sort(), ['4:4867653:4645:4645', '6:4867653:4645:4645']);
  assert.deepEqual([...ns.state.routes].sort(), ['4:4645', '6:4645']);
  assert.equal(ns.state.sysctls.get(ACCEPT), '1');
  assert.equal(ns.state.sysctls.get('/proc/sys/net/ipv6/fwmark_reflect'), '1');
  assert.equal(readRecord(record).length, 8);

  assert.deepEqual(ensureRouting(ns.run, opts, record, true, silentLogger), []);
  assert.equal(readRecord(record).length, 8);

  const removed = removeRouting(ns.run, record, silentLogger);
  assert.equal(removed.length, 8);
  assert.equal(ns.state.rules.size + ns.state.routes.size, 0);
  assert.deepEqual([...ns.state.sysctls.values()], ['0', '0', '0', '0']);
  assert.equal(fs.existsSync(record), false);
});

test('what was there before attach is neither recorded nor removed', () => {
  const ns = fakeNetns({ rules: ['4:4867653:4645:4645'], sysctls: { [ACCEPT]: '1' } });
  const record = tmpRecord();
  const added = ensureRouting(ns.run, opts, record, false, silentLogger);
  assert.deepEqual(added, ['sysctl net.ipv4.fwmark_reflect=1', 'sysctl net.ipv4.tcp_tw_reuse=1', 'ip -4 route local 0.0.0.0/0 dev lo table 4645']);
  removeRouting(ns.run, record, silentLogger);
  assert.ok(ns.state.rules.has('4:4867653:4645:4645'));
  assert.equal(ns.state.sysctls.get(ACCEPT), '1');
});

test('each change is recorded before it is applied', () => {
  const ns = fakeNetns();
  const record = tmpRecord();
  const failing: Run = (argv) => {
    if (argv.includes('route') && argv.includes('add')) {
      // The record already lists this route when the command runs.
      assert.ok(readRecord(record).some((c) => c.kind === 'route'));
      return { status: 2, stdout: '', stderr: 'Error: Nexthop device is not up.' };
    }
    return ns.run(argv);
  };
  assert.throws(() => ensureRouting(failing, opts, record, false, silentLogger), {
    code: 'JFE_ERR_ROUTING',
    message: /add local route: ip -4 route add local 0.0.0.0\/0 dev lo table 4645 failed: Error: Nexthop device is not up./,
  });
  // Detach after a failed attach removes what it did add, and skips the absent route.
  assert.equal(removeRouting(ns.run, record, silentLogger).length, 4);
  assert.equal(ns.state.rules.size, 0);
});

// SPDX-License-Identifier: MIT
// jfe doctor without root: checks run independently (one that throws fails
// alone), the report shows each fix, and status lines become runnable commands.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderDoctor } from '../../../src/cli/commands/doctor';
import { runChecks } from '../../../src/doctor/check';
import { addCommand } from '../../../src/doctor/host-checks';
import { openFilesCheck, openFilesResult } from '../../../src/doctor/open-files';
import fs from 'node:fs';

const opts = { pinDir: '/sys/fs/bpf/jfe', runDir: '/run/jfe', mark: 1, table: 2, priority: 3, maxConnections: 20_000 };

test('a check that throws fails alone, with its error; the others still run', async () => {
  const r = await runChecks(
    [
      { name: 'a', run: () => ({ name: 'a', ok: true, detail: 'fine' }) },
      { name: 'b', run: () => { throw new Error('boom'); } },
      { name: 'c', run: async () => ({ name: 'c', ok: false, detail: 'broken', fix: 'do x' }) },
    ],
    opts,
  );
  assert.deepEqual(r.map((x) => [x.name, x.ok]), [['a', true], ['b', false], ['c', false]]);
  assert.match(r[1]?.detail ?? '', /check could not run: boom/);
});

test('the report prints every failure with its fix, and a summary', () => {
  const text = renderDoctor([
    { name: 'kernel and sk_lookup', ok: true, detail: 'Linux 6.1' },
    { name: 'routing rule and table', ok: false, detail: 'missing: x', fix: 'ip -4 rule add …' },
  ]);
  assert.equal(text, 'ok   kernel and sk_lookup: Linux 6.1\nFAIL routing rule and table: missing: x\n     fix: ip -4 rule add …\n1 of 2 checks failed');
  assert.match(renderDoctor([{ name: 'a', ok: true, detail: 'd' }]), /all checks passed$/);
});

test('status lines become the commands that add them', () => {
  assert.equal(addCommand('ip -4 rule fwmark 0x4a4645 lookup 4645 pref 4645'), 'ip -4 rule add fwmark 0x4a4645 lookup 4645 pref 4645');
  assert.equal(addCommand('ip -6 route local ::/0 dev lo table 4645'), 'ip -6 route add local ::/0 dev lo table 4645');
  assert.equal(addCommand('sysctl net.ipv4.tcp_fwmark_accept=1'), 'sysctl -w net.ipv4.tcp_fwmark_accept=1');
});

test('open files: a hard limit that holds two fds per connection plus the margin passes; below it, a warning with both fixes', () => {
  // 2 × 1000 + 1024 = 3024.
  const fine = openFilesResult({ soft: 1024, hard: 3024 }, 1000);
  assert.equal(fine.ok, true);
  assert.equal(fine.warn, undefined);
  assert.match(fine.detail, /^soft 1024, hard 3024 .*needs 3024/);
  const low = openFilesResult({ soft: 1024, hard: 3023 }, 1000);
  assert.equal(low.ok, true, 'a warning does not fail jfe doctor');
  assert.equal(low.warn, true);
  assert.match(low.detail, /below the 3024 that --max-connections 1000 needs/);
  assert.match(low.fix ?? '', /LimitNOFILE=3024/);
  assert.match(low.fix ?? '', /lower --max-connections to 999$/);
  const text = renderDoctor([low]);
  assert.match(text, /^warn open files limit: /);
  assert.match(text, /\n     fix: raise the hard limit/);
  assert.match(text, /all checks passed$/);
});

test("open files: the check reports this process's real limits", () => {
  const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files')) ?? '';
  const [, soft, hard] = /^Max open files\s+(\d+)\s+(\d+)/.exec(line) ?? [];
  const r = openFilesCheck.run(opts);
  assert.ok(!(r instanceof Promise));
  assert.match(r.detail, new RegExp(`^soft ${soft}, hard ${hard} `));
});

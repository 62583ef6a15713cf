// SPDX-License-Identifier: MIT
// jfe-bpf as a user meets it without root: help is complete and exits 0, and
// bad input is refused with exit 2 before anything is touched.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BIN, runSync } from '../../helpers/spawn';

test('every command has help that exits 0 and lists its flags', () => {
  const top = runSync(BIN.jfeBpf, ['--help']);
  assert.equal(top.status, 0);
  for (const cmd of ['attach', 'detach', 'status']) assert.match(top.stdout, new RegExp(`jfe-bpf ${cmd}`));
  const flags: Record<string, string[]> = {
    attach: ['--netns', '--pin-dir', '--run-dir', '--ports', '--exclude-ports', '--mark', '--table', '--rule-priority', '--json'],
    detach: ['--netns', '--pin-dir', '--run-dir', '--mark', '--table', '--json'],
    status: ['--netns', '--pin-dir', '--run-dir', '--json'],
  };
  for (const [cmd, want] of Object.entries(flags)) {
    const r = runSync(BIN.jfeBpf, [cmd, '--help']);
    assert.equal(r.status, 0, cmd);
    for (const f of want) assert.match(r.stdout, new RegExp(`${f}\\b`), `${cmd} --help lists ${f}`);
    assert.match(r.stdout, /\[env JFE_PIN_DIR\]/, `${cmd} --help names the environment variables`);
  }
});

test('no command and unknown commands are usage errors (exit 2)', () => {
  const none = runSync(BIN.jfeBpf, []);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /^Error: give a command: attach, detach or status/);
  const bogus = runSync(BIN.jfeBpf, ['bogus']);
  assert.equal(bogus.status, 2);
  assert.match(bogus.stderr, /^Error: Unknown argument: bogus/);
});

test('bad values are refused with exit 2 before any privilege is needed', () => {
  const cases: [string[], RegExp][] = [
    [['attach', '--ports', '0-100'], /^Error: invalid --ports \(command line\): port 0 out of range in "0-100": ports are 1 to 65535\n$/],
    [['attach', '--pin-dir', 'relative/dir'], /^Error: invalid --pin-dir \(command line\): must be an absolute path\n$/],
    [['detach', '--table', '-1'], /^Error: invalid --table \(command line\): table must be an integer from 1 to 4294967295/],
    [['status', '--rule-priority', '40000'], /^Error: invalid --rule-priority \(command line\): rule priority must be below 32766/],
    [['status', '--log-level', 'loud'], /^Error: invalid --log-level \(command line\)/],
    [['attach', '--portz', '80'], /^Error: Unknown argument: portz\nRun with --help for usage.\n$/],
  ];
  for (const [args, msg] of cases) {
    const r = runSync(BIN.jfeBpf, args, { JFE_PIN_DIR: '/nonexistent/never-used' });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg, args.join(' '));
    assert.equal(r.stdout, '', 'nothing on stdout');
  }
});

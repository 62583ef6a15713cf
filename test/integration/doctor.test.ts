// SPDX-License-Identifier: MIT
// Guards `jfe doctor`: with jfe running every check passes (the self-test
// steers a real TLS connection from a temporary namespace) and it exits 0;
// with one piece broken (routing rule removed, tcp_fwmark_accept off, another
// build's program in the link, steering detached) the right check fails with
// its fix and it exits 1; applying the
// printed fix makes it pass again. Strict rp_filter does not break jfe (the
// self-test passes with it). Nothing of the self-test is left behind.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { netnsPinDir } from '../../src/bpf/pins';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { BPFTOOL, installOlderBuild } from '../helpers/older-program';
import { requireRoot } from '../helpers/root';
import { BIN, run, runSync } from '../helpers/spawn';

interface Report {
  ok: boolean;
  checks: { name: string; ok: boolean; detail: string; fix?: string }[];
}

test('jfe doctor: all pass with jfe running; the broken piece fails with its fix', async (t) => {
  if (!requireRoot(t, ['clang', BPFTOOL])) return;
  const w = createWorld(t);
  const doctor = async (): Promise<{ status: number; report: Report; text: string }> => {
    const r = await run(process.execPath, [BIN.jfe, 'doctor', '--json', ...w.steeringArgs], { timeoutMs: 60_000 });
    let report: Report;
    try {
      report = JSON.parse(r.stdout) as Report;
    } catch {
      throw new Error(`doctor printed no JSON (exit ${r.status}): ${r.stdout} ${r.stderr}`);
    }
    return { status: r.status, report, text: r.stdout };
  };
  const failed = (rep: Report): string[] => rep.checks.filter((c) => !c.ok).map((c) => c.name);
  const check = (rep: Report, name: string) => {
    const c = rep.checks.find((x) => x.name === name);
    assert.ok(c, `no check named ${name}`);
    return c;
  };

  await startJfe(w, ['--drain-timeout', '2s']);

  await t.test('everything in place: every check passes, exit 0', async () => {
    const d = await doctor();
    assert.deepEqual(failed(d.report), [], d.text);
    assert.equal(d.status, 0);
    assert.equal(d.report.ok, true);
    assert.match(check(d.report, 'end-to-end self-test').detail, /terminated by jfe; the listener got the plaintext from the client's own address 198\.18\./);
    assert.equal(runSync('ip', ['netns', 'list']).stdout.includes('jfe-doctor-'), false, 'the self-test namespace is removed');
  });

  await t.test('routing rule removed: that check fails with the command that adds it back', async () => {
    w.exec(w.srv, ['ip', '-4', 'rule', 'del', 'fwmark', String(w.mark), 'lookup', String(w.table), 'pref', String(w.priority)]);
    const d = await doctor();
    assert.equal(d.status, 1);
    assert.ok(failed(d.report).includes('routing rule and table'), d.text);
    assert.ok(failed(d.report).includes('end-to-end self-test'), 'the self-test meets the broken reply path');
    const fix = check(d.report, 'routing rule and table').fix ?? '';
    assert.match(fix, new RegExp(`^ip -4 rule add fwmark 0x${w.mark.toString(16)} lookup ${w.table} pref ${w.priority}`));
    // The printed fix works.
    w.exec(w.srv, fix.split(' && ')[0]!.split(/ \(in |; or /)[0]!.split(' '));
    const again = await doctor();
    assert.deepEqual(failed(again.report), [], again.text);
    assert.equal(again.status, 0);
  });

  await t.test('tcp_fwmark_accept off: that check fails with the sysctl that fixes it', async () => {
    w.exec(w.srv, ['sysctl', '-qw', 'net.ipv4.tcp_fwmark_accept=0']);
    try {
      const d = await doctor();
      assert.equal(d.status, 1);
      assert.ok(failed(d.report).includes('tcp_fwmark_accept, fwmark_reflect and tcp_tw_reuse'), d.text);
      assert.ok(!failed(d.report).includes('routing rule and table'));
      assert.match(check(d.report, 'tcp_fwmark_accept, fwmark_reflect and tcp_tw_reuse').fix ?? '', /^sysctl -w net\.ipv4\.tcp_fwmark_accept=1/);
      assert.ok(failed(d.report).includes('end-to-end self-test'), 'replies without the mark never reach jfe');
    } finally {
      w.exec(w.srv, ['sysctl', '-qw', 'net.ipv4.tcp_fwmark_accept=1']);
    }
  });

  await t.test('strict rp_filter everywhere (lo included): reported, and the self-test still passes', async () => {
    const devs = ['all', 'default', ...w.exec(w.srv, ['ls', '/proc/sys/net/ipv4/conf']).split('\n').filter((d) => d !== '' && d !== 'all' && d !== 'default')];
    const previous = devs.map((d) => [d, w.exec(w.srv, ['sysctl', '-n', `net.ipv4.conf.${d}.rp_filter`]).trim()] as const);
    try {
      for (const d of devs) w.exec(w.srv, ['sysctl', '-qw', `net.ipv4.conf.${d}.rp_filter=1`]);
      const d = await doctor();
      assert.deepEqual(failed(d.report), [], d.text);
      assert.match(check(d.report, 'rp_filter').detail, /^strict on .*lo/);
    } finally {
      for (const [dev, v] of previous) w.exec(w.srv, ['sysctl', '-qw', `net.ipv4.conf.${dev}.rp_filter=${v}`]);
    }
  });

  await t.test('another build\'s program in the link (jfe upgraded while it ran): that check fails; jfe-bpf attach fixes it', async () => {
    installOlderBuild(netnsPinDir(w.pinDir, fs.statSync(w.srv.path).ino), path.join(w.tmp, 'older'));
    const d = await doctor();
    assert.equal(d.status, 1);
    assert.deepEqual(failed(d.report), ['steering program current'], d.text);
    assert.match(check(d.report, 'steering program current').fix ?? '', /^jfe-bpf attach/);
    const r = runSync(BIN.jfeBpf, ['attach', ...w.steeringArgs]);
    assert.equal(r.status, 0, r.stderr);
    const again = await doctor();
    assert.deepEqual(failed(again.report), [], again.text);
  });

  await t.test('not attached: steering and sockets checks fail, exit 1', async () => {
    const r = runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]);
    assert.equal(r.status, 0, r.stderr);
    const d = await doctor();
    assert.equal(d.status, 1);
    for (const name of ['steering attached', 'steering program current', 'sockets registered', 'end-to-end self-test']) assert.ok(failed(d.report).includes(name), `${name} should fail: ${d.text}`);
    assert.match(check(d.report, 'steering attached').fix ?? '', /jfe run/);
    assert.ok(!failed(d.report).includes('kernel and sk_lookup'));
  });
});

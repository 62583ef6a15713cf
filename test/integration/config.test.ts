// SPDX-License-Identifier: MIT
// Configuration against the real `jfe run` in a namespace world: bad
// configurations exit with one clear line and touch nothing; SIGHUP applies a
// changed file live (a port stops and starts being steered), reports what
// needs a restart, and a bad file on SIGHUP keeps the running configuration.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { connectTls, eventually, httpGet, waitSteered } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { BIN, runSync } from '../helpers/spawn';
import { unitCapabilities } from '../helpers/deploy';

test('configuration', async (t) => {
  if (!requireRoot(t, ['nginx'])) return;
  const w = createWorld(t);
  const steering = w.steeringArgs.filter((_, i, a) => a[i] !== '--netns' && a[i - 1] !== '--netns');
  const writeConfig = (name: string, text: string): string => {
    const p = path.join(w.tmp, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const attached = (): number => runSync(BIN.jfeBpf, ['status', ...w.steeringArgs]).status;

  await t.test('bad configuration: exit non-zero, one line, no steering, no state dir', async (tt) => {
    const stateDir = path.join(w.tmp, 'never-created');
    const notADir = writeConfig('state-is-a-file', 'not a directory\n');
    const cases: { name: string; args: string[]; code: number; line: RegExp }[] = [
      { name: 'unknown key', args: ['--state-dir', stateDir, '--config', writeConfig('unknown.yaml', 'workers: 1\nexcludePort: 25\n')], code: 2, line: /^Error: unknown setting "excludePort" in \S+unknown\.yaml:2; did you mean "excludePorts"\?/ },
      { name: 'bad port spec', args: ['--state-dir', stateDir, '--config', writeConfig('ports.yaml', 'ports: 80-70000\n')], code: 2, line: /^Error: invalid ports \(\S+ports\.yaml:1\): port 70000 out of range/ },
      { name: 'unreadable state dir', args: ['--state-dir', notADir], code: 1, line: /^Error: state directory \S+state-is-a-file: exists and is not a directory/ },
    ];
    for (const c of cases) {
      await tt.test(c.name, () => {
        const r = runSync('ip', ['netns', 'exec', w.srv.name, process.execPath, BIN.jfe, 'run', ...steering, '--workers', '1', ...c.args]);
        assert.equal(r.status, c.code, r.stderr);
        assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
        assert.match(r.stderr, c.line);
        assert.equal(attached(), 3, 'no steering attached in the namespace');
        assert.equal(fs.existsSync(stateDir), false, 'no state directory created');
        assert.equal(fs.readFileSync(notADir, 'utf8'), 'not a directory\n');
      });
    }
  });

  await t.test('SIGHUP applies a changed file; a bad file keeps the running configuration', async () => {
    await startNginx(w);
    const config = writeConfig('jfe.yaml', 'excludePorts: ""\n');
    const jfe = await startJfe(w, ['--config', config]);
    const hup = async (match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
      const seen = jfe.logs.length;
      jfe.proc.kill('SIGHUP');
      return jfe.waitForLog((l) => jfe.logs.indexOf(l) >= seen && match(l));
    };
    const tlsWorks = async (): Promise<boolean> =>
      httpGet(w.cli, w.srv4, 8080, '/', fs.readFileSync(jfe.caFile, 'utf8'), 5000).then(
        (body) => body === 'nginx-plain\n',
        () => false,
      );

    await waitSteered(w, 8080);
    assert.equal(await tlsWorks(), true, 'steered: jfe terminates TLS for the plaintext nginx');

    fs.writeFileSync(config, 'excludePorts: "8080"\nupstreamSource: host\nworkers: 5\n');
    const reloaded = await hup((l) => l.msg === 'configuration reloaded');
    assert.deepEqual(reloaded.changed, ['excludePorts']);
    const restart = jfe.logs.find((l) => l.msg === 'changed settings need a restart; keeping their running values');
    assert.deepEqual(restart?.settings, ['upstreamSource'], 'workers is also set by a flag, which wins');
    assert.equal(await tlsWorks(), false, 'excluded: TLS no longer terminated');
    assert.equal(await httpGet(w.cli, w.srv4, 8080, '/'), 'nginx-plain\n', 'excluded: plaintext goes straight to nginx');

    fs.writeFileSync(config, 'excludePorts: http\n');
    const failed = await hup((l) => l.msg === 'reload failed; keeping the running configuration');
    assert.match(String(failed.err), /^invalid excludePorts \(\S+jfe\.yaml:1\): invalid port "http"/);
    assert.equal(jfe.logs.filter((l) => l.level === 50).length, 1, 'one error line');
    assert.equal(jfe.proc.exitCode, null, 'still running');
    assert.equal(await tlsWorks(), false, 'old configuration kept: 8080 still excluded');

    fs.writeFileSync(config, '{"excludePorts": ""}\n');
    await hup((l) => l.msg === 'configuration reloaded');
    assert.equal(await tlsWorks(), true, 'steered again');
    assert.equal(await jfe.stop(), 0);
  });

  await t.test('SIGHUP reloads certificates from the state directory in every worker', async () => {
    const jfe = await startJfe(w, [], { workers: 2 });
    await waitSteered(w, 8080);
    const ca = fs.readFileSync(jfe.caFile, 'utf8');
    // The slot hash spreads connections over the workers at random: take enough
    // that each worker has served the name (and holds it in memory) before the
    // file goes; with 24, one worker is missed about once in 8 million runs.
    const serials = async (n = 24): Promise<Set<string>> => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        const c = await connectTls(w.cli, w.srv4, 8080, ca, 'reload.example');
        seen.add(c.tls.getPeerX509Certificate()?.serialNumber ?? '');
        c.tls.destroy();
      }
      return seen;
    };
    const before = await serials();
    assert.equal(before.size, 1, 'one certificate for the name, shared by the workers');
    // An operator removes it (e.g. to force a new one): held in memory until SIGHUP.
    fs.rmSync(path.join(jfe.stateDir, 'certs', 'internal', 'reload.example'), { recursive: true });
    assert.deepEqual(await serials(), before, 'still served from memory before SIGHUP');
    const seen = jfe.logs.length;
    jfe.proc.kill('SIGHUP');
    await eventually(async () => {
      const n = jfe.logs.slice(seen).filter((l) => l.msg === 'certificates reloaded from the state directory').length;
      if (n < 2) throw new Error(`${n} of 2 workers reloaded`);
    }, 10_000);
    const after = await serials();
    assert.equal(after.size, 1);
    assert.notDeepEqual(after, before, 'a new certificate after the reload');
    assert.ok(fs.existsSync(path.join(jfe.stateDir, 'certs', 'internal', 'reload.example')), 'and it is stored again');
    assert.equal(await jfe.stop(), 0);
  });

  await t.test('the systemd unit\'s capabilities are enough: jfe run under exactly that bounding set serves TLS', async () => {
    const caps = unitCapabilities().map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
    const jfe = await startJfe(w, [], { wrap: ['setpriv', `--bounding-set=-all,${caps.join(',')}`, '--inh-caps=-all', '--'], workers: 1 });
    const eff = fs.readFileSync(`/proc/${jfe.proc.pid}/status`, 'utf8');
    assert.equal(/^CapBnd:\s*(\S+)$/m.exec(eff)?.[1], '0000008000001000', 'bounding set: CAP_BPF and CAP_NET_ADMIN only');
    await waitSteered(w, 8080);
    const body = await httpGet(w.cli, w.srv4, 8080, '/', fs.readFileSync(jfe.caFile, 'utf8'), 5000);
    assert.equal(body, 'nginx-plain\n', 'TLS terminated, upstream dialled from the client\'s address');
    assert.equal(await jfe.stop(), 0);
  });
});

// SPDX-License-Identifier: MIT
// deploy/ is checked as far as this machine can: the systemd unit by
// systemd-analyze verify, its capabilities against the code's own check, the
// DaemonSet's settings against the option table and its capabilities against
// the unit's, the Containerfile's packages against scripts/install.sh.
// (No container engine and no systemd as PID 1 here: neither is run.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { requireSteeringCaps } from '../../../src/bpf/privileges';
import { OPTIONS, envName } from '../../../src/config/options';
import { DEPLOY, unitCapabilities, unitValues } from '../../helpers/deploy';
import { ROOT_REQUIRED } from '../../helpers/root';

const CAP_NUMBERS: Record<string, number> = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_BPF: 39, CAP_NET_RAW: 13, CAP_PERFMON: 38 };

function statusWithCaps(caps: string[]): string {
  const mask = caps.reduce((m, c) => m | (1n << BigInt(CAP_NUMBERS[c] ?? -1)), 0n);
  return `Name:\tnode\nCapEff:\t${mask.toString(16).padStart(16, '0')}\n`;
}

test('the systemd unit passes systemd-analyze verify with no message', (t) => {
  if (spawnSync('sh', ['-c', 'command -v systemd-analyze']).status !== 0) {
    if (ROOT_REQUIRED) assert.fail('systemd-analyze is missing (package systemd)');
    t.skip('NOT RUN: systemd-analyze is missing');
    return;
  }
  // verify checks that ExecStart's program exists: point it at this machine's node (the unit
  // names a bare node, which systemd looks up in /usr/local/bin, /usr/bin… as root's PATH does).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-unit-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const unit = path.join(dir, 'jfe.service');
  const text = fs.readFileSync(DEPLOY.unit, 'utf8');
  assert.match(text, /^ExecStart=node \/opt\/jfe\/bin\/jfe /m);
  fs.writeFileSync(unit, text.replace(/^ExecStart=node /m, `ExecStart=${process.execPath} `));
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'verify is silent on a clean unit');
});

test('the unit: hardened, reload by SIGHUP, drain on stop, state directory', () => {
  assert.deepEqual(unitValues('ExecReload'), ['/bin/kill -HUP $MAINPID']);
  assert.deepEqual(unitValues('KillMode'), ['mixed']);
  assert.deepEqual(unitValues('StateDirectory'), ['jfe']);
  assert.deepEqual(unitValues('StateDirectoryMode'), ['0700']);
  for (const [k, v] of [['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['NoNewPrivileges', 'yes']]) {
    assert.deepEqual(unitValues(k!), [v], k);
  }
  assert.match(unitValues('ExecStart')[0] ?? '', /\/bin\/jfe run\b/);
  // TimeoutStopSec must leave the drain (default --drain-timeout) time to finish.
  const stopSec = Number(/^(\d+)s$/.exec(unitValues('TimeoutStopSec')[0] ?? '')?.[1]);
  assert.ok(stopSec * 1000 > Number(/^(\d+)s$/.exec(String(OPTIONS.drainTimeout.default))?.[1]) * 1000);
});

test('the unit\'s capabilities are what the code needs: enough for its check, and nothing to spare', () => {
  const caps = unitCapabilities();
  assert.deepEqual(caps, ['CAP_BPF', 'CAP_NET_ADMIN']);
  assert.deepEqual(unitValues('AmbientCapabilities').flatMap((v) => v.split(/\s+/)).sort(), caps);
  assert.doesNotThrow(() => requireSteeringCaps(statusWithCaps(caps)));
  for (const c of caps) {
    assert.throws(() => requireSteeringCaps(statusWithCaps(caps.filter((x) => x !== c))), { code: 'JFE_ERR_NOT_ROOT' }, `${c} is needed`);
  }
});

interface DaemonSet {
  spec: {
    template: {
      spec: {
        hostNetwork?: boolean;
        hostPID?: boolean;
        terminationGracePeriodSeconds?: number;
        containers: {
          env?: { name: string; value?: string }[];
          ports?: { containerPort: number }[];
          livenessProbe?: unknown;
          securityContext?: { capabilities?: { add?: string[]; drop?: string[] } };
          volumeMounts?: { mountPath: string }[];
        }[];
        volumes?: { name: string; hostPath?: { path: string } }[];
      };
    };
  };
}

test('the DaemonSet: host network, real JFE_ settings, the unit\'s capabilities, bpffs and state volumes, /healthz', () => {
  const ds = parse(fs.readFileSync(DEPLOY.daemonset, 'utf8')) as DaemonSet;
  const pod = ds.spec.template.spec;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.hostPID, undefined, 'jfe run acts on its own namespace: no host PID namespace');
  const [c] = pod.containers;
  assert.ok(c);
  const known = new Set(Object.keys(OPTIONS).map(envName));
  for (const e of c.env ?? []) {
    if (e.name.startsWith('JFE_')) assert.ok(known.has(e.name), `${e.name} is not a setting of the option table`);
  }
  assert.ok((c.env ?? []).length > 0);
  assert.deepEqual((c.securityContext?.capabilities?.add ?? []).map((x) => `CAP_${x}`).sort(), unitCapabilities());
  assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
  assert.deepEqual(
    (pod.volumes ?? []).map((v) => v.hostPath?.path).filter((p) => p !== undefined).sort(),
    ['/run/jfe', '/sys/fs/bpf', '/var/lib/jfe'],
  );
  assert.ok((c.ports ?? []).some((p) => p.containerPort === 9464), 'metrics port');
  assert.match(JSON.stringify(c.livenessProbe), /\/healthz/);
  assert.ok((pod.terminationGracePeriodSeconds ?? 0) > 30, 'longer than the default drain');
});

test('the Containerfile: Debian 12, install.sh\'s packages and Node, npm ci, jfe run', () => {
  const cf = fs.readFileSync(DEPLOY.containerfile, 'utf8');
  const install = fs.readFileSync(DEPLOY.install, 'utf8');
  const words = (re: RegExp, text: string): string[] => (re.exec(text)?.[1] ?? '').split(/\s+/).filter((w) => w !== '').sort();
  const installPkgs = words(/^pkgs="([^"]*)"/m, install);
  assert.ok(installPkgs.length > 5, 'install.sh lists its packages in pkgs="…"');
  assert.ok(/apt_install bpftool/.test(install), 'install.sh installs bpftool apart');
  assert.deepEqual(words(/^ARG BUILD_PKGS="([^"]*)"/m, cf), [...installPkgs, 'bpftool'].sort());
  const froms = cf.match(/^FROM \S+/gm) ?? [];
  assert.equal(froms.length, 2);
  for (const from of froms) assert.equal(from, 'FROM docker.io/library/debian:bookworm-slim', 'Debian 12, and no Node but the pinned one');
  assert.match(cf, /^RUN \.\/scripts\/install-node\.sh --system 26$/m, "install.sh's Node, integrity checked");
  assert.match(install, /install-node\.sh --system 26 /);
  assert.match(cf, /^RUN npm ci\b/m);
  assert.match(cf, /^ENTRYPOINT \["node", "\/opt\/jfe\/bin\/jfe"\]$/m);
  assert.match(cf, /^CMD \["run"\]$/m);
  for (const p of ['iproute2', 'util-linux']) assert.ok(words(/^ARG RUN_PKGS="([^"]*)"/m, cf).includes(p), `${p} at run time`);
});

// SPDX-License-Identifier: MIT
// Guards what a flood of new names from SNI (attacker input) may cost, with
// two workers and the internal CA: leaves on disk stay at the cap for the
// host, not per worker; the journal gets a share of "certificate issued"
// lines and a summary that counts the rest; each worker's memory goes back
// down once the flood is over, to about what as many handshakes for one name
// leave; an honest client is served throughout.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { connectTls, eventually, jfePids } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { startNginx } from '../helpers/servers';
import { run } from '../helpers/spawn';

const NAMES = 1500;
const CONCURRENCY = 16;
const CAP = 50;

/** Resident memory of a process, in MB. */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

test('a flood of SNI names: the disk cap holds for the host, the log is throttled, memory goes back down, honest clients are served', { timeout: 300_000 }, async (t) => {
  if (!requireRoot(t, ['nginx', 'curl'])) return;
  const w = createWorld(t);
  await startNginx(w);
  const jfe = await startJfe(w, ['--max-stored-certs', String(CAP), '--cert-cache-idle', '3s'], { workers: 2 });
  const honest = async (): Promise<void> => {
    const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '20', '--cacert', jfe.caFile, '--resolve', `www.honest.test:8080:${w.srv4}`, 'https://www.honest.test:8080/']);
    assert.equal(r.stdout, 'nginx-plain\n', r.stderr);
  };
  const ca = fs.readFileSync(jfe.caFile, 'utf8');
  /** NAMES handshakes, CONCURRENCY at a time, each for name(i); bounded in count and time. Returns how many failed. */
  const handshakes = async (name: (i: number) => string): Promise<number> => {
    const deadline = Date.now() + 120_000;
    let next = 0;
    let failed = 0;
    const one = async (): Promise<void> => {
      while (next < NAMES && Date.now() < deadline) {
        const n = name(next++);
        try {
          (await connectTls(w.cli, w.srv4, 8080, ca, n, 20_000)).tls.destroy();
        } catch {
          failed++;
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, one));
    assert.equal(next, NAMES, 'the handshakes finished in time');
    return failed;
  };
  // The yardstick: as many handshakes, all for one honest name. A worker's memory
  // after that is its working size for this much traffic.
  assert.equal(await handshakes(() => 'www.honest.test'), 0);
  const workers = jfePids(jfe).filter((pid) => pid !== jfe.proc.pid);
  assert.equal(workers.length, 2);
  await new Promise((r) => setTimeout(r, 4000));
  const before = workers.map(rssMb);

  // The flood: as many handshakes, each for a new name.
  const flooding = handshakes((i) => `f${i}-${Math.random().toString(36).slice(2, 8)}.flood.test`);
  await honest(); // served during the flood
  assert.equal(await flooding, 0, 'every flood handshake got a certificate for its name');
  const peak = workers.map(rssMb);

  await t.test('leaves on disk: the cap, for both workers together', () => {
    const dir = path.join(jfe.stateDir, 'certs', 'internal');
    const stored = fs.readdirSync(dir).filter((n) => !n.startsWith('.'));
    assert.equal(stored.length, CAP, `${stored.length} leaves on disk`);
  });

  await t.test('the journal: at most 30 "certificate issued" lines a minute per worker, and a summary that counts the rest', async () => {
    const issuedInfo = jfe.logs.filter((l) => l.msg === 'certificate issued' && l.level === 30).length;
    assert.ok(issuedInfo <= 2 * 30 * 4, `${issuedInfo} info lines for ${NAMES} names`);
    const summary = await jfe.waitForLog((l) => l.msg === 'more certificates issued than logged at info; the rest were logged at debug', 70_000);
    assert.ok(Number(summary.count) > 0);
  });

  await t.test('each worker\'s memory goes back down once the flood is over', async () => {
    // Idle contexts go after 3 s (--cert-cache-idle), the freed heap back to the kernel.
    const settled = await eventually(async () => {
      const now = workers.map(rssMb);
      return now.every((mb, i) => mb <= (before[i] ?? 0) + 20) ? now : undefined;
    }, 30_000, 1000);
    t.diagnostic(`RSS MB per worker: before ${before.map((x) => x.toFixed(0)).join('/')}, peak ${peak.map((x) => x.toFixed(0)).join('/')}, after ${workers.map(rssMb).map((x) => x.toFixed(0)).join('/')}`);
    assert.ok(settled, 'a worker stayed more than 20 MB above its size after as many handshakes for one name');
  });

  await t.test('the honest client is still served', honest);
});

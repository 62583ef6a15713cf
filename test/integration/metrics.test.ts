// SPDX-License-Identifier: MIT
// Guards /metrics and /healthz of a real `jfe run` with two workers: during
// real traffic (TLS, plaintext, an upstream that refuses, an invalid hello)
// each counter of the one merged scrape moves by exactly what was done, the
// BPF program's counters included; the metrics port itself is not steered;
// and a metrics address in use stops jfe before it touches the steering.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { native } from '../../src/native';
import { connectRaw, eventually, waitSteered } from '../helpers/clients';
import { startJfe } from '../helpers/jfe';
import { METRICS_PORT, type Sample, scrapeMetrics } from '../helpers/metrics';
import { createWorld } from '../helpers/netns';
import { requireRoot } from '../helpers/root';
import { spawnIn, startNginx, waitForPort } from '../helpers/servers';
import { BIN, run, runSync } from '../helpers/spawn';


test('/metrics counts real traffic exactly; /healthz', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl'])) return;
  const w = createWorld(t);
  await startNginx(w);
  // A service that stops while jfe's listeners map (refreshed slowly here) still lists it.
  const svc = spawnIn(w, w.srv, [process.execPath, '-e', "require('net').createServer((s)=>s.end('up\\n')).listen(9300,'0.0.0.0')"], 'short-lived service');
  await waitForPort(w, w.srv4, 9300);
  const jfe = await startJfe(w, ['--metrics-listen', `${w.srv4}:${METRICS_PORT}`, '--listeners-interval', '60s']);
  await waitSteered(w, 8080);
  await waitSteered(w, 9300);

  const curl = (args: string[]) => run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', ...args]);
  const scrape = (): Promise<Sample> => scrapeMetrics(w);
  const https = async (): Promise<void> => {
    const r = await curl(['--cacert', jfe.caFile, `https://${w.srv4}:8080/`]);
    assert.equal(r.stdout, 'nginx-plain\n', r.stderr);
  };
  const ISSUED = 'jfe_certificates_issued_total{issuer="internal",result="ok"}';

  // Warm-up: the certificate for the address is issued once (the other worker
  // adopts it from the state directory), and each worker learns that nginx speaks
  // plaintext: enough requests that the slot hash reaches both workers. A worker
  // that first probes inside the measured window dials upstream twice (bypass
  // +1; one CI run counted 8 for 7, most likely this: with 11 requests all go
  // to one worker about 1 time in 1000); with 31, about 1 in 10^9.
  const warm = await eventually(async () => {
    await https();
    const s = await scrape();
    return (s.get(ISSUED) ?? 0) >= 1 ? s : undefined;
  }, 30_000, 0);
  assert.ok(warm, 'the certificate was issued within 30 s of TLS requests');
  for (let i = 0; i < 30; i++) await https();
  assert.equal((await scrape()).get(ISSUED), 1, 'issued once for both workers');

  const health = await curl(['-i', `http://${w.srv4}:${METRICS_PORT}/healthz`]);
  assert.match(health.stdout, /^HTTP\/1\.1 200 /);
  assert.match(health.stdout, /ok: 2 of 2 workers registered\n$/);

  const before = await scrape();
  const expiry = before.get(`jfe_certificate_expiry_timestamp_seconds{name="${w.srv4}"}`) ?? 0;
  assert.ok(expiry * 1000 > Date.now() + 80 * 86_400_000, `expiry ${expiry}: about 90 days ahead`);

  for (let i = 0; i < 2; i++) await https();
  for (let i = 0; i < 3; i++) {
    const r = await curl([`http://${w.srv4}:8080/`]);
    assert.equal(r.stdout, 'nginx-plain\n', r.stderr);
  }
  // Refused upstream: the service is gone, jfe still steers its port.
  await svc.stop();
  const refused = await new Promise<string>((resolve) => {
    const sock = new net.Socket({ fd: native().tcpSocket(4, w.cli.fd), readable: true, writable: true });
    sock.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    sock.on('close', () => resolve('closed'));
    sock.connect(9300, w.srv4);
  });
  assert.ok(['ECONNRESET', 'ECONNREFUSED'].includes(refused), refused);
  // An invalid ClientHello: a handshake record that is not a ClientHello.
  const bad = await connectRaw(w.cli, w.srv4, 8080);
  await new Promise<void>((resolve) => {
    bad.on('error', () => undefined);
    bad.on('close', () => resolve());
    bad.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x03, 0x00, 0x40, 0x02]), Buffer.alloc(63)]));
    bad.resume();
  });

  // The last connections' close is reported asynchronously: wait until none is held.
  const after = await eventually(async () => {
    const s = await scrape();
    return s.get('jfe_connections_active') === 0 ? s : undefined;
  }, 10_000);
  assert.ok(after, 'no connection held 10 s after the traffic');
  const delta = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  const exact: Record<string, number> = {
    'jfe_connections_total{port="8080",kind="tls"}': 2,
    'jfe_connections_total{port="8080",kind="plain"}': 3,
    'jfe_connections_total{port="8080",kind="passthrough"}': 0,
    'jfe_tls_handshake_seconds_count': 2,
    'jfe_tls_handshake_failures_total{reason="hello-invalid"}': 1,
    'jfe_tls_handshake_failures_total{reason="handshake-error"}': 0,
    'jfe_upstream_connect_failures_total{reason="refused"}': 1,
    [ISSUED]: 0,
    'jfe_connections_refused_total': 0,
    // BPF: every client connection above was steered once (2 + 3 + 1 + 1; the
    // upstream collision check's sock_diag lookup is not counted); the agent's
    // own upstream connections passed by the bypass map (one each); the
    // metrics port is not steered: the last scrape's own SYN passed by port.
    'jfe_bpf_steered_total': 7,
    'jfe_bpf_passed_total{reason="bypass"}': 7,
    'jfe_bpf_passed_total{reason="no-socket"}': 0,
    'jfe_metrics_collection_errors_total{source="worker"}': 0,
    'jfe_metrics_collection_errors_total{source="bpf"}': 0,
  };
  const wrong = Object.entries(exact).filter(([k, v]) => delta(k) !== v).map(([k, v]) => `${k}: moved ${delta(k)}, expected ${v}`);
  assert.deepEqual(wrong, []);
  assert.ok(delta('jfe_bpf_passed_total{reason="port"}') >= 1, 'scrapes pass by port (not steered)');
  // Plaintext bytes: at least the 5 responses' bodies out and 5 request lines in.
  assert.ok(delta('jfe_bytes_total{direction="out"}') >= 5 * 'nginx-plain\n'.length);
  assert.ok(delta('jfe_bytes_total{direction="in"}') >= 5 * 'GET / HTTP/1.1\r\n'.length);
  assert.ok((after.get('process_cpu_seconds_total') ?? 0) > 0, 'process defaults present');
});

test('a metrics address in use: one clear line, non-zero exit, steering untouched', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  const holder = spawnIn(w, w.srv, [process.execPath, '-e', `require('net').createServer().listen(${METRICS_PORT},'${w.srv4}')`], 'port holder');
  await waitForPort(w, w.srv4, METRICS_PORT);
  const steering = w.steeringArgs.filter((_, i, a) => a[i] !== '--netns' && a[i - 1] !== '--netns');
  const r = await run('ip', ['netns', 'exec', w.srv.name, process.execPath, BIN.jfe, 'run', ...steering, '--state-dir', path.join(w.tmp, 'state'), '--workers', '1', '--metrics-listen', `${w.srv4}:${METRICS_PORT}`], { timeoutMs: 30_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr, `Error: cannot serve metrics on ${w.srv4}:${METRICS_PORT}: the address is already in use; stop what uses it, or choose another with --metrics-listen (or "off")\n`);
  const status = await run(BIN.jfeBpf, ['status', ...w.steeringArgs]);
  assert.equal(status.status, 3, `nothing attached: ${status.stdout}${status.stderr}`);
  assert.equal(fs.existsSync(path.join(w.tmp, 'state')), false, 'state dir not created');
  await holder.stop();
});

test('a startup that fails after the metrics endpoint is up still exits', async (t) => {
  if (!requireRoot(t)) return;
  const w = createWorld(t);
  w.cleanup.add('detach', () => runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]));
  const notADir = path.join(w.tmp, 'file');
  fs.writeFileSync(notADir, '');
  const steering = w.steeringArgs.filter((_, i, a) => a[i] !== '--netns' && a[i - 1] !== '--netns');
  const r = await run('ip', ['netns', 'exec', w.srv.name, process.execPath, BIN.jfe, 'run', ...steering, '--state-dir', path.join(notADir, 'state'), '--workers', '1', '--metrics-listen', `${w.srv4}:${METRICS_PORT}`], { timeoutMs: 30_000 });
  assert.equal(r.status, 1, `exit ${r.status}; stderr: ${r.stderr}`);
  assert.match(r.stderr, /^Error: .*state/);
});

test('a name the ACME policy refuses is counted, and no order is placed', async (t) => {
  if (!requireRoot(t, ['nginx', 'curl'])) return;
  const w = createWorld(t);
  await startNginx(w);
  // The directory is never reached: the policy refuses before any request to a CA.
  const jfe = await startJfe(w, ['--issuer', 'acme', '--acme-directory', 'https://127.0.0.1:9/dir', '--domain', 'allowed.test', '--metrics-listen', `${w.srv4}:${METRICS_PORT}`]);
  void jfe;
  await waitSteered(w, 8080);
  const scrape = (): Promise<Sample> => scrapeMetrics(w);
  const before = await scrape();
  // SNI refused.example: refused by policy, served with the internal CA's certificate for the address.
  const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '-k', '--max-time', '15', '--resolve', `refused.example:8080:${w.srv4}`, 'https://refused.example:8080/']);
  assert.equal(r.stdout, 'nginx-plain\n', r.stderr);
  const after = await scrape();
  const delta = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  assert.equal(delta('jfe_policy_refusals_total{reason="not-allowed"}'), 1);
  assert.equal(delta('jfe_certificates_issued_total{issuer="acme",result="ok"}'), 0);
  assert.equal(delta('jfe_certificates_issued_total{issuer="acme",result="error"}'), 0);
  assert.equal(delta('jfe_connections_total{port="8080",kind="tls"}'), 1);
});

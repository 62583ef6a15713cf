// SPDX-License-Identifier: MIT
// The metrics module: each hook moves exactly its series, label values stay
// in closed sets, two workers' registries merge into one scrape (a stuck one
// is left out and counted), and the endpoint answers /metrics and /healthz.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import type { Eviction, Refusal } from '../../../src/agent/admission';
import type { AgentEvents } from '../../../src/agent/agent';
import type { ConnectionKind, HandshakeFailure, UpstreamFailure } from '../../../src/agent/connection';
import type { UpgradeProtocol } from '../../../src/agent/upgrades/upgrade';
import type { AcmeDeferral, CertEvents, PolicyRefusal } from '../../../src/certs/cert-events';
import { openCertManager } from '../../../src/certs/cert-manager';
import { createNamePolicy } from '../../../src/certs/policy';
import { isJfeError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { certEvents, connectionEvents } from '../../../src/metrics/events';
import {
  ACME_DEFERRALS,
  BPF_PASS_REASONS,
  CONNECTION_KINDS,
  EVICTION_REASONS,
  HANDSHAKE_FAILURES,
  type JfeMetrics,
  POLICY_REFUSALS,
  REFUSAL_REASONS,
  UPGRADE_PROTOCOLS,
  UPSTREAM_FAILURES,
  createMetrics,
} from '../../../src/metrics/registry';
import { startMetricsServer } from '../../../src/metrics/server';
import { PrimaryScraper, type WorkerChannel, aggregateMetrics, scrapeAll } from '../../../src/metrics/workers';
import { native } from '../../../src/native';
import { tempDir } from '../certs/temp-state';

// Compile-time: every value the agent and the certificate side can report is
// a label value of its own here (not "other"). A new reason fails the build.
type Covers<Sub extends string, Set extends readonly string[]> = [Sub] extends [Set[number]] ? true : false;
const covered: [
  Covers<ConnectionKind, typeof CONNECTION_KINDS>,
  Covers<HandshakeFailure, typeof HANDSHAKE_FAILURES>,
  Covers<UpstreamFailure, typeof UPSTREAM_FAILURES>,
  Covers<UpgradeProtocol, typeof UPGRADE_PROTOCOLS>,
  Covers<PolicyRefusal, typeof POLICY_REFUSALS>,
  Covers<AcmeDeferral, typeof ACME_DEFERRALS>,
  Covers<Refusal, typeof REFUSAL_REASONS>,
  Covers<Eviction, typeof EVICTION_REASONS>,
] = [true, true, true, true, true, true, true, true];
void covered;

const ZERO_BPF = { steered: 0, passNotTcp: 0, passPort: 0, passLoopback: 0, passBypass: 0, passNoListener: 0, passNoSocket: 0, assignFailed: 0 };

function fresh(): JfeMetrics {
  return createMetrics({ version: 'test', processDefaults: false });
}

/** name{labels} → value, from the Prometheus text a scrape returns. */
function parseText(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function text(m: JfeMetrics): Promise<Map<string, number>> {
  return parseText(await m.registry.metrics());
}

test('each connection hook moves exactly its series', async () => {
  const m = fresh();
  const ev: AgentEvents = connectionEvents(m, silentLogger);
  const before = await text(m);
  ev.opened('tls', 443);
  ev.opened('tls', 443);
  ev.opened('plain', 8080);
  ev.opened('upgrade', 5432, 'postgres');
  ev.bytes('in', 100);
  ev.bytes('out', 7);
  ev.handshake?.(0.02);
  ev.handshakeFailed('hello-invalid');
  ev.handshakeFailed('client-closed');
  ev.sessionWithoutData();
  ev.upstreamFailed('refused');
  ev.refused('client-limit');
  ev.evicted('make-room');
  ev.collision();
  const after = await text(m);
  const want: Record<string, number> = {
    'jfe_connections_total{port="443",kind="tls"}': 2,
    'jfe_connections_total{port="8080",kind="plain"}': 1,
    'jfe_connections_total{port="5432",kind="upgrade"}': 1,
    'jfe_upgrades_total{protocol="postgres"}': 1,
    'jfe_bytes_total{direction="in"}': 100,
    'jfe_bytes_total{direction="out"}': 7,
    'jfe_tls_handshake_seconds_count': 1,
    'jfe_tls_handshake_seconds_bucket{le="0.025"}': 1,
    'jfe_tls_handshake_seconds_bucket{le="0.01"}': 0,
    'jfe_tls_handshake_failures_total{reason="hello-invalid"}': 1,
    'jfe_tls_handshake_failures_total{reason="client-closed"}': 1,
    'jfe_tls_sessions_without_data_total': 1,
    'jfe_upstream_connect_failures_total{reason="refused"}': 1,
    'jfe_connections_refused_total{reason="client-limit"}': 1,
    'jfe_connections_evicted_total{reason="make-room"}': 1,
    'jfe_upstream_source_port_collisions_total': 1,
  };
  for (const [k, v] of Object.entries(want)) assert.equal((after.get(k) ?? NaN) - (before.get(k) ?? 0), v, k);
  // Nothing else moved.
  for (const [k, v] of after) {
    if (k in want || k.startsWith('jfe_tls_handshake_seconds') || k.startsWith('jfe_build_info')) continue;
    assert.equal(v, before.get(k) ?? 0, `${k} moved`);
  }
});

test('label values come from closed sets: anything else is "other"', async () => {
  const m = fresh();
  const ev = connectionEvents(m, silentLogger);
  ev.opened('bogus', 70000);
  ev.opened('upgrade', 25, 'gopher');
  ev.handshakeFailed('made-up');
  ev.upstreamFailed('EWHATEVER');
  const ce = certEvents(m);
  ce.policyRefused('nope');
  ce.acmeDeferred('whatever');
  ce.issued('internal', 'weird');
  const t = await text(m);
  assert.equal(t.get('jfe_connections_total{port="other",kind="other"}'), 1);
  assert.equal(t.get('jfe_upgrades_total{protocol="other"}'), 1);
  assert.equal(t.get('jfe_tls_handshake_failures_total{reason="other"}'), 1);
  assert.equal(t.get('jfe_upstream_connect_failures_total{reason="other"}'), 1);
  assert.equal(t.get('jfe_policy_refusals_total{reason="other"}'), 1);
  assert.equal(t.get('jfe_acme_deferrals_total{reason="other"}'), 1);
  assert.equal(t.get('jfe_certificates_issued_total{issuer="internal",result="error"}'), 1);
  // Every label of every jfe_ series is in its closed set (port: a number or "other").
  const sets: Record<string, readonly string[]> = {
    kind: CONNECTION_KINDS, protocol: UPGRADE_PROTOCOLS, reason: [...HANDSHAKE_FAILURES, ...UPSTREAM_FAILURES, ...POLICY_REFUSALS, ...ACME_DEFERRALS, ...REFUSAL_REASONS, ...EVICTION_REASONS, ...BPF_PASS_REASONS],
    direction: ['in', 'out'], result: ['ok', 'error', 'timeout'], source: ['bpf', 'worker'],
  };
  for (const key of t.keys()) {
    for (const [, label, value] of key.matchAll(/(\w+)="([^"]*)"/g)) {
      if (label === 'port') assert.match(value ?? '', /^(\d{1,5}|other)$/);
      else if (label && sets[label]) assert.ok(sets[label]?.includes(value ?? ''), `${key}: ${label}=${value}`);
    }
  }
});

test('certificate expiry series are capped, keeping the soonest expiries', async () => {
  const m = fresh();
  const ce = certEvents(m, 3);
  const at = (days: number): Date => new Date(Date.UTC(2030, 0, 1) + days * 86_400_000);
  ce.expiry('a.example', at(30));
  ce.expiry('b.example', at(10));
  ce.expiry('c.example', at(20));
  ce.expiry('d.example', at(5)); // evicts a (latest)
  ce.expiry('e.example', at(90)); // later than all held: not added
  ce.expiry('b.example', at(40)); // renewal: updated in place
  const t = await text(m);
  const names = [...t.keys()].filter((k) => k.startsWith('jfe_certificate_expiry_timestamp_seconds')).sort();
  assert.deepEqual(names, ['b', 'c', 'd'].map((n) => `jfe_certificate_expiry_timestamp_seconds{name="${n}.example"}`));
  assert.equal(t.get('jfe_certificate_expiry_timestamp_seconds{name="b.example"}'), at(40).getTime() / 1000);
});

test('BPF counters are read at scrape time; a failed read is counted and keeps the last values', async () => {
  let counters: typeof ZERO_BPF | null = { ...ZERO_BPF, steered: 5, passPort: 2, passBypass: 3 };
  const m = createMetrics({ version: 'test', processDefaults: false, bpfCounters: () => {
    if (counters === null) throw new Error('map gone');
    return counters;
  } });
  let t = await text(m);
  assert.equal(t.get('jfe_bpf_steered_total'), 5);
  assert.equal(t.get('jfe_bpf_passed_total{reason="port"}'), 2);
  assert.equal(t.get('jfe_bpf_passed_total{reason="bypass"}'), 3);
  assert.equal(t.get('jfe_bpf_passed_total{reason="no-listener"}'), 0);
  counters = { ...counters, steered: 9 };
  t = await text(m);
  assert.equal(t.get('jfe_bpf_steered_total'), 9);
  counters = null;
  t = await text(m);
  assert.equal(t.get('jfe_bpf_steered_total'), 9);
  assert.equal(t.get('jfe_metrics_collection_errors_total{source="bpf"}'), 1);
  // Every counter of the program has its series: the pass reasons and "steered".
  assert.equal(BPF_PASS_REASONS.length + 1, Object.keys(native().layout.counters).length);
});

test('certificate events: policy refusals and the internal CA\'s issuance and expiry', async (t) => {
  const m = fresh();
  const ce: CertEvents = certEvents(m);
  const policy = createNamePolicy({ domains: ['*.example.com'], askUrl: null, publicIps: [] }, { log: silentLogger, events: ce });
  assert.deepEqual(await policy.check('other.org', '127.0.0.1'), { ok: false, reason: 'not-allowed' });
  assert.deepEqual(await policy.check('10.0.0.9', '127.0.0.1'), { ok: false, reason: 'ip-literal' });
  const dir = tempDir(t);
  const { manager } = await openCertManager({ stateDir: dir, log: silentLogger, events: ce });
  await manager.contextFor({ servername: 'svc.test', localAddress: '10.0.0.1' });
  let txt = await text(m);
  assert.equal(txt.get('jfe_policy_refusals_total{reason="not-allowed"}'), 1);
  assert.equal(txt.get('jfe_policy_refusals_total{reason="ip-literal"}'), 1);
  assert.equal(txt.get('jfe_certificates_issued_total{issuer="internal",result="ok"}'), 1);
  const notAfter = manager.describe('svc.test')?.notAfter;
  assert.ok(notAfter);
  assert.equal(txt.get('jfe_certificate_expiry_timestamp_seconds{name="svc.test"}'), Math.floor(notAfter.getTime() / 1000));
  // A restart loads the stored leaf: its expiry is reported without a new issuance.
  const m2 = fresh();
  await openCertManager({ stateDir: dir, log: silentLogger, events: certEvents(m2) });
  txt = await text(m2);
  assert.equal(txt.get('jfe_certificate_expiry_timestamp_seconds{name="svc.test"}'), Math.floor(notAfter.getTime() / 1000));
  assert.equal(txt.get('jfe_certificates_issued_total{issuer="internal",result="ok"}'), undefined);
});

/** A worker at the other end of an IPC channel, in process: answers like answerMetricsRequests (a copy, as IPC makes), or never (stuck). */
function fakeWorker(m: JfeMetrics | null, mode = { answer: true }): WorkerChannel {
  const chan = new EventEmitter() as EventEmitter & WorkerChannel;
  chan.connected = true;
  chan.send = (msg: unknown) => {
    const req = msg as { type: string; id: number };
    if (m && mode.answer) void m.registry.getMetricsAsJSON().then((metrics) => chan.emit('message', structuredClone({ type: 'jfe:metrics', id: req.id, metrics })));
    return true;
  };
  return chan;
}

test('two workers merge into one scrape; a stuck worker is left out and counted', async () => {
  const primary = createMetrics({ version: 'test', processDefaults: false, bpfCounters: () => ({ ...ZERO_BPF, steered: 4 }) });
  const w1 = fresh();
  const w2 = fresh();
  connectionEvents(w1, silentLogger).opened('tls', 443);
  connectionEvents(w2, silentLogger).opened('tls', 443);
  connectionEvents(w2, silentLogger).opened('plain', 80);
  connectionEvents(w1, silentLogger).bytes('in', 10);
  connectionEvents(w2, silentLogger).bytes('in', 5);
  w1.setActiveConnections(() => 3);
  w2.setActiveConnections(() => 4);
  const at = new Date('2030-01-01T00:00:00Z');
  certEvents(w1).expiry('x.test', at);
  certEvents(w2).expiry('x.test', new Date(at.getTime() + 86_400_000));
  const started = Date.now();
  const s = await scrapeAll(primary, [fakeWorker(w1), fakeWorker(w2), fakeWorker(null)], 300);
  assert.ok(Date.now() - started < 5000, 'the stuck worker did not block the scrape');
  assert.match(s.contentType, /^text\/plain/);
  const t = parseText(s.body);
  assert.equal(t.get('jfe_connections_total{port="443",kind="tls"}'), 2);
  assert.equal(t.get('jfe_connections_total{port="80",kind="plain"}'), 1);
  assert.equal(t.get('jfe_bytes_total{direction="in"}'), 15);
  assert.equal(t.get('jfe_connections_active'), 7);
  assert.equal(t.get('jfe_certificate_expiry_timestamp_seconds{name="x.test"}'), at.getTime() / 1000, 'the earliest expiry');
  assert.equal(t.get('jfe_build_info{version="test",node="' + process.version + '"}'), 1, 'not summed');
  assert.equal(t.get('jfe_bpf_steered_total'), 4);
  assert.equal(t.get('jfe_metrics_collection_errors_total{source="worker"}'), 1);
  // The histogram's buckets add up too.
  connectionEvents(w1, silentLogger).handshake(0.003);
  connectionEvents(w2, silentLogger).handshake(0.3);
  const agg = parseText(await aggregateMetrics([await w1.registry.getMetricsAsJSON(), await w2.registry.getMetricsAsJSON()]).metrics());
  assert.equal(agg.get('jfe_tls_handshake_seconds_count'), 2);
  assert.equal(agg.get('jfe_tls_handshake_seconds_bucket{le="0.005"}'), 1);
  assert.equal(agg.get('jfe_tls_handshake_seconds_bucket{le="0.5"}'), 2);
});

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

test('the endpoint: /metrics, /healthz 200 or 503 with a reason, 404; an address in use is a clear error', async (t) => {
  const m = fresh();
  let healthy = false;
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, {
    scrape: () => scrapeAll(m, []),
    health: () => (healthy ? { ok: true, reason: 'ok' } : { ok: false, reason: 'no worker registered' }),
    log: silentLogger,
  });
  t.after(() => server.close());
  const port = Number(server.address.split(':').pop());
  const metrics = await get(port, '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^# HELP jfe_build_info/m);
  assert.deepEqual(await get(port, '/healthz'), { status: 503, body: 'no worker registered\n' });
  healthy = true;
  assert.deepEqual(await get(port, '/healthz'), { status: 200, body: 'ok\n' });
  assert.equal((await get(port, '/nope')).status, 404);

  await assert.rejects(startMetricsServer({ host: '127.0.0.1', port }, { scrape: () => scrapeAll(m, []), health: () => ({ ok: true, reason: 'ok' }), log: silentLogger }), (err: unknown) => {
    assert.ok(isJfeError(err, 'JFE_ERR_METRICS_LISTEN'));
    assert.equal(err.message, `cannot serve metrics on 127.0.0.1:${port}: the address is already in use; stop what uses it, or choose another with --metrics-listen (or "off")`);
    return true;
  });
  assert.ok(net.isIP('127.0.0.1'));
});

test('counters do not go down when a worker is gone or stuck; its gauges do', async () => {
  const primary = fresh();
  const w1 = fresh();
  const w2 = fresh();
  const c1 = fakeWorker(w1);
  const c2 = fakeWorker(w2);
  connectionEvents(w1, silentLogger).opened('plain', 80);
  connectionEvents(w2, silentLogger).opened('plain', 80);
  w1.setActiveConnections(() => 5);
  const scraper = new PrimaryScraper(primary, 300);
  let t = parseText((await scraper.scrape([c1, c2])).body);
  assert.equal(t.get('jfe_connections_total{port="80",kind="plain"}'), 2);
  // w1 dies; its successor starts from zero.
  const w1b = fresh();
  connectionEvents(w1b, silentLogger).opened('plain', 80);
  t = parseText((await scraper.scrape([fakeWorker(w1b), c2])).body);
  assert.equal(t.get('jfe_connections_total{port="80",kind="plain"}'), 3);
  assert.equal(t.get('jfe_connections_active'), 0, 'a dead worker\'s gauge is not kept');
  // w2 gets stuck: its last answer stands in, and the miss is counted.
  const mode = { answer: true };
  const c3 = fakeWorker(w2, mode);
  const scraper2 = new PrimaryScraper(fresh(), 300);
  t = parseText((await scraper2.scrape([c3])).body);
  assert.equal(t.get('jfe_connections_total{port="80",kind="plain"}'), 1);
  mode.answer = false;
  connectionEvents(w2, silentLogger).opened('plain', 80);
  t = parseText((await scraper2.scrape([c3])).body);
  assert.equal(t.get('jfe_connections_total{port="80",kind="plain"}'), 1, 'the last answer, not nothing');
  assert.equal(t.get('jfe_metrics_collection_errors_total{source="worker"}'), 1);
});

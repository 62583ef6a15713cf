// SPDX-License-Identifier: MIT
// Every metric of jfe, defined once on a private registry. Names and labels
// are a public API (listed in the README): change them only with a note.
// Labels take values from closed sets only; anything else becomes "other".
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CounterName } from '../bpf/maps';

export const CONNECTION_KINDS = ['tls', 'plain', 'passthrough', 'upgrade', 'other'] as const;
export const HANDSHAKE_FAILURES = [
  'hello-invalid', 'hello-timeout', 'handshake-timeout', 'handshake-error', 'client-closed', 'no-certificate', 'upgrade-invalid', 'upgrade-timeout', 'other',
] as const;
export const UPSTREAM_FAILURES = ['refused', 'reset', 'timeout', 'unreachable', 'source-port', 'other'] as const;
export const UPGRADE_PROTOCOLS = ['postgres', 'smtp', 'imap', 'pop3', 'mysql', 'other'] as const;
export const CERT_RESULTS = ['ok', 'error', 'timeout'] as const;
export const POLICY_REFUSALS = [
  'invalid-name', 'ip-literal', 'wildcard', 'not-allowed', 'dialled-not-local', 'ask-refused', 'ask-error', 'dns-mismatch', 'dns-error', 'negative-cache', 'other',
] as const;
export const ACME_DEFERRALS = ['rate-limit-domain', 'rate-limit-total', 'rate-limit-client', 'backoff', 'issue-wait', 'other'] as const;
export const DIRECTIONS = ['in', 'out'] as const;
export const REFUSAL_REASONS = ['host-limit', 'client-limit', 'other'] as const;
export const EVICTION_REASONS = ['idle-overload', 'make-room', 'other'] as const;
/** Why the BPF program let a connection go to the kernel's own lookup (bpf/jfe.h). */
export const BPF_PASS_REASONS = ['not-tcp', 'port', 'loopback', 'bypass', 'no-listener', 'no-socket', 'assign-failed'] as const;
export const COLLECTION_SOURCES = ['bpf', 'worker'] as const;

/** The BPF program's counters, summed over CPUs: what SteeringMaps.counters() returns. */
export type BpfCounters = Record<CounterName, number>;

const BPF_PASS_FIELDS: Record<(typeof BPF_PASS_REASONS)[number], keyof BpfCounters> = {
  'not-tcp': 'passNotTcp',
  port: 'passPort',
  loopback: 'passLoopback',
  bypass: 'passBypass',
  'no-listener': 'passNoListener',
  'no-socket': 'passNoSocket',
  'assign-failed': 'assignFailed',
};

/** Certificate expiry series kept at most: names may be many (the internal CA has no policy). */
export const MAX_EXPIRY_SERIES = 1000;

/** Seconds; TLS handshakes here include any wait for a new certificate. */
const HANDSHAKE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A value from a closed set, or "other". */
export function bounded<T extends string>(set: readonly T[], v: string | undefined): T | 'other' {
  return v !== undefined && (set as readonly string[]).includes(v) ? (v as T) : 'other';
}

export interface MetricsOptions {
  version: string;
  /** The primary reads the BPF counters at scrape time; workers have none. */
  bpfCounters?: () => BpfCounters;
  /** Connections held now (a worker's Agent.activeConnections). */
  activeConnections?: () => number;
  /** Process defaults (process_*, nodejs_*); off in unit tests that count series. */
  processDefaults?: boolean;
}

export interface JfeMetrics {
  readonly registry: Registry;
  readonly connectionsTotal: Counter<'port' | 'kind'>;
  readonly upgradesTotal: Counter<'protocol'>;
  readonly connectionsActive: Gauge;
  readonly bytesTotal: Counter<'direction'>;
  /** Bytes counted since the last scrape, added to bytesTotal when it is collected. */
  readonly bytesPending: Record<'in' | 'out', number>;
  readonly handshakeSeconds: Histogram;
  readonly handshakeFailuresTotal: Counter<'reason'>;
  readonly sessionsWithoutDataTotal: Counter;
  readonly upstreamConnectFailuresTotal: Counter<'reason'>;
  readonly connectionsRefusedTotal: Counter<'reason'>;
  readonly connectionsEvictedTotal: Counter<'reason'>;
  readonly sourcePortCollisionsTotal: Counter;
  readonly certificatesIssuedTotal: Counter<'issuer' | 'result'>;
  readonly certificateExpiry: Gauge<'name'>;
  readonly policyRefusalsTotal: Counter<'reason'>;
  readonly acmeDeferralsTotal: Counter<'reason'>;
  readonly collectionErrorsTotal: Counter<'source'>;
  /** Supplies the live count once the worker's agent exists. */
  setActiveConnections(fn: () => number): void;
  /** Called at each scrape before jfe_bytes_total is read: a source that counts elsewhere (the native data plane) reports its bytes so far. */
  setBytesFlush(fn: () => void): void;
}

/** Makes the registry and every metric on it. One per process. */
export function createMetrics(opts: MetricsOptions): JfeMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (opts.processDefaults !== false) collectDefaultMetrics({ register: registry });

  const buildInfo = new Gauge({
    name: 'jfe_build_info',
    help: 'Always 1; the labels say which jfe and Node.js run.',
    labelNames: ['version', 'node'],
    registers,
    aggregator: 'first',
  });
  buildInfo.set({ version: opts.version, node: process.version }, 1);

  const connectionsTotal = new Counter({
    name: 'jfe_connections_total',
    help: 'Connections relayed, by destination port and kind (tls: terminated here, plain, passthrough: the service\'s own TLS, upgrade: STARTTLS-style).',
    labelNames: ['port', 'kind'],
    registers,
  });
  const upgradesTotal = new Counter({
    name: 'jfe_upgrades_total',
    help: 'Connections upgraded to TLS in band (kind="upgrade"), by protocol.',
    labelNames: ['protocol'],
    registers,
  });
  let active = opts.activeConnections;
  const connectionsActive = new Gauge({
    name: 'jfe_connections_active',
    help: 'Connections held now, including those still being sniffed.',
    registers,
    collect() {
      if (active) this.set(active());
    },
  });
  // Counted per chunk on the relay's hot path: a plain addition there, handed to
  // prom-client at scrape time (Counter.inc hashes its labels on every call: about
  // 3% of a worker's CPU in keep-alive TLS, perf 2026-11-27).
  const bytesPending = { in: 0, out: 0 };
  let flushBytes: (() => void) | undefined;
  const bytesTotal = new Counter({
    name: 'jfe_bytes_total',
    help: 'Plaintext bytes relayed: in = client to service, out = service to client.',
    labelNames: ['direction'],
    registers,
    collect() {
      flushBytes?.();
      for (const direction of DIRECTIONS) {
        const n = bytesPending[direction];
        if (n === 0) continue;
        bytesPending[direction] = 0;
        this.inc({ direction }, n);
      }
    },
  });
  const handshakeSeconds = new Histogram({
    name: 'jfe_tls_handshake_seconds',
    help: 'TLS handshakes terminated here, from the complete ClientHello to the end of the handshake (includes any wait for a new certificate).',
    buckets: HANDSHAKE_BUCKETS,
    registers,
  });
  const handshakeFailuresTotal = new Counter({
    name: 'jfe_tls_handshake_failures_total',
    help: 'Connections closed before their TLS (or upgrade) handshake completed, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const sessionsWithoutDataTotal = new Counter({
    name: 'jfe_tls_sessions_without_data_total',
    help: 'TLS sessions terminated here whose handshake completed, then closed or reset by the client before it sent any application data (scanners, TLS health checks).',
    registers,
  });
  const upstreamConnectFailuresTotal = new Counter({
    name: 'jfe_upstream_connect_failures_total',
    help: 'Connections to the service that failed, by reason; the client was reset.',
    labelNames: ['reason'],
    registers,
  });
  const connectionsRefusedTotal = new Counter({
    name: 'jfe_connections_refused_total',
    help: 'Connections refused (reset) at accept, by reason: host-limit (--max-connections, all workers, with no idle connection to close), client-limit (--max-connections-per-client).',
    labelNames: ['reason'],
    registers,
  });
  const connectionsEvictedTotal = new Counter({
    name: 'jfe_connections_evicted_total',
    help: 'Held connections closed near the host\'s connection cap, by reason: idle-overload (silent longer than the shortened idle timeout), make-room (the longest-silent, closed for a new connection at the cap).',
    labelNames: ['reason'],
    registers,
  });
  const sourcePortCollisionsTotal = new Counter({
    name: 'jfe_upstream_source_port_collisions_total',
    help: 'Upstream source ports that collided with a client connection and were picked again.',
    registers,
  });
  const certificatesIssuedTotal = new Counter({
    name: 'jfe_certificates_issued_total',
    help: 'Attempts to obtain a certificate from an issuer (new or renewal), by issuer and result.',
    labelNames: ['issuer', 'result'],
    registers,
  });
  const certificateExpiry = new Gauge({
    name: 'jfe_certificate_expiry_timestamp_seconds',
    help: `When each held certificate expires (Unix seconds), by name; the earliest over workers; at most ${MAX_EXPIRY_SERIES} names.`,
    labelNames: ['name'],
    registers,
    aggregator: 'min',
  });
  const policyRefusalsTotal = new Counter({
    name: 'jfe_policy_refusals_total',
    help: 'Certificate names refused by the name policy before any request reached a CA, by reason.',
    labelNames: ['reason'],
    registers,
  });

  const acmeDeferralsTotal = new Counter({
    name: 'jfe_acme_deferrals_total',
    help: 'Names the policy lets ACME issue for that got no ACME certificate now (the internal CA\'s meanwhile), by reason.',
    labelNames: ['reason'],
    registers,
  });

  if (opts.bpfCounters) {
    const read = opts.bpfCounters;
    // Read once per scrape, shared by the two metrics below (collect order is registration order).
    let snapshot: BpfCounters | null = null;
    new Counter({
      name: 'jfe_bpf_steered_total',
      help: 'Connections the BPF program steered to jfe.',
      registers,
      collect() {
        try {
          snapshot = read();
        } catch {
          snapshot = null;
          collectionErrorsTotal.inc({ source: 'bpf' });
          return;
        }
        this.reset();
        this.inc(snapshot.steered);
      },
    });
    new Counter({
      name: 'jfe_bpf_passed_total',
      help: 'Connections the BPF program left to the kernel\'s own lookup, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        if (!snapshot) return;
        this.reset();
        for (const reason of BPF_PASS_REASONS) this.inc({ reason }, snapshot[BPF_PASS_FIELDS[reason]]);
      },
    });
  }

  const collectionErrorsTotal = new Counter({
    name: 'jfe_metrics_collection_errors_total',
    help: 'Scrapes that could not read a source (bpf: the counters map; worker: a worker did not answer in time).',
    labelNames: ['source'],
    registers,
  });

  // Every series of a closed set exists from the start, at 0, so rate() and alerts see them.
  for (const direction of DIRECTIONS) bytesTotal.inc({ direction }, 0);
  for (const reason of HANDSHAKE_FAILURES) handshakeFailuresTotal.inc({ reason }, 0);
  for (const reason of UPSTREAM_FAILURES) upstreamConnectFailuresTotal.inc({ reason }, 0);
  for (const reason of POLICY_REFUSALS) policyRefusalsTotal.inc({ reason }, 0);
  for (const reason of ACME_DEFERRALS) acmeDeferralsTotal.inc({ reason }, 0);
  for (const protocol of UPGRADE_PROTOCOLS) upgradesTotal.inc({ protocol }, 0);
  for (const reason of REFUSAL_REASONS) connectionsRefusedTotal.inc({ reason }, 0);
  for (const reason of EVICTION_REASONS) connectionsEvictedTotal.inc({ reason }, 0);
  for (const source of COLLECTION_SOURCES) collectionErrorsTotal.inc({ source }, 0);

  return {
    registry,
    connectionsTotal,
    upgradesTotal,
    connectionsActive,
    bytesTotal,
    bytesPending,
    handshakeSeconds,
    handshakeFailuresTotal,
    sessionsWithoutDataTotal,
    upstreamConnectFailuresTotal,
    connectionsRefusedTotal,
    connectionsEvictedTotal,
    sourcePortCollisionsTotal,
    certificatesIssuedTotal,
    certificateExpiry,
    policyRefusalsTotal,
    acmeDeferralsTotal,
    collectionErrorsTotal,
    setActiveConnections(fn) {
      active = fn;
    },
    setBytesFlush(fn) {
      flushBytes = fn;
    },
  };
}

// SPDX-License-Identifier: MIT
// One scrape for all processes: the primary asks each worker over its IPC
// channel for its registry as JSON and merges them with its own
// (prom-client's AggregatorRegistry: sums, except where a metric says
// otherwise). A worker that does not answer in time is left out and counted:
// a stuck worker never blocks a scrape.
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import type { JfeMetrics } from './registry';

const REQUEST = 'jfe:metrics-request';
const REPLY = 'jfe:metrics';

export const DEFAULT_WORKER_TIMEOUT_MS = 2000;

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

interface Request {
  type: typeof REQUEST;
  id: number;
}
interface Reply {
  type: typeof REPLY;
  id: number;
  metrics?: MetricsJson;
  error?: string;
}

/** What the primary needs of a worker: node:child_process's ChildProcess fits. */
export interface WorkerChannel {
  connected: boolean;
  send(message: unknown): boolean;
  on(event: 'message', fn: (m: unknown) => void): unknown;
  off(event: 'message', fn: (m: unknown) => void): unknown;
}

/** The worker's side: answers the primary's requests with its registry. */
export function answerMetricsRequests(proc: NodeJS.Process, registry: Registry): void {
  proc.on('message', (m: unknown) => {
    if (typeof m !== 'object' || m === null || (m as Request).type !== REQUEST) return;
    const id = (m as Request).id;
    registry.getMetricsAsJSON().then(
      (metrics) => proc.connected && proc.send?.({ type: REPLY, id, metrics } satisfies Reply),
      (err: unknown) => proc.connected && proc.send?.({ type: REPLY, id, error: String(err) } satisfies Reply),
    );
  });
}

let nextId = 1;

/** One worker's metrics, or null when it did not answer within timeoutMs. */
export function requestWorkerMetrics(w: WorkerChannel, timeoutMs: number): Promise<MetricsJson | null> {
  if (!w.connected) return Promise.resolve(null);
  const id = nextId++;
  return new Promise((resolve) => {
    const done = (v: MetricsJson | null): void => {
      clearTimeout(timer);
      w.off('message', onMessage);
      resolve(v);
    };
    const onMessage = (m: unknown): void => {
      const r = m as Reply;
      if (typeof m !== 'object' || m === null || r.type !== REPLY || r.id !== id) return;
      done(Array.isArray(r.metrics) ? r.metrics : null);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    w.on('message', onMessage);
    try {
      w.send({ type: REQUEST, id } satisfies Request);
    } catch {
      done(null); // the channel closed between the check and the send
    }
  });
}

/** Merges registries' JSON (the first one's 'first'-aggregated values win) into one registry. */
export function aggregateMetrics(parts: MetricsJson[]): Registry {
  return AggregatorRegistry.aggregate(parts);
}

export interface Scrape {
  contentType: string;
  body: string;
}

/** Counters and histograms only: what may be carried over from a worker that is gone. */
function monotonic(json: MetricsJson): MetricsJson {
  return json.filter((m) => String(m.type) === 'counter' || String(m.type) === 'histogram');
}

/**
 * The primary's scrapes. Merged counters must not go down when a worker
 * restarts (Prometheus would read a counter reset): the last counters of a
 * worker that is gone are kept, summed into one "retired" set; a worker that
 * does not answer in time counts with its last answer. Only the increments
 * between a worker's last scrape and its death are lost.
 */
export class PrimaryScraper {
  private readonly last = new Map<WorkerChannel, MetricsJson>();
  private retired: MetricsJson = [];

  constructor(
    private readonly primary: JfeMetrics,
    private readonly timeoutMs = DEFAULT_WORKER_TIMEOUT_MS,
  ) {}

  /** Workers first (their timeouts are counted in this very scrape), then the primary itself. */
  async scrape(workers: Iterable<WorkerChannel>): Promise<Scrape> {
    const list = [...workers];
    const answers = await Promise.all(list.map((w) => requestWorkerMetrics(w, this.timeoutMs)));
    const missing = answers.filter((a) => a === null).length;
    if (missing > 0) this.primary.collectionErrorsTotal.inc({ source: 'worker' }, missing);
    const gone = [...this.last.keys()].filter((w) => !list.includes(w));
    if (gone.length > 0) {
      const parts = gone.map((w) => monotonic(this.last.get(w) ?? []));
      for (const w of gone) this.last.delete(w);
      this.retired = await aggregateMetrics([this.retired, ...parts]).getMetricsAsJSON();
    }
    const current = list.flatMap((w, i) => {
      const a = answers[i] ?? this.last.get(w) ?? null;
      if (answers[i]) this.last.set(w, answers[i] as MetricsJson);
      return a === null ? [] : [a];
    });
    const own = await this.primary.registry.getMetricsAsJSON();
    const merged = aggregateMetrics([own, ...current, this.retired]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }
}

/** One scrape with no memory of earlier ones (tests, one-off reads). */
export function scrapeAll(primary: JfeMetrics, workers: Iterable<WorkerChannel>, timeoutMs = DEFAULT_WORKER_TIMEOUT_MS): Promise<Scrape> {
  return new PrimaryScraper(primary, timeoutMs).scrape(workers);
}

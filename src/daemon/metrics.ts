// SPDX-License-Identifier: MIT
// Wires metrics/ into `jfe run`: the primary serves /metrics and /healthz
// (its own registry with the BPF counters, merged with every worker's), and
// each worker counts its connections and certificates and answers the
// primary's requests for them.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AgentEvents } from '../agent/agent';
import type { SteeringMaps } from '../bpf/maps';
import { netnsPinDir, pinPath } from '../bpf/pins';
import type { CertEvents } from '../certs/cert-events';
import type { ListenAddress } from '../config/listen-address';
import { isJfeError } from '../errors';
import type { Logger } from '../log';
import { certEvents, connectionEvents } from '../metrics/events';
import { type JfeMetrics, createMetrics } from '../metrics/registry';
import { type Health, JFE_AGENT_HEADER, type MetricsServer, startMetricsServer } from '../metrics/server';
import { PrimaryScraper, type WorkerChannel, answerMetricsRequests } from '../metrics/workers';

/** 250 ms apart: 30 s for the previous agent to begin its drain. */
const TAKEOVER_LISTEN_TRIES = 120;

function readVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === '::1' || host === 'localhost';
}

/**
 * The exclude-ports spec with the metrics port added when it is reachable
 * from outside: jfe's own endpoint is not steered, so scrapes are not counted
 * as traffic and reach /metrics even when no worker is up.
 */
export function excludeMetricsPort(excludePorts: string, listen: ListenAddress | null): string {
  if (listen === null || isLoopback(listen.host)) return excludePorts;
  return excludePorts.trim() === '' ? String(listen.port) : `${excludePorts},${listen.port}`;
}

export interface SteeringState {
  maps: SteeringMaps;
  pinDir: string;
  netnsIno: number;
  /** Worker slots in use. */
  slots: number;
  workers(): Iterable<WorkerChannel>;
}

export interface PrimaryMetrics {
  /** For what the primary does with certificates (ACME orders, the name policy). */
  readonly certEvents: CertEvents;
  /** Called once the steering is attached and the workers are starting. */
  connect(state: SteeringState): void;
  close(): Promise<void>;
}

/** /healthz: steering attached (its link pin is live) and at least one worker registered in the sockmap. */
function health(state: SteeringState | null): Health {
  if (state === null) return { ok: false, reason: 'starting: steering not attached yet' };
  if (!fs.existsSync(pinPath(netnsPinDir(state.pinDir, state.netnsIno), 'link'))) return { ok: false, reason: 'steering not attached (detached?)' };
  let registered = 0;
  for (let slot = 0; slot < state.slots; slot++) if (state.maps.socketCookie(4, slot) !== null) registered++;
  if (registered === 0) return { ok: false, reason: `no worker registered (0 of ${state.slots})` };
  return { ok: true, reason: `ok: ${registered} of ${state.slots} workers registered` };
}

/** Whether the process listening on `listen` is a jfe primary (its /healthz carries our header). */
function heldByJfe(listen: ListenAddress): Promise<boolean> {
  const host = listen.host === '' || listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return new Promise((resolve) => {
    const req = http.get({ host, port: listen.port, path: '/healthz', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.headers[JFE_AGENT_HEADER] !== undefined);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/**
 * Starts the primary's endpoint, before anything is touched: an address in
 * use throws (JFE_ERR_METRICS_LISTEN). With "off", nothing listens.
 */
export async function startPrimaryMetrics(listen: ListenAddress | null, log: Logger, opts: { waitForPrevious?: boolean } = {}): Promise<PrimaryMetrics> {
  let state: SteeringState | null = null;
  const metrics = createMetrics({
    version: readVersion(),
    bpfCounters: () => {
      if (state === null) throw new Error('steering not open yet');
      return state.maps.counters();
    },
  });
  const scraper = new PrimaryScraper(metrics);
  const deps = { scrape: () => scraper.scrape(state?.workers() ?? []), health: () => health(state), log };
  let server: MetricsServer | null = null;
  let closed = false;
  if (listen !== null) {
    try {
      server = await startMetricsServer(listen, deps);
    } catch (err) {
      if (!isJfeError(err, 'JFE_ERR_METRICS_LISTEN')) throw err;
      // No agent record yet, but another jfe may be starting right now (two
      // starts at once queue on the takeover lock): its /healthz says so.
      if (!opts.waitForPrevious && !(await heldByJfe(listen))) throw err;
      // A takeover: the running agent frees the address when it starts to drain.
      log.info({}, 'metrics address held by the running agent; taking it over when it drains');
      void (async () => {
        for (let i = 0; i < TAKEOVER_LISTEN_TRIES && !closed; i++) {
          await new Promise((r) => setTimeout(r, 250).unref());
          try {
            server = await startMetricsServer(listen, deps);
            if (closed) await server.close();
            return;
          } catch {
            // still held
          }
        }
        if (!closed) log.error({ err }, 'metrics address still in use after the takeover; no /metrics');
      })();
    }
  }
  return {
    certEvents: certEvents(metrics),
    connect(s) {
      state = s;
    },
    close: async () => {
      closed = true;
      await server?.close();
    },
  };
}

export interface WorkerMetrics {
  readonly metrics: JfeMetrics;
  readonly agentEvents: AgentEvents;
  readonly certEvents: CertEvents;
  /** Once the agent exists: its live connection count, and answers to the primary. */
  serve(activeConnections: () => number, flushBytes?: () => void): void;
}

export function startWorkerMetrics(log: Logger): WorkerMetrics {
  const metrics = createMetrics({ version: readVersion() });
  return {
    metrics,
    agentEvents: connectionEvents(metrics, log),
    certEvents: certEvents(metrics),
    serve(activeConnections, flushBytes) {
      metrics.setActiveConnections(activeConnections);
      if (flushBytes) metrics.setBytesFlush(flushBytes);
      answerMetricsRequests(process, metrics.registry);
    },
  };
}

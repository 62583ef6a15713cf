// SPDX-License-Identifier: MIT
// The primary's HTTP endpoint: GET /metrics (Prometheus text format, all
// processes in one scrape) and GET /healthz (200 "ok", or 503 and why).
import http from 'node:http';
import net from 'node:net';
import { JfeError } from '../errors';
import type { Logger } from '../log';
import type { Scrape } from './workers';

/** On /healthz answers: the pid of the jfe primary that serves them. */
export const JFE_AGENT_HEADER = 'x-jfe-agent';

export interface Health {
  ok: boolean;
  /** One short line: "ok", or what is wrong. */
  reason: string;
}

export interface MetricsServerDeps {
  scrape(): Promise<Scrape>;
  health(): Health;
  log: Logger;
}

export interface MetricsServer {
  /** host:port actually bound (the port is real when 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

function hostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Listens, or throws JFE_ERR_METRICS_LISTEN with what to do (an address in
 * use is a configuration error: jfe stops before touching anything).
 */
export async function startMetricsServer(listen: { host: string; port: number }, deps: MetricsServerDeps): Promise<MetricsServer> {
  const log = deps.log.child({ component: 'metrics' });
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (url === '/metrics') {
      deps.scrape().then(
        (s) => res.writeHead(200, { 'content-type': s.contentType }).end(req.method === 'HEAD' ? undefined : s.body),
        (err: unknown) => {
          log.warn({ err }, 'metrics scrape failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
        },
      );
      return;
    }
    if (url === '/healthz') {
      const h = deps.health();
      // The header tells a starting jfe that the address is held by another jfe (a takeover).
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'text/plain', [JFE_AGENT_HEADER]: String(process.pid) }).end(`${h.reason}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  });
  server.on('clientError', (_err, sock) => sock.destroy());
  // A slow or stuck scraper must not hold sockets forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  const where = hostPort(listen.host, listen.port);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const hint =
        err.code === 'EADDRINUSE' ? 'the address is already in use; stop what uses it, or choose another with --metrics-listen (or "off")'
        : err.code === 'EADDRNOTAVAIL' ? 'no interface has this address; choose another with --metrics-listen (or "off")'
        : err.code === 'EACCES' ? 'permission denied'
        : err.message;
      reject(new JfeError('JFE_ERR_METRICS_LISTEN', `cannot serve metrics on ${where}: ${hint}`, { cause: err }));
    });
    server.listen({ host: listen.host, port: listen.port, exclusive: true }, resolve);
  });
  server.on('error', (err) => log.error({ err }, 'metrics server error'));
  // Never what keeps the process alive: a startup that fails after this point
  // (attach, state dir) must still exit.
  server.unref();
  const bound = server.address() as net.AddressInfo;
  const address = hostPort(bound.address, bound.port);
  log.info({ address }, 'metrics listening');
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// SPDX-License-Identifier: MIT
// A bounded HTTP load generator, run as its own process inside a client
// namespace (`ip netns exec … node load-gen.js '<json>'`): loops of sequential
// GETs over HTTPS and HTTP, keep-alive and one-connection-per-request, until
// SIGTERM or maxMs, then prints a JSON summary of every outcome on stdout.
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';

export interface LoadConfig {
  host: string;
  port: number;
  ca: string;
  /** Loops per kind (https-keepalive, https-new, http-keepalive, http-new). */
  loopsPerKind: number;
  maxMs: number;
  maxRequests: number;
  expectBody: string;
}

export interface LoadResult {
  ok: number;
  failed: number;
  failures: string[];
  /** Times (ms since start) of each successful HTTPS request: TLS kept working throughout. */
  tlsOkAt: number[];
  byKind: Record<string, { ok: number; failed: number }>;
  durationMs: number;
}

const KINDS = ['https-keepalive', 'https-new', 'http-keepalive', 'http-new'] as const;

async function main(cfg: LoadConfig): Promise<LoadResult> {
  const ca = fs.readFileSync(cfg.ca, 'utf8');
  const start = Date.now();
  process.stdout.write('started\n');
  let stop = false;
  process.on('SIGTERM', () => (stop = true));
  const result: LoadResult = { ok: 0, failed: 0, failures: [], tlsOkAt: [], byKind: {}, durationMs: 0 };
  for (const k of KINDS) result.byKind[k] = { ok: 0, failed: 0 };
  const httpsKeep = new https.Agent({ keepAlive: true, ca, maxSockets: cfg.loopsPerKind });
  const httpKeep = new http.Agent({ keepAlive: true, maxSockets: cfg.loopsPerKind });
  let issued = 0;
  const one = (kind: (typeof KINDS)[number]): Promise<void> =>
    new Promise((resolve) => {
      const tls = kind.startsWith('https');
      const agent = kind === 'https-keepalive' ? httpsKeep : kind === 'http-keepalive' ? httpKeep : false;
      const mod = tls ? https : http;
      const fail = (why: string): void => {
        result.failed++;
        result.byKind[kind]!.failed++;
        if (result.failures.length < 20) result.failures.push(`${kind} at ${Date.now() - start} ms: ${why}`);
        resolve();
      };
      const req = mod.get({ host: cfg.host, port: cfg.port, path: '/', agent, ca, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => {
          if (res.statusCode !== 200 || body !== cfg.expectBody) return fail(`status ${res.statusCode} body ${JSON.stringify(body.slice(0, 80))}`);
          result.ok++;
          result.byKind[kind]!.ok++;
          if (tls) result.tlsOkAt.push(Date.now() - start);
          resolve();
        });
        res.on('error', (err) => fail(err.message));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => fail(`${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`));
    });
  const loop = async (kind: (typeof KINDS)[number]): Promise<void> => {
    while (!stop && Date.now() - start < cfg.maxMs && issued < cfg.maxRequests) {
      issued++;
      await one(kind);
    }
  };
  await Promise.all(KINDS.flatMap((k) => Array.from({ length: cfg.loopsPerKind }, () => loop(k))));
  httpsKeep.destroy();
  httpKeep.destroy();
  result.durationMs = Date.now() - start;
  return result;
}

if (require.main === module) {
  void main(JSON.parse(process.argv[2] ?? '{}') as LoadConfig).then((r) => {
    // Exit once written: a pipe's write is asynchronous, and exit() cut a long summary short.
    process.stdout.write(JSON.stringify(r) + '\n', () => process.exit(0));
  });
}

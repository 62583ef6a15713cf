// SPDX-License-Identifier: MIT
// Loopback throughput of relay() against socket.pipe() and stream.pipeline(), and a
// direct connection as the ceiling. The proxy runs alone in this process; the client
// and the service run in a child process, so only the proxy's work is on this thread.
//   node dist/bench/relay-micro.js [MiB per direction, default 1024] [rounds, default 5]
//
// Measured 2026-11 (Node 20.20.2, 2 vCPUs shared with other builds, load ≈ 4; 512 MiB,
// 7 interleaved rounds; MiB/s per direction, median (min–max)):
//   one way    direct 1264 (1056–1420)  relay 682 (341–711)  pipe 549 (293–671)
//              pipeline 477 (292–719)   relay+tls 233 (164–360)
//   both ways  direct 465 (192–757)     relay 343 (205–390)  pipe 311 (224–562)
//              pipeline 342 (264–517)   relay+tls 183 (114–231)
// relay, pipe and pipeline do the same per-chunk work (a 'data' listener, write(),
// pause on false, resume on 'drain'), and their spreads overlap: the cost is Node's
// stream machinery and two syscalls per chunk, not the JS choice. relay keeps its own
// listener because it is as fast and gets resets and counting right: after an upstream
// reset, pipe() leaves the client connection open, and pipeline() closes it with a FIN
// (the client reads a clean EOF), where relay() resets it. TLS termination, not the
// relay, bounds the TLS path.
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import tls from 'node:tls';
import { relay } from '../src/agent/relay';

const HOST = '127.0.0.1';
const CHUNK = 64 * 1024;

type Mode = 'up' | 'both'; // client→service only, or both directions at once

interface Job {
  port: number; // where the client connects: the proxy, or the service for 'direct'
  tls: boolean;
  ca?: string;
  bytes: number;
  mode: Mode;
}

// ---- child: the client and the service ----

function sendN(s: net.Socket, n: number): void {
  const buf = Buffer.alloc(CHUNK, 0x61);
  let left = n;
  const pump = (): void => {
    while (left > 0) {
      const len = Math.min(CHUNK, left);
      left -= len;
      if (!s.write(len === CHUNK ? buf : buf.subarray(0, len))) {
        s.once('drain', pump);
        return;
      }
    }
    s.end();
  };
  pump();
}

function countToEnd(s: net.Socket): Promise<number> {
  let n = 0;
  s.on('data', (c: Buffer) => (n += c.length));
  return new Promise((resolve) => s.once('end', () => resolve(n)));
}

async function child(): Promise<void> {
  let job: Job | null = null;
  let serviceDone: ((n: number) => void) | null = null;
  const service = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    const done = serviceDone;
    void countToEnd(s).then((n) => done?.(n));
    if (job?.mode === 'both') sendN(s, job.bytes);
    else s.end();
  });
  service.listen(0, HOST);
  await once(service, 'listening');
  process.send?.({ servicePort: (service.address() as net.AddressInfo).port });
  process.on('message', (m: Job) => {
    job = m;
    const atService = new Promise<number>((resolve) => (serviceDone = resolve));
    const t0 = process.hrtime.bigint();
    const raw = net.connect({ host: HOST, port: m.port, allowHalfOpen: true });
    const s = m.tls ? tls.connect({ socket: raw, ca: m.ca, servername: 'localhost' }) : raw;
    s.on('error', (err) => process.send?.({ error: String(err) }));
    s.once(m.tls ? 'secureConnect' : 'connect', () => {
      const atClient = countToEnd(s);
      sendN(s, m.bytes);
      // Done when both ends have read everything up to EOF.
      void Promise.all([atClient, atService]).then(([c, u]) => {
        const ns = Number(process.hrtime.bigint() - t0);
        if (c !== (m.mode === 'both' ? m.bytes : 0) || u !== m.bytes) {
          process.send?.({ error: `client got ${c}, service got ${u}` });
        }
        process.send?.({ ns });
        s.destroy();
      });
    });
  });
}

// ---- parent: the proxy ----

type Variant = 'direct' | 'relay' | 'pipe' | 'pipeline' | 'relay+tls';

async function main(): Promise<void> {
  const mib = Number(process.argv[2] ?? 1024);
  const rounds = Number(process.argv[3] ?? 5);
  const bytes = mib * 1024 * 1024;

  const dir = mkdtempSync(join(tmpdir(), 'jfe-bench-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'pipe' });
  const ca = readFileSync(join(dir, 'c.pem'), 'utf8');
  const secureContext = tls.createSecureContext({ cert: ca, key: readFileSync(join(dir, 'k.pem'), 'utf8') });
  rmSync(dir, { recursive: true, force: true });

  const kid: ChildProcess = fork(__filename, ['--child'], { stdio: 'inherit' });
  const [hello] = (await once(kid, 'message')) as [{ servicePort: number }];
  const servicePort = hello.servicePort;
  kid.on('message', (m: { error?: string }) => {
    if (m.error !== undefined) {
      console.error('bench error:', m.error);
      process.exitCode = 1;
    }
  });

  let variant: Variant = 'relay';
  const proxy = net.createServer({ allowHalfOpen: true }, (raw) => {
    raw.on('error', () => undefined);
    const client = variant === 'relay+tls' ? new tls.TLSSocket(raw, { isServer: true, secureContext }) : raw;
    const start = (): void => {
      const upstream = net.connect({ host: HOST, port: servicePort, allowHalfOpen: true });
      upstream.once('connect', () => {
        if (variant === 'relay' || variant === 'relay+tls') {
          void relay(client, upstream, { idleTimeoutMs: 60_000, onBytes: () => undefined });
        } else if (variant === 'pipe') {
          client.on('error', () => upstream.destroy());
          upstream.on('error', () => client.destroy());
          client.pipe(upstream);
          upstream.pipe(client);
        } else {
          pipeline(client, upstream, () => undefined);
          pipeline(upstream, client, () => undefined);
        }
      });
    };
    if (client !== raw) client.once('secure', start);
    else start();
  });
  proxy.listen(0, HOST);
  await once(proxy, 'listening');
  const proxyPort = (proxy.address() as net.AddressInfo).port;

  const run = async (v: Variant, mode: Mode): Promise<number> => {
    variant = v;
    const job: Job = { port: v === 'direct' ? servicePort : proxyPort, tls: v === 'relay+tls', ca, bytes, mode };
    kid.send(job);
    for (;;) {
      const [m] = (await once(kid, 'message')) as [{ ns?: number }];
      if (m.ns !== undefined) return m.ns;
    }
  };

  // Rounds interleave the variants, so a noisy neighbour slows them all alike.
  const variants: Variant[] = ['direct', 'relay', 'pipe', 'pipeline', 'relay+tls'];
  console.log(`node ${process.version}, ${mib} MiB per direction, ${rounds} interleaved rounds; MiB/s per direction: median (min–max)`);
  for (const mode of ['up', 'both'] as Mode[]) {
    const rates = new Map<Variant, number[]>(variants.map((v) => [v, []]));
    for (const v of variants) await run(v, mode); // warm-up
    for (let i = 0; i < rounds; i++) {
      for (const v of variants) rates.get(v)?.push(mib / ((await run(v, mode)) / 1e9));
    }
    for (const v of variants) {
      const r = (rates.get(v) ?? []).sort((a, b) => a - b);
      const f = (x: number | undefined): string => (x ?? 0).toFixed(0);
      console.log(`${mode === 'up' ? 'one way  ' : 'both ways'}  ${v.padEnd(9)}  ${f(r[Math.floor(r.length / 2)]).padStart(5)}  (${f(r[0])}–${f(r[r.length - 1])})`);
    }
  }
  kid.kill();
  proxy.close();
}

if (process.argv.includes('--child')) void child();
else void main();

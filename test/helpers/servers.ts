// SPDX-License-Identifier: MIT
// Real servers from Debian packages, run inside a world's server namespace
// with their files in the world's temp dir: nginx and redis-server; and a
// banner service (server speaks first) for what has no package here.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { native } from '../../src/native';
import type { World, Ns } from './netns';
import type { TestPki } from './pki';

export interface Daemon {
  proc: ChildProcess;
  /** What it printed: its stderr, and its stdout too when spawned with `stdout: true`. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Spawns argv inside ns, with `env` added to this process's environment; the
 * cleanup stops it (SIGTERM, then SIGKILL).
 */
export function spawnIn(w: World, ns: Ns, argv: string[], what: string, opts: { env?: NodeJS.ProcessEnv; stdout?: boolean } = {}): Daemon {
  const proc = spawn('ip', ['netns', 'exec', ns.name, ...argv], {
    stdio: ['ignore', opts.stdout ? 'pipe' : 'ignore', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  let output = '';
  const keep = (d: string): void => {
    output += d;
  };
  proc.stdout?.setEncoding('utf8').on('data', keep);
  proc.stderr?.setEncoding('utf8').on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      // A test may have paused it with SIGSTOP, and a stopped process acts on SIGTERM only once continued.
      proc.kill('SIGCONT');
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    })();
    return stopping;
  };
  w.cleanup.add(`stop ${what}`, stop);
  proc.once('exit', (code) => {
    if (!stopping && code !== 0) process.stderr.write(`${what} exited with ${code}: ${output}\n`);
  });
  return { proc, output: () => output, stop };
}

/**
 * Small services written as one node script, run in the server namespace as `name`: the
 * script gets the path of a log file (empty at first) as its last argument, for what the
 * test must learn of the services' side. Resolves once every port in `ports` listens.
 */
export async function startNodeServices(w: World, name: string, script: string, ports: number[]): Promise<{ daemon: Daemon; logFile: string }> {
  const file = path.join(w.tmp, `${name}.js`);
  const logFile = path.join(w.tmp, `${name}.log`);
  fs.writeFileSync(file, script);
  fs.writeFileSync(logFile, '');
  const daemon = spawnIn(w, w.srv, [process.execPath, file, logFile], name);
  for (const port of ports) await waitForPort(w, w.srv4, port);
  return { daemon, logFile };
}

/** Resolves once something accepts connections on host:port, connecting from ns. */
export async function waitForPortIn(ns: Ns, host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const family = net.isIPv6(host) ? 6 : 4;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = new net.Socket({ fd: native().tcpSocket(family, ns.fd), readable: true, writable: true });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
      s.connect(port, host);
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** waitForPortIn from the world's server namespace. */
export function waitForPort(w: World, host: string, port: number, timeoutMs = 10_000): Promise<void> {
  return waitForPortIn(w.srv, host, port, timeoutMs);
}

/**
 * nginx in the server namespace with its files in `dir` (made by the caller), as
 * root, in the foreground, logging requests to dir/access.log as "$remote_addr
 * $server_port "$request" $status"; `http` goes inside its http {} (the server blocks).
 */
export function spawnNginx(w: World, dir: string, http: string): Daemon & { accessLog: string } {
  const accessLog = path.join(dir, 'access.log');
  const conf = `
user root;
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  log_format jfe '$remote_addr $server_port "$request" $status';
  access_log ${accessLog} jfe;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  ${http}
}`;
  const confFile = path.join(dir, 'nginx.conf');
  fs.writeFileSync(confFile, conf);
  return { ...spawnIn(w, w.srv, ['nginx', '-c', confFile, '-p', dir], 'nginx'), accessLog };
}

/** nginx answering "nginx-plain" in plaintext on `ports` (80 and 443: the ports ACME validates on). */
export async function startPlainNginx(w: World, ports: number[]): Promise<Daemon & { accessLog: string }> {
  const dir = path.join(w.tmp, `nginx-${ports.join('-')}`);
  fs.mkdirSync(dir, { recursive: true });
  const d = spawnNginx(w, dir, `server { ${ports.map((p) => `listen ${p};`).join(' ')} location / { return 200 "nginx-plain\\n"; } }`);
  for (const port of ports) await waitForPort(w, w.srv4, port);
  return d;
}

export interface Nginx extends Daemon {
  accessLog: string;
  /** A file of `bigBytes` random bytes served at /big. */
  bigFile: string;
}

/**
 * nginx with: plaintext on 8080 (both families) answering "nginx-plain" and
 * logging the client address; its own TLS on 8443 when a PKI is given;
 * 127.0.0.1:8081 only ("local-only").
 */
export async function startNginx(w: World, opts: { tls?: TestPki; bigBytes?: number } = {}): Promise<Nginx> {
  const dir = path.join(w.tmp, 'nginx');
  fs.mkdirSync(dir, { recursive: true });
  const bigFile = path.join(dir, 'big.bin');
  if (opts.bigBytes) fs.writeFileSync(bigFile, Buffer.alloc(opts.bigBytes, 0).map(() => Math.floor(Math.random() * 256)));
  const tlsServer = opts.tls
    ? `server { listen 8443 ssl; listen [::]:8443 ssl; ssl_certificate ${opts.tls.cert}; ssl_certificate_key ${opts.tls.key}; location / { return 200 "nginx-tls\\n"; } }`
    : '';
  const d = spawnNginx(
    w,
    dir,
    `keepalive_requests 100000;
  server {
    listen 8080; listen [::]:8080;
    location = / { return 200 "nginx-plain\\n"; }
    location = /big { alias ${bigFile}; }
    location = /upload { client_max_body_size 0; client_body_buffer_size 1m; return 200 "uploaded\\n"; }
  }
  server { listen 127.0.0.1:8081; location / { return 200 "local-only\\n"; } }
  ${tlsServer}`,
  );
  await waitForPort(w, w.srv4, 8080);
  if (opts.tls) await waitForPort(w, w.srv4, 8443);
  return { ...d, bigFile };
}

export async function startRedis(w: World, port = 6379): Promise<Daemon> {
  const dir = path.join(w.tmp, `redis-${port}`);
  fs.mkdirSync(dir, { recursive: true });
  const d = spawnIn(
    w,
    w.srv,
    ['redis-server', '--port', String(port), '--bind', '0.0.0.0', '::', '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'],
    'redis',
  );
  await waitForPort(w, w.srv4, port);
  return d;
}

/** A server that speaks first: writes `banner\n`, then echoes what it gets. */
export async function startBanner(w: World, port: number, banner: string): Promise<Daemon> {
  const script = `require('net').createServer({allowHalfOpen:true},(s)=>{s.on('error',()=>{});s.write(${JSON.stringify(banner + '\n')});s.pipe(s);}).listen(${port},'::')`;
  const d = spawnIn(w, w.srv, [process.execPath, '-e', script], 'banner');
  await waitForPort(w, w.srv4, port);
  return d;
}

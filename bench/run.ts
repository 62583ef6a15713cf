// SPDX-License-Identifier: MIT
// End-to-end benchmark, as root: the same nginx reached directly, through
// HAProxy (mode tcp) and through jfe, over TLS and plaintext, measured with wrk
// from a client network namespace. Prints one Markdown report (and writes it to
// bench/results/latest.md):
//   - new connections/s (one request per connection),
//   - keep-alive requests/s with p50/p99 latency,
//   - bulk MB/s on 1 and on 8 connections,
//   - the proxy's own CPU time (utime+stime of all its processes) per request,
//     per handshake and per GB.
//
//   npx tsc -p . && npm run bench [-- --workers 2 --duration 5 --warmup 1 --big-mb 256 --out FILE]
//
// It builds its namespaces with the integration tests' helpers and removes
// everything at the end, on error and on SIGINT/SIGTERM.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { parseArgs } from 'node:util';
import { type RunningJfe, startJfe } from '../test/helpers/jfe';
import { createWorld, type World } from '../test/helpers/netns';
import { type Daemon, type Nginx, spawnIn, startNginx, waitForPort } from '../test/helpers/servers';
import { BIN, REPO_ROOT, run, runSync } from '../test/helpers/spawn';

// ---- options ----

/** plaintext-idle is not a wrk run: it holds --idle-conns connections open and weighs the proxy. */
const IDLE_RUN = 'plaintext-idle';
const ALL_RUNS = ['TLS-new', 'TLS-ka', 'TLS-bulk1', 'TLS-bulk8', 'plaintext-new', 'plaintext-ka', 'plaintext-bulk1', 'plaintext-bulk8', IDLE_RUN];

const { values: opt } = parseArgs({
  options: {
    workers: { type: 'string', default: '2' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'big-mb': { type: 'string', default: '256' },
    out: { type: 'string', default: path.join(REPO_ROOT, 'bench', 'results', 'latest.md') },
    'jfe-log': { type: 'string' },
    targets: { type: 'string', default: 'direct,haproxy,jfe' },
    runs: { type: 'string' },
    'idle-conns': { type: 'string', default: '10000' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(`usage: node dist/bench/run.js [--workers N=2] [--duration S=5] [--warmup S=1] [--big-mb MB=256] [--idle-conns N=10000] [--out FILE] [--jfe-log FILE]\n       [--targets direct,haproxy,jfe] [--runs ${ALL_RUNS.join(',')}]\n`);
  process.exit(0);
}
const WORKERS = positiveInt('workers', opt.workers);
const DURATION = positiveInt('duration', opt.duration);
const WARMUP = Number(opt.warmup);
const BIG_BYTES = positiveInt('big-mb', opt['big-mb']) * 1024 * 1024;
const OUT = path.resolve(opt.out ?? '');
const TARGETS = new Set((opt.targets ?? '').split(',').filter(Boolean));
const IDLE_CONNS = positiveInt('idle-conns', opt['idle-conns']);
const RUNS = new Set(opt.runs ? opt.runs.split(',') : ALL_RUNS);
for (const x of RUNS) {
  if (!ALL_RUNS.includes(x)) {
    process.stderr.write(`bench: --runs: unknown run ${x}\n`);
    process.exit(2);
  }
}
for (const x of TARGETS) {
  if (!['direct', 'haproxy', 'jfe'].includes(x)) {
    process.stderr.write(`bench: --targets: unknown target ${x}\n`);
    process.exit(2);
  }
}

function positiveInt(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`bench: --${name} must be a positive integer, got ${v}\n`);
    process.exit(2);
  }
  return n;
}

const PORTS = { plain: 8080, nginxTls: 8443, haproxyPlain: 9080, haproxyTls: 9443 };

// plaintext-idle: every process on the path holds IDLE_N connections, a proxy twice as many
// sockets (HAProxy all in one process), more than a 20,000-fd hard limit allows for 10,000:
// the bench raises RLIMIT_NOFILE where it starts each process (prlimit; nginx's
// worker_rlimit_nofile; HAProxy sizes its own limit from maxconn) when it may (as root with
// CAP_SYS_RESOURCE), else holds as many connections as the hard limit leaves room for.
// The same limits hold for every run.
const HARD_NOFILE = ((): number => {
  const v = /^Max open files\s+\S+\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? '1024';
  return v === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(v);
})();
const WANT_FDS = Math.max(65_536, 2 * IDLE_CONNS + 4096);
const CAN_RAISE_NOFILE = WANT_FDS <= HARD_NOFILE || runSync('prlimit', [`--nofile=${WANT_FDS}:${WANT_FDS}`, '--', 'true']).status === 0;
const FD_LIMIT = CAN_RAISE_NOFILE ? WANT_FDS : HARD_NOFILE;
/** The connections plaintext-idle holds: --idle-conns, or fewer when the fd limit leaves no room for two sockets each. */
const IDLE_N = Math.min(IDLE_CONNS, Math.floor((FD_LIMIT - 1000) / 2));
const IDLE_SHORT = IDLE_N < IDLE_CONNS
  ? `${IDLE_N} connections, not the ${IDLE_CONNS} asked for: the hard RLIMIT_NOFILE here is ${HARD_NOFILE} and this bench may not raise it (no CAP_SYS_RESOURCE), while a proxy holds two sockets per connection (HAProxy in one process)`
  : undefined;
// HAProxy refuses to start when it cannot raise its fd limit to 2 × maxconn and a few.
const HAPROXY_MAXCONN = Math.max(8000, IDLE_N + 200);
const NGINX_CONNS = Math.max(4096, IDLE_N + 1000);
/** jfe closes idle connections sooner from 80% of --max-connections (default 20,000): stay well under it. */
const JFE_MAX_CONNS = IDLE_N > 15_000 ? Math.ceil(IDLE_N / 0.75) : undefined;
/**
 * The idle client spreads its connections over several addresses of the client namespace,
 * as real clients come from many: each stays at half jfe's default per-client cap (2000),
 * so jfe runs with its default admission.
 */
const IDLE_PER_SOURCE = 1000;
const IDLE_SOURCES = Array.from({ length: Math.ceil(IDLE_N / IDLE_PER_SOURCE) }, (_, i) => `10.77.0.${101 + i}`);
if (IDLE_SOURCES.length > 150) {
  // They share the veth's /24 with the server (on-link, no routes to add): 10.77.0.101–250.
  process.stderr.write(`bench: --idle-conns: at most ${150 * IDLE_PER_SOURCE}\n`);
  process.exit(2);
}
const IDLE_PARALLEL = 64;
/** The request each idle connection makes once, and the end of nginx's answer to it. */
const IDLE_REQUEST = 'GET / HTTP/1.1\r\nHost: bench\r\n\r\n';
const IDLE_EXPECT = '\r\n\r\nnginx-plain\n';
const CLK_TCK = Number(runSync('getconf', ['CLK_TCK']).stdout.trim()) || 100;

// ---- teardown: the helpers register cleanups through t.after ----

const afters: (() => unknown)[] = [];
const fakeT = { after: (fn: () => unknown) => void afters.push(fn) } as unknown as TestContext;
const children = new Set<ChildProcess>();
let tornDown: Promise<void> | undefined;

function teardown(): Promise<void> {
  tornDown ??= (async () => {
    for (const c of children) c.kill('SIGKILL');
    while (afters.length > 0) {
      const fn = afters.pop();
      try {
        await fn?.();
      } catch (err) {
        process.stderr.write(`bench: cleanup: ${(err as Error).message}\n`);
      }
    }
  })();
  return tornDown;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
    void teardown().finally(() => process.exit(130));
  });
}

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

// ---- processes and their CPU time ----

interface ProcStat {
  ppid: number;
  ticks: number;
}

function readStat(pid: number): ProcStat | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** root and all its descendants. */
function tree(root: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = readStat(Number(e));
    if (!st) continue;
    const list = byParent.get(st.ppid) ?? [];
    list.push(Number(e));
    byParent.set(st.ppid, list);
  }
  const out: number[] = [];
  if (!fs.existsSync(`/proc/${root}`)) return out;
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    out.push(p);
    stack.push(...(byParent.get(p) ?? []));
  }
  return out.sort((a, b) => a - b);
}

interface CpuSample {
  pids: number[];
  ticks: Map<number, number>;
}

function sampleCpu(root: number | undefined): CpuSample | null {
  if (root === undefined) return null;
  const pids = tree(root);
  const ticks = new Map<number, number>();
  for (const p of pids) ticks.set(p, readStat(p)?.ticks ?? 0);
  return { pids, ticks };
}

/** CPU seconds between two samples; processes that ended in between are lost (flagged by the caller). */
function cpuSeconds(a: CpuSample | null, z: CpuSample | null): number | null {
  if (!a || !z) return null;
  let ticks = 0;
  for (const [pid, t] of z.ticks) ticks += t - (a.ticks.get(pid) ?? 0);
  return ticks / CLK_TCK;
}

/** CPU ticks of every user process outside this bench's own process tree (someone else's load). */
function foreignTicks(): Map<number, number> {
  const ours = new Set(tree(process.pid));
  const out = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (ours.has(pid) || pid === 2) continue;
    const st = readStat(pid);
    if (!st || st.ppid === 2) continue; // kernel threads
    out.set(pid, st.ticks);
  }
  return out;
}

function foreignDelta(a: Map<number, number>, z: Map<number, number>): { ticks: number; top: string } {
  let ticks = 0;
  let top = '';
  let topTicks = 0;
  for (const [pid, t] of z) {
    const d = t - (a.get(pid) ?? 0);
    ticks += d;
    if (d > topTicks) {
      topTicks = d;
      let cmd = '?';
      try {
        cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 60);
      } catch {
        /* gone */
      }
      top = `${pid} ${cmd}`;
    }
  }
  return { ticks, top };
}

/** Busy and total jiffies of the whole host (/proc/stat). */
function hostCpu(): { busy: number; total: number } {
  const f = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((x, y) => x + y, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** TCP connections (not listeners) in the server namespace owned by the given processes. */
function heldConnections(w: World, pids: number[]): string[] {
  if (pids.length === 0) return [];
  // TIME_WAIT sockets belong to no process (and there can be tens of thousands).
  const r = spawnSync('ip', ['netns', 'exec', w.srv.name, 'ss', '-tanpH', 'state', 'connected', 'exclude', 'time-wait'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const want = new Set(pids);
  return (r.stdout ?? '')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('LISTEN'))
    .filter((l) => [...l.matchAll(/pid=(\d+)/g)].some((m) => want.has(Number(m[1]))))
    .map((l) => l.replace(/\s+users:.*$/, '').replace(/\s+/g, ' ').trim());
}

// ---- wrk ----

const WRK_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('JFE-BENCH {"duration_us":%.0f,"requests":%.0f,"bytes":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,"p50_us":%.0f,"p99_us":%.0f}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

interface WrkOut {
  duration_us: number;
  requests: number;
  bytes: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p99_us: number;
}

function spawnTracked(cmd: string, args: string[], timeoutMs: number): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', (err) => {
      clearTimeout(timer);
      children.delete(c);
      reject(err);
    });
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(c);
      resolve({ status: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

// ---- plaintext-idle's client ----

/**
 * Opens cfg.n connections (cfg.parallel at a time, round-robin over cfg.sources), sends
 * cfg.request on each and waits for an answer ending in cfg.expect, then holds them idle.
 * Prints `READY {...}` once every connection is held or has failed (or cfg.openMs ran out);
 * on a `close` line on stdin it ends them all and prints `CLOSED {...}` once each has closed
 * both ways (or cfg.closeMs ran out), then exits. cfg.hardMs bounds its whole life.
 */
const IDLE_CLIENT_JS = `'use strict';
const net = require('node:net');
const cfg = JSON.parse(process.argv[2]);
const t0 = Date.now();
const hard = setTimeout(() => { out('ABORT', { why: 'hard deadline' }); process.exit(3); }, cfg.hardMs);
const held = new Set();
const errors = {};
const tenths = [];
let started = 0, inflight = 0, failed = 0, dropped = 0, closing = false, closed = 0, readyAt = 0;
function out(tag, o) { process.stdout.write(tag + ' ' + JSON.stringify(o) + '\\n'); }
function count(e) { const k = e.code || e.message; errors[k] = (errors[k] || 0) + 1; }
function one(i) {
  started++; inflight++;
  let state = 'pending', got = '';
  const s = net.connect({ host: cfg.host, port: cfg.port, localAddress: cfg.sources[i % cfg.sources.length] });
  const timer = setTimeout(() => fail(new Error('no answer within ' + cfg.connMs + ' ms')), cfg.connMs);
  const settle = () => { clearTimeout(timer); inflight--; setImmediate(next); };
  const fail = (e) => { if (state !== 'pending') return; state = 'failed'; count(e); failed++; s.destroy(); settle(); };
  s.setEncoding('latin1');
  s.on('connect', () => s.write(cfg.request));
  s.on('data', (d) => {
    if (state !== 'pending') { count(new Error('data while idle')); return; }
    got += d;
    if (got.endsWith(cfg.expect)) {
      state = 'held'; held.add(s);
      if (held.size * 10 >= (tenths.length + 1) * cfg.n) tenths.push(Date.now() - t0);
      settle();
    }
    else if (got.length > 4096) fail(new Error('unexpected answer: ' + JSON.stringify(got.slice(0, 80))));
  });
  s.on('error', (e) => { if (state === 'pending') fail(e); else count(e); });
  s.on('close', () => {
    if (state === 'pending') fail(new Error('closed before the answer'));
    if (state !== 'held') return;
    state = 'closed';
    held.delete(s);
    if (!closing) dropped++;
    else if (++closed === closingOf) done();
  });
}
function next() {
  while (inflight < cfg.parallel && started < cfg.n && Date.now() - t0 < cfg.openMs) one(started);
  if (inflight === 0 && !readyAt) {
    readyAt = Date.now();
    out('READY', { held: held.size, failed, notStarted: cfg.n - started, dropped, errors, ms: readyAt - t0, tenths });
  }
}
let closingOf = 0, closeT0 = 0, closeTimer;
function done() {
  clearTimeout(closeTimer);
  out('CLOSED', { closed, of: closingOf, droppedWhileIdle: dropped, errors, ms: Date.now() - closeT0 });
  clearTimeout(hard);
  process.exit(0);
}
process.stdin.setEncoding('utf8').on('data', (d) => {
  if (!d.includes('close') || closing) return;
  closing = true; closeT0 = Date.now(); closingOf = held.size;
  closeTimer = setTimeout(done, cfg.closeMs);
  if (closingOf === 0) done();
  for (const s of [...held]) s.end();
});
next();
`;

interface IdleClientReady {
  held: number;
  failed: number;
  notStarted: number;
  dropped: number;
  errors: Record<string, number>;
  ms: number;
  /** ms after the start at which 10%, 20%, … of the connections were held. */
  tenths: number[];
}

interface IdleClientClosed {
  closed: number;
  of: number;
  droppedWhileIdle: number;
  errors: Record<string, number>;
  ms: number;
}

// ---- the scenarios ----

type Kind = 'new' | 'ka' | 'bulk';
type TargetId = 'direct' | 'haproxy' | 'jfe';

interface Scenario {
  id: string;
  tls: boolean;
  kind: Kind;
  conns: number;
  threads: number;
  path: string;
  label: string;
}

const SCENARIOS: Scenario[] = [];
for (const tls of [true, false]) {
  const p = tls ? 'TLS' : 'plaintext';
  SCENARIOS.push(
    { id: `${p}-new`, tls, kind: 'new', conns: 32, threads: 2, path: '/', label: `${p} new connections/s (1 request each, 32 concurrent)` },
    { id: `${p}-ka`, tls, kind: 'ka', conns: 32, threads: 2, path: '/', label: `${p} keep-alive requests/s (32 connections)` },
    { id: `${p}-bulk1`, tls, kind: 'bulk', conns: 1, threads: 1, path: '/big', label: `${p} bulk MB/s, 1 connection` },
    { id: `${p}-bulk8`, tls, kind: 'bulk', conns: 8, threads: 2, path: '/big', label: `${p} bulk MB/s, 8 connections` },
  );
}

interface Target {
  id: TargetId;
  name: string;
  url(tls: boolean): string;
  /** The proxy's root process, for its CPU time (none for direct). */
  proxyPid(): number | undefined;
}

interface Result {
  target: TargetId;
  scenario: Scenario;
  wrk: WrkOut;
  seconds: number;
  proxyCpuS: number | null;
  nginxCpuS: number | null;
  /** CPU used by processes outside the bench, % of one core. */
  foreignPct: number;
  /** Host CPU busy during the run, % of all cores. */
  hostBusyPct: number;
  notes: string[];
  /** Set when the run did not measure what it claims (e.g. jfe had lost its workers: traffic failed open). */
  invalid?: string;
}

function errorsOf(r: Result): number {
  const w = r.wrk;
  return w.connect + w.read + w.write + w.timeout + w.status;
}

function mainValue(r: Result): number {
  return r.scenario.kind === 'bulk' ? r.wrk.bytes / 1e6 / r.seconds : r.wrk.requests / r.seconds;
}

// ---- the world ----

interface Bench {
  w: World;
  nginx: Nginx;
  jfe?: RunningJfe;
  haproxy?: Daemon;
  jfeArgs: string[];
  certDir: string;
  /** jfe's stderr, all of it (the helper keeps its own copy private). */
  jfeStderr: string[];
  /** Log lines of every jfe instance started so far. */
  jfeLogs: Record<string, unknown>[];
}

const inCli = (w: World, argv: string[], timeoutMs = 30_000) => run('ip', ['netns', 'exec', w.cli.name, ...argv], { timeoutMs });

async function curlOk(w: World, args: string[], expect: string, tries = 50): Promise<void> {
  let last = '';
  for (let i = 0; i < tries; i++) {
    const r = await inCli(w, ['curl', '-sS', '--max-time', '10', ...args]);
    if (r.status === 0 && r.stdout === expect) return;
    last = `exit ${r.status}: ${r.stderr.trim()} ${JSON.stringify(r.stdout.slice(0, 200))}`;
    await sleep(200);
  }
  throw new Error(`curl ${args.join(' ')} did not return ${JSON.stringify(expect)}: ${last}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitForFile(file: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * Adds nginx's own TLS server (8443, TLS 1.3, jfe's leaf) to the helper's config, makes room
 * for plaintext-idle's connections (worker_connections, fds, a keep-alive timeout longer than
 * the run holds them) and reloads it.
 */
async function addNginxTls(b: Bench): Promise<void> {
  const dir = path.dirname(b.nginx.accessLog);
  const confFile = path.join(dir, 'nginx.conf');
  let conf = fs.readFileSync(confFile, 'utf8').trimEnd();
  if (!conf.endsWith('}') || !conf.includes('http {')) throw new Error(`unexpected nginx config layout in ${confFile}`);
  for (const [from, to] of [
    [/worker_connections \d+;/, `worker_connections ${NGINX_CONNS};`],
    [/worker_processes 1;/, `worker_processes 1;\nworker_rlimit_nofile ${FD_LIMIT};`],
    [/keepalive_requests 100000;/, 'keepalive_requests 100000; keepalive_timeout 600s;'],
  ] as const) {
    if (!from.test(conf)) throw new Error(`unexpected nginx config layout in ${confFile}: no ${from.source}`);
    conf = conf.replace(from, to);
  }
  const server = `
  server {
    listen ${PORTS.nginxTls} ssl; listen [::]:${PORTS.nginxTls} ssl;
    ssl_certificate ${path.join(b.certDir, 'cert.pem')}; ssl_certificate_key ${path.join(b.certDir, 'key.pem')};
    ssl_protocols TLSv1.3;
    location = / { return 200 "nginx-plain\\n"; }
    location = /big { alias ${b.nginx.bigFile}; }
  }
}
`;
  fs.writeFileSync(confFile, conf.slice(0, -1) + server);
  const pid = b.nginx.proc.pid;
  if (pid === undefined) throw new Error('nginx has no pid');
  process.kill(pid, 'SIGHUP');
  await waitForPort(b.w, b.w.srv4, PORTS.nginxTls);
}

async function startHaproxy(b: Bench): Promise<Daemon> {
  const dir = path.join(b.w.tmp, 'haproxy');
  fs.mkdirSync(dir, { recursive: true });
  const pem = path.join(dir, 'crt.pem');
  fs.writeFileSync(pem, fs.readFileSync(path.join(b.certDir, 'cert.pem'), 'utf8') + fs.readFileSync(path.join(b.certDir, 'key.pem'), 'utf8'), { mode: 0o600 });
  // The backend is nginx on loopback: the same service jfe forwards to. maxconn and the
  // timeouts let plaintext-idle hold its connections (HAProxy raises its own fd limit to
  // fit maxconn); the frontend's maxconn is set too, its default being lower in some versions.
  const cfg = `
global
  nbthread ${WORKERS}
  maxconn ${HAPROXY_MAXCONN}
defaults
  mode tcp
  maxconn ${HAPROXY_MAXCONN}
  timeout connect 5s
  timeout client 10m
  timeout server 10m
frontend tls_in
  bind ${b.w.srv4}:${PORTS.haproxyTls} ssl crt ${pem} ssl-min-ver TLSv1.3
  default_backend nginx
frontend plain_in
  bind ${b.w.srv4}:${PORTS.haproxyPlain}
  default_backend nginx
backend nginx
  server nginx 127.0.0.1:${PORTS.plain}
`;
  const cfgFile = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfgFile, cfg);
  const check = runSync('haproxy', ['-c', '-q', '-f', cfgFile]);
  if (check.status !== 0) throw new Error(`haproxy -c: ${check.stderr}${check.stdout}`);
  const d = spawnIn(b.w, b.w.srv, ['haproxy', '-db', '-f', cfgFile], 'haproxy');
  await waitForPort(b.w, b.w.srv4, PORTS.haproxyPlain);
  await waitForPort(b.w, b.w.srv4, PORTS.haproxyTls);
  return d;
}

async function startBenchJfe(b: Bench): Promise<RunningJfe> {
  const jfe = await startJfe(b.w, b.jfeArgs, {
    workers: WORKERS,
    nodeArgs: process.env.JFE_BENCH_NODE_ARGS ? process.env.JFE_BENCH_NODE_ARGS.split(' ') : [],
    // The workers inherit it.
    wrap: ['prlimit', `--nofile=${FD_LIMIT}:${FD_LIMIT}`, '--'],
  });
  jfe.proc.stderr?.on('data', (d: string) => b.jfeStderr.push(d));
  // Until the listeners map has 8080, connections are not steered.
  await sleep(600);
  return jfe;
}

async function stopJfe(b: Bench): Promise<void> {
  await b.jfe?.stop();
  b.jfeLogs.push(...(b.jfe?.logs ?? []));
  runSync(BIN.jfeBpf, ['detach', ...b.w.steeringArgs]);
  b.jfe = undefined;
}

/** What a TLS client negotiates with a target, and the leaf it gets. */
async function tlsInfo(w: World, port: number): Promise<{ summary: string; fingerprint: string }> {
  const r = await inCli(w, ['sh', '-c', `openssl s_client -connect ${w.srv4}:${port} </dev/null 2>&1`]);
  const out = r.stdout;
  const proto = /New, (TLSv[\d.]+), Cipher is (\S+)/.exec(out);
  const group = /(?:Server Temp Key|Negotiated TLS1\.3 group): ([^\n]+)/.exec(out);
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out);
  let fingerprint = '?';
  if (pem) {
    const c = new X509Certificate(pem[0]);
    fingerprint = `${c.fingerprint256.slice(0, 23)}… (${c.publicKey.asymmetricKeyDetails?.namedCurve ?? c.publicKey.asymmetricKeyType})`;
  }
  const summary = proto ? `${proto[1]} ${proto[2]}${group ? `, ${(group[1] ?? "").trim()}` : ''}` : `no TLS? ${out.slice(0, 200)}`;
  return { summary, fingerprint };
}

// ---- one measurement ----

function jfeLogMark(b: Bench): number {
  return b.jfe?.logs.length ?? 0;
}

async function measure(b: Bench, t: Target, s: Scenario): Promise<Result> {
  const url = t.url(s.tls) + s.path;
  const luaFile = path.join(b.w.tmp, 'bench.lua');
  if (!fs.existsSync(luaFile)) fs.writeFileSync(luaFile, WRK_LUA);
  const args = (seconds: number): string[] => [
    'netns', 'exec', b.w.cli.name, 'wrk', '-t', String(s.threads), '-c', String(s.conns), '-d', `${seconds}s`,
    '--timeout', s.kind === 'bulk' ? '60s' : '5s', '--latency', '-s', luaFile,
    ...(s.kind === 'new' ? ['-H', 'Connection: close'] : []), url,
  ];
  const notes: string[] = [];
  await ensureJfe(b, t, s.id, notes);
  if (WARMUP > 0) await spawnTracked('ip', args(WARMUP), (WARMUP + 90) * 1000);
  await sleep(300);

  const errLog = path.join(path.dirname(b.nginx.accessLog), 'error.log');
  const errLogSize = fs.existsSync(errLog) ? fs.statSync(errLog).size : 0;
  const logMark = jfeLogMark(b);
  const stderrMark = b.jfeStderr.length;
  const nginxPid = b.nginx.proc.pid;
  const f0 = foreignTicks();
  const h0 = hostCpu();
  const p0 = sampleCpu(t.proxyPid());
  const n0 = sampleCpu(nginxPid);
  const r = await spawnTracked('ip', args(DURATION), (DURATION + 90) * 1000);
  const p1 = sampleCpu(t.proxyPid());
  const n1 = sampleCpu(nginxPid);
  const h1 = hostCpu();
  const foreign = foreignDelta(f0, foreignTicks());

  const line = r.stdout.split('\n').find((l) => l.startsWith('JFE-BENCH '));
  if (r.status !== 0 || !line) throw new Error(`wrk ${url} failed (exit ${r.status}): ${r.stderr}${r.stdout}`);
  const wrk = JSON.parse(line.slice('JFE-BENCH '.length)) as WrkOut;
  // wrk has exited and its sockets are closed: the proxy should let go of every connection at once.
  if (p1 && p1.pids.length > 0) {
    await sleep(2000);
    const held = heldConnections(b.w, tree(p1.pids[0] ?? 0));
    if (held.length > 0) notes.push(`⚠ 2 s after wrk exited, ${t.name} still held ${held.length} TCP connection(s): ${held.slice(0, 3).join(' · ')}`);
  }
  const invalid = jfeInvalid(b, t, p1?.pids);
  if (invalid) notes.push(`⚠ ${invalid}`);
  const newStderr = b.jfeStderr.slice(stderrMark).join('');
  if (t.id === 'jfe' && newStderr.trim() !== '') notes.push(`jfe stderr: ${JSON.stringify(newStderr.trim().split('\n').slice(0, 3).join(' ⏎ ').slice(0, 300))}`);
  const samePids = (a: CpuSample | null, z: CpuSample | null): boolean => (a?.pids.join(',') ?? '') === (z?.pids.join(',') ?? '');
  if (!samePids(p0, p1)) notes.push(`proxy processes changed during the run (${p0?.pids.join(',')} → ${p1?.pids.join(',')}): CPU undercounted`);
  if (!samePids(n0, n1)) notes.push('nginx processes changed during the run');
  if (b.jfe && t.id === 'jfe') {
    const lines = b.jfe.logs.slice(logMark).filter((l) => typeof l.level === 'number' && l.level >= 40);
    if (lines.length > 0) {
      const msgs = new Map<string, number>();
      for (const l of lines) msgs.set(String(l.msg), (msgs.get(String(l.msg)) ?? 0) + 1);
      notes.push(`jfe logged ${lines.length} warning/error line(s): ${[...msgs].map(([m, n]) => `"${m}" ×${n}`).join(', ')}`);
    }
  }
  if (fs.existsSync(errLog) && fs.statSync(errLog).size > errLogSize) {
    const fd = fs.openSync(errLog, 'r');
    const buf = Buffer.alloc(Math.min(600, fs.statSync(errLog).size - errLogSize));
    fs.readSync(fd, buf, 0, buf.length, errLogSize);
    fs.closeSync(fd);
    notes.push(`nginx error.log grew: ${JSON.stringify(buf.toString('utf8').split('\n')[0])}`);
  }
  const foreignPct = (foreign.ticks / CLK_TCK / (wrk.duration_us / 1e6)) * 100;
  if (foreignPct >= 10) notes.push(`⚠ other processes used ${foreignPct.toFixed(0)}% of a core during the run (top: ${foreign.top}): result disturbed`);
  const result: Result = {
    target: t.id,
    foreignPct,
    hostBusyPct: h1.total > h0.total ? ((h1.busy - h0.busy) / (h1.total - h0.total)) * 100 : 0,
    scenario: s,
    wrk,
    seconds: wrk.duration_us / 1e6,
    proxyCpuS: cpuSeconds(p0, p1),
    nginxCpuS: cpuSeconds(n0, n1),
    invalid,
    notes,
  };
  const e = errorsOf(result);
  log(
    `${t.id.padEnd(7)} ${s.id.padEnd(15)} ${fmt(mainValue(result)).padStart(9)} ${s.kind === 'bulk' ? 'MB/s' : 'req/s'}` +
      `${result.proxyCpuS !== null ? `  proxy CPU ${result.proxyCpuS.toFixed(2)} s` : ''}  nginx CPU ${result.nginxCpuS?.toFixed(2)} s` +
      `  host busy ${result.hostBusyPct.toFixed(0)}%  others ${result.foreignPct.toFixed(0)}%${e > 0 ? `  ERRORS ${e}` : ''}${notes.length > 0 ? `  [${notes.join('; ')}]` : ''}`,
  );
  return result;
}

// ---- plaintext-idle: the proxy's memory per held connection ----

interface MemSample {
  pids: number[];
  rssKiB: number;
  pssKiB: number;
  fds: number;
}

/** Rss and Pss (from smaps_rollup: one read per process) and open fds of root and its descendants. */
function sampleMem(root: number | undefined): MemSample | null {
  if (root === undefined) return null;
  const pids = tree(root);
  let rssKiB = 0;
  let pssKiB = 0;
  let fds = 0;
  for (const p of pids) {
    try {
      const t = fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      rssKiB += Number(/^Rss:\s+(\d+) kB/m.exec(t)?.[1] ?? 0);
      pssKiB += Number(/^Pss:\s+(\d+) kB/m.exec(t)?.[1] ?? 0);
      fds += fs.readdirSync(`/proc/${p}/fd`).length;
    } catch {
      /* gone */
    }
  }
  return { pids, rssKiB, pssKiB, fds };
}

/**
 * A sample once Rss stops moving (two samples 500 ms apart within 0.2%), at most 10 s:
 * what the connections cost, not the allocations still in flight when the last one opened.
 */
async function settledMem(root: number | undefined): Promise<MemSample | null> {
  let last = sampleMem(root);
  for (let i = 0; i < 20 && last; i++) {
    await sleep(500);
    const m = sampleMem(root);
    if (!m) return last;
    const still = Math.abs(m.rssKiB - last.rssKiB) <= Math.max(64, last.rssKiB * 0.002);
    last = m;
    if (still) break;
  }
  return last;
}

/** The soft RLIMIT_NOFILE of each process of the tree (what it can open). */
function fdLimits(root: number | undefined): number[] {
  if (root === undefined) return [];
  return tree(root).map((p) => {
    try {
      return Number(/^Max open files\s+(\d+)/m.exec(fs.readFileSync(`/proc/${p}/limits`, 'utf8'))?.[1] ?? NaN);
    } catch {
      return NaN;
    }
  });
}

/** The kernel's SNMP counters of a namespace (nstat -a: absolute; -s: leaves nstat's history alone). */
function netstat(ns: string): Map<string, number> {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'nstat', '-azs', '--json'], { encoding: 'utf8' });
  const out = new Map<string, number>();
  try {
    for (const group of Object.values(JSON.parse(r.stdout ?? '{}') as Record<string, Record<string, number>>)) {
      for (const [k, v] of Object.entries(group)) out.set(k, v);
    }
  } catch {
    /* no nstat: the counters stay unknown */
  }
  return out;
}

const counterDelta = (a: Map<string, number>, z: Map<string, number>, k: string): number | undefined =>
  a.has(k) && z.has(k) ? (z.get(k) ?? 0) - (a.get(k) ?? 0) : undefined;

interface IdleResult {
  target: TargetId;
  ready: IdleClientReady;
  closed: IdleClientClosed | null;
  /** Before opening, holding every connection, after closing them (null for direct). */
  proxy: [MemSample, MemSample, MemSample] | null;
  nginx: [MemSample, MemSample, MemSample] | null;
  /** The proxy's fd limit, per process. */
  proxyFdLimits: number[];
  /** The proxy's CPU while the connections opened, s. */
  openCpuS: number | null;
  /**
   * While they opened: client SYNs the server namespace answered with a challenge ACK (their
   * 4-tuple was already an established socket there) and SYNs the client had to send again.
   */
  synChallenges?: number;
  synRetrans?: number;
  /** Seconds from the close until neither the proxy nor nginx held a connection (null: they still did). */
  releasedS: number | null;
  leftAfter: string[];
  foreignPct: number;
  notes: string[];
  invalid?: string;
}

/** Collects a child's stdout lines, and waits for the first that starts with a tag. */
function tagged(c: ChildProcess): { wait<T>(tag: string, timeoutMs: number): Promise<T>; stderr(): string } {
  let buf = '';
  let err = '';
  const lines: string[] = [];
  c.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  c.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  return {
    stderr: () => err,
    async wait<T>(tag: string, timeoutMs: number): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const l = lines.find((x) => x.startsWith(`${tag} `) || x.startsWith('ABORT '));
        if (l?.startsWith('ABORT ')) throw new Error(`idle client: ${l}`);
        if (l) return JSON.parse(l.slice(tag.length + 1)) as T;
        if (c.exitCode !== null || c.signalCode !== null) throw new Error(`idle client exited (${c.exitCode ?? c.signalCode}) before ${tag}: ${err.trim().slice(-500)}`);
        if (Date.now() > deadline) throw new Error(`idle client: no ${tag} within ${timeoutMs} ms`);
        await sleep(100);
      }
    },
  };
}

/** Restarts jfe when it has lost its primary or a worker (traffic would fail open to nginx). */
async function ensureJfe(b: Bench, t: Target, runId: string, notes: string[]): Promise<void> {
  if (t.id !== 'jfe' || !b.jfe || tree(b.jfe.proc.pid ?? 0).length >= 1 + WORKERS) return;
  const left = tree(b.jfe.proc.pid ?? 0).length;
  notes.push(`jfe was down before this run (${left === 0 ? `primary exited with code ${b.jfe.proc.exitCode}` : `${left - 1} of ${WORKERS} workers left`}): restarted it`);
  log(`jfe has lost workers; restarting it before ${runId}`);
  await stopJfe(b);
  b.jfe = await startBenchJfe(b);
}

function jfeInvalid(b: Bench, t: Target, pids: number[] | undefined): string | undefined {
  if (t.id !== 'jfe' || !b.jfe) return undefined;
  if (b.jfe.proc.exitCode !== null || b.jfe.proc.signalCode !== null) {
    return `jfe's primary exited during the run (code ${b.jfe.proc.exitCode}, signal ${b.jfe.proc.signalCode}): connections failed open to nginx`;
  }
  if (pids && pids.length < 1 + WORKERS) return `jfe had ${Math.max(0, pids.length - 1)} of ${WORKERS} workers at the end of the run: connections failed open to nginx`;
  return undefined;
}

/**
 * A fresh proxy, with one request through it. One that served the runs before keeps the heap
 * and pools they grew (jfe's V8 heap grows by ~100 MiB over plaintext-new), and the idle
 * connections would fill that room unseen: measured after plaintext-new, jfe's cost per
 * connection came out at a quarter of a fresh start's, for about the same total.
 */
async function restartProxy(b: Bench, t: Target): Promise<void> {
  if (t.id !== 'direct') log(`${t.id.padEnd(7)} ${IDLE_RUN}: restarting ${t.name} to weigh it from a fresh start`);
  if (t.id === 'haproxy' && b.haproxy) {
    await b.haproxy.stop();
    b.haproxy = await startHaproxy(b);
    await curlOk(b.w, [`http://${b.w.srv4}:${PORTS.haproxyPlain}/`], 'nginx-plain\n');
  } else if (t.id === 'jfe' && b.jfe) {
    await stopJfe(b);
    b.jfe = await startBenchJfe(b);
    await curlOk(b.w, [`http://${b.w.srv4}:${PORTS.plain}/`], 'nginx-plain\n');
  }
}

async function measureIdle(b: Bench, t: Target): Promise<IdleResult> {
  const notes: string[] = [];
  await restartProxy(b, t);
  await ensureJfe(b, t, IDLE_RUN, notes);
  const script = path.join(b.w.tmp, 'idle-client.js');
  fs.writeFileSync(script, IDLE_CLIENT_JS);
  const cfg = {
    host: b.w.srv4,
    port: t.id === 'haproxy' ? PORTS.haproxyPlain : PORTS.plain,
    n: IDLE_N,
    parallel: IDLE_PARALLEL,
    sources: IDLE_SOURCES,
    request: IDLE_REQUEST,
    expect: IDLE_EXPECT,
    connMs: 15_000,
    openMs: 180_000,
    closeMs: 60_000,
    hardMs: 400_000,
  };
  const proxyRoot = t.proxyPid();
  const nginxRoot = b.nginx.proc.pid;
  await sleep(1000);
  const p0 = await settledMem(proxyRoot);
  const n0 = await settledMem(nginxRoot);
  const c0 = sampleCpu(proxyRoot);
  const [srv0, cli0] = [netstat(b.w.srv.name), netstat(b.w.cli.name)];
  const f0 = foreignTicks();
  const t0 = Date.now();
  log(`${t.id.padEnd(7)} ${IDLE_RUN}: opening ${IDLE_N} connections from ${IDLE_SOURCES.length} address(es), ${IDLE_PARALLEL} at a time`);
  const client = spawn('ip', ['netns', 'exec', b.w.cli.name, 'prlimit', `--nofile=${FD_LIMIT}:${FD_LIMIT}`, '--', process.execPath, script, JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(client);
  const exited = new Promise<void>((resolve) => client.once('close', () => resolve()));
  try {
    const io = tagged(client);
    const ready = await io.wait<IdleClientReady>('READY', cfg.openMs + 15_000);
    const c1 = sampleCpu(proxyRoot);
    const [srv1, cli1] = [netstat(b.w.srv.name), netstat(b.w.cli.name)];
    log(
      `${t.id.padEnd(7)} ${IDLE_RUN}: ${ready.held} held, ${ready.failed} failed in ${(ready.ms / 1000).toFixed(1)} s ` +
        `(10%, 20%, … held after ${ready.tenths.map((x) => (x / 1000).toFixed(1)).join(', ')} s); waiting for the memory to settle`,
    );
    const p1 = await settledMem(proxyRoot);
    const n1 = await settledMem(nginxRoot);
    const invalid = jfeInvalid(b, t, p1?.pids);
    client.stdin.write('close\n');
    const closed = await io.wait<IdleClientClosed>('CLOSED', cfg.closeMs + 15_000);
    // The client saw each close; the proxy and nginx must have let go of every socket too.
    const pidsToWatch = (): number[] => [...(proxyRoot !== undefined ? tree(proxyRoot) : []), ...(nginxRoot !== undefined ? tree(nginxRoot) : [])];
    const closeStart = Date.now() - closed.ms;
    let leftAfter = heldConnections(b.w, pidsToWatch());
    while (leftAfter.length > 0 && Date.now() - closeStart < closed.ms + 30_000) {
      await sleep(500);
      leftAfter = heldConnections(b.w, pidsToWatch());
    }
    const releasedS = leftAfter.length === 0 ? (Date.now() - closeStart) / 1000 : null;
    await sleep(1000);
    const p2 = sampleMem(proxyRoot);
    const n2 = sampleMem(nginxRoot);
    const foreign = foreignDelta(f0, foreignTicks());
    const foreignPct = (foreign.ticks / CLK_TCK / ((Date.now() - t0) / 1000)) * 100;
    if (foreignPct >= 10) notes.push(`other processes used ${foreignPct.toFixed(0)}% of a core meanwhile (top: ${foreign.top})`);

    if (ready.failed > 0 || ready.notStarted > 0) notes.push(`⚠ ${ready.failed} connection(s) failed, ${ready.notStarted} not started: ${JSON.stringify(ready.errors)}`);
    if (closed.droppedWhileIdle > 0) notes.push(`⚠ ${closed.droppedWhileIdle} connection(s) closed by the far side while idle`);
    if (closed.closed < closed.of) notes.push(`⚠ only ${closed.closed} of ${closed.of} connections closed within ${cfg.closeMs / 1000} s of the client's FIN`);
    if (leftAfter.length > 0) notes.push(`⚠ 30 s after the close, ${leftAfter.length} TCP connection(s) were still held: ${leftAfter.slice(0, 3).join(' · ')}`);
    const challenges = counterDelta(srv0, srv1, 'TcpExtTCPSYNChallenge') ?? 0;
    if (challenges > 0) {
      // A transparent proxy dials from the client's address on a port of its own choosing; a
      // later connection of that client from the same port meets the service's established end.
      notes.push(
        `⚠ ${challenges} client SYN(s) met a 4-tuple already established in the server namespace (the service's end of an upstream connection the proxy made from the same client address and port): the kernel answered each with a challenge ACK and the client could not connect while that one lived`,
      );
    }
    if (invalid) notes.push(`⚠ ${invalid}`);
    const samePids = (a: MemSample | null | undefined, z: MemSample | null | undefined): boolean => (a?.pids.join(',') ?? '') === (z?.pids.join(',') ?? '');
    if (!samePids(p0, p1)) notes.push(`proxy processes changed during the run (${p0?.pids.join(',')} → ${p1?.pids.join(',')}): memory miscounted`);
    if (!samePids(n0, n1)) notes.push('nginx processes changed during the run');
    const r: IdleResult = {
      target: t.id,
      ready,
      closed,
      proxy: p0 && p1 && p2 ? [p0, p1, p2] : null,
      nginx: n0 && n1 && n2 ? [n0, n1, n2] : null,
      proxyFdLimits: fdLimits(proxyRoot),
      openCpuS: cpuSeconds(c0, c1),
      synChallenges: counterDelta(srv0, srv1, 'TcpExtTCPSYNChallenge'),
      synRetrans: counterDelta(cli0, cli1, 'TcpExtTCPSynRetrans'),
      releasedS,
      leftAfter,
      foreignPct,
      notes,
      invalid,
    };
    const per = idlePer(r, 'proxy', 'rssKiB');
    log(
      `${t.id.padEnd(7)} ${IDLE_RUN}: ${per !== undefined ? `proxy ${fmt(per, 0)} B RSS per connection, ` : ''}nginx ${fmt(idlePer(r, 'nginx', 'rssKiB') ?? NaN, 0)} B; ` +
        `closed ${closed.closed}/${closed.of} in ${(closed.ms / 1000).toFixed(1)} s${notes.length > 0 ? `  [${notes.join('; ')}]` : ''}`,
    );
    return r;
  } finally {
    if (client.exitCode === null && client.signalCode === null) client.kill('SIGKILL');
    await exited;
    children.delete(client);
  }
}

/** Bytes of `what`'s memory per held connection (holding minus before, over the connections held). */
function idlePer(r: IdleResult | undefined, who: 'proxy' | 'nginx', what: 'rssKiB' | 'pssKiB'): number | undefined {
  const m = r?.[who];
  if (!r || !m || r.ready.held === 0) return undefined;
  return ((m[1][what] - m[0][what]) * 1024) / r.ready.held;
}

// ---- report ----

function fmt(n: number, digits?: number): string {
  const d = digits ?? (n >= 100 ? 0 : n >= 10 ? 1 : 2);
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

function ratio(a: number | undefined, z: number | undefined): string {
  if (a === undefined || z === undefined || z === 0) return '–';
  return `${(a / z).toFixed(2)}×`;
}

function errorFlag(r: Result | undefined): string {
  if (!r) return '';
  const e = errorsOf(r);
  return `${e > 0 ? ` ⚠ ${e} err` : ''}${r.invalid ? ' ⚠ invalid' : ''}${r.foreignPct >= 10 ? ' ⚠ disturbed' : ''}`;
}

function cpuPer(r: Result | undefined): number | undefined {
  if (!r || r.proxyCpuS === null) return undefined;
  if (r.scenario.kind === 'bulk') return r.proxyCpuS / (r.wrk.bytes / 1e9);
  return r.wrk.requests > 0 ? (r.proxyCpuS * 1e6) / r.wrk.requests : undefined;
}

function nginxCpuPer(r: Result | undefined): number | undefined {
  if (!r || r.nginxCpuS === null) return undefined;
  if (r.scenario.kind === 'bulk') return r.nginxCpuS / (r.wrk.bytes / 1e9);
  return r.wrk.requests > 0 ? (r.nginxCpuS * 1e6) / r.wrk.requests : undefined;
}

/** The agreed targets: jfe against HAProxy. */
function targetFor(s: Scenario): number | undefined {
  if (!s.tls) return 1.0; // plaintext passthrough: at least HAProxy's plaintext mode tcp
  if (s.kind === 'ka' || s.kind === 'new') return 0.8;
  return 1.0;
}

interface Header {
  machine: string[];
  setup: string[];
  tls: string[];
  started: Date;
}

/** plaintext-idle's table: memory per held connection, and whether they opened and closed cleanly. */
function idleSection(idle: IdleResult[]): string[] {
  if (idle.length === 0) return [];
  const get = (t: TargetId): IdleResult | undefined => idle.find((r) => r.target === t);
  const [d, hp, j] = (['direct', 'haproxy', 'jfe'] as const).map(get);
  const bytes = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : fmt(x, 0));
  const flag = (r: IdleResult | undefined): string => (r?.invalid ? ' ⚠ invalid' : r && r.notes.some((n) => n.startsWith('⚠')) ? ' ⚠' : '');
  const row = (label: string, f: (r: IdleResult) => string, ratioOf?: (r: IdleResult) => number | undefined, directToo = true): string =>
    `| ${label} | ${d && directToo ? f(d) : '–'} | ${hp ? f(hp) : '–'} | ${j ? f(j) : '–'} | ${ratioOf ? ratio(j && ratioOf(j), hp && ratioOf(hp)) : ''} |`;
  const mib = (k: number): string => fmt(k / 1024, 1);
  const three = (who: 'proxy' | 'nginx', f: (m: MemSample) => string) => (r: IdleResult): string => {
    const m = r[who];
    return m ? m.map(f).join(' → ') : '–';
  };
  const L: string[] = [];
  L.push(
    `${IDLE_RUN}: ${fmt(IDLE_N, 0)} plaintext connections held open at once, each idle after one request and its answer. Memory per connection = (the processes' memory holding them − before opening them) ÷ the connections held; each client connection is two sockets in a proxy (client and upstream side).`,
    '',
  );
  if (IDLE_SHORT) L.push(`⚠ ${IDLE_SHORT}.`, '');
  L.push('| measurement | direct (nginx) | HAProxy | jfe | jfe / HAProxy |', '|---|---:|---:|---:|---:|');
  L.push(row('proxy memory per connection, bytes of RSS', (r) => `${bytes(idlePer(r, 'proxy', 'rssKiB'))}${flag(r)}`, (r) => idlePer(r, 'proxy', 'rssKiB'), false));
  L.push(row('↳ bytes of PSS (pages shared between processes split among them)', (r) => bytes(idlePer(r, 'proxy', 'pssKiB')), (r) => idlePer(r, 'proxy', 'pssKiB'), false));
  L.push(row('↳ proxy RSS, MiB: before → holding → after closing', three('proxy', (m) => mib(m.rssKiB)), undefined, false));
  L.push(row('↳ proxy fds: before → holding → after closing', three('proxy', (m) => fmt(m.fds, 0)), undefined, false));
  L.push(row('↳ proxy fd limit (RLIMIT_NOFILE, per process)', (r) => [...new Set(r.proxyFdLimits)].map((x) => fmt(x, 0)).join(', '), undefined, false));
  L.push(row('proxy CPU while opening, µs per connection', (r) => (r.openCpuS === null || r.ready.held === 0 ? '–' : fmt((r.openCpuS * 1e6) / r.ready.held)), (r) => (r.openCpuS === null || r.ready.held === 0 ? undefined : r.openCpuS / r.ready.held), false));
  L.push(row('the service (nginx) memory per connection, bytes of RSS', (r) => bytes(idlePer(r, 'nginx', 'rssKiB'))));
  L.push(row('↳ nginx RSS, MiB: before → holding → after closing', three('nginx', (m) => mib(m.rssKiB))));
  L.push(row('connections held / failed / closed by the far side while idle', (r) => `${fmt(r.ready.held, 0)} / ${fmt(r.ready.failed + r.ready.notStarted, 0)} / ${r.closed ? fmt(r.closed.droppedWhileIdle, 0) : '?'}`));
  L.push(row(`time to open them all, s (${IDLE_PARALLEL} at a time)`, (r) => fmt(r.ready.ms / 1000, 1)));
  L.push(row('↳ SYNs resent by the client / answered by a challenge ACK (their 4-tuple taken on the server side)', (r) => `${r.synRetrans === undefined ? '?' : fmt(r.synRetrans, 0)} / ${r.synChallenges === undefined ? '?' : fmt(r.synChallenges, 0)}`));
  L.push(row('client FIN → every connection closed both ways, s', (r) => (r.closed ? `${fmt(r.closed.ms / 1000, 1)}${r.closed.closed < r.closed.of ? ` ⚠ ${r.closed.closed}/${r.closed.of}` : ''}` : '–')));
  L.push(row('… and no socket left in the proxy or nginx, s', (r) => (r.releasedS === null ? `⚠ ${r.leftAfter.length} left` : fmt(r.releasedS, 1))));
  const noted = idle.filter((r) => r.notes.length > 0);
  if (noted.length > 0) L.push('');
  for (const r of noted) L.push(`- ${IDLE_RUN} ${r.target}: ${r.notes.join('; ')}`);
  return L;
}

function report(h: Header, results: Result[], idle: IdleResult[], seconds: number, extra: string[]): string {
  const get = (t: TargetId, s: Scenario): Result | undefined => results.find((r) => r.target === t && r.scenario.id === s.id);
  const L: string[] = [];
  L.push(`### Results (${h.started.toISOString().replace(/\.\d+Z$/, 'Z')})`, '');
  L.push(...h.machine.map((m) => `- ${m}`), ...h.setup.map((m) => `- ${m}`), ...h.tls.map((m) => `- ${m}`), '');

  // Only the scenarios this bench ran (--runs).
  const ran = SCENARIOS.filter((s) => results.some((r) => r.scenario.id === s.id));
  if (ran.length > 0) L.push('| measurement | direct (nginx) | HAProxy | jfe | jfe / HAProxy | target | jfe / direct |', '|---|---:|---:|---:|---:|:---:|---:|');
  for (const s of ran) {
    const [d, hp, j] = (['direct', 'haproxy', 'jfe'] as const).map((t) => get(t, s));
    const v = (r: Result | undefined): string => (r ? `${fmt(mainValue(r))}${errorFlag(r)}` : '–');
    const tgt = targetFor(s);
    let verdict = '';
    if (tgt !== undefined && j && hp) {
      const ok = mainValue(j) / mainValue(hp) >= tgt && errorsOf(j) === 0 && !j.invalid;
      verdict = `≥ ${tgt.toFixed(1)}× ${ok ? '✅' : '❌'}`;
    }
    L.push(`| ${s.label} | ${v(d)} | ${v(hp)} | ${v(j)} | ${ratio(j && mainValue(j), hp && mainValue(hp))} | ${verdict} | ${ratio(j && mainValue(j), d && mainValue(d))} |`);
    if (s.kind !== 'bulk') {
      const lat = (r: Result | undefined): string => (r ? `${fmt(r.wrk.p50_us / 1000, 2)} / ${fmt(r.wrk.p99_us / 1000, 2)}` : '–');
      L.push(
        `| ↳ latency p50 / p99, ms | ${lat(d)} | ${lat(hp)} | ${lat(j)} | ${ratio(j?.wrk.p50_us, hp?.wrk.p50_us)} / ${ratio(j?.wrk.p99_us, hp?.wrk.p99_us)} |  | ${ratio(j?.wrk.p50_us, d?.wrk.p50_us)} / ${ratio(j?.wrk.p99_us, d?.wrk.p99_us)} |`,
      );
    }
  }
  if (ran.length > 0) {
    L.push('');
    L.push('Proxy CPU (utime+stime of all the proxy\'s processes during the run; nginx\'s own CPU for reference):', '');
    L.push('| run | unit | HAProxy | jfe | jfe / HAProxy | nginx behind HAProxy | nginx behind jfe | nginx direct |', '|---|---|---:|---:|---:|---:|---:|---:|');
  }
  for (const s of ran) {
    const [d, hp, j] = (['direct', 'haproxy', 'jfe'] as const).map((t) => get(t, s));
    const unit = s.kind === 'bulk' ? 'CPU s / GB' : s.kind === 'new' ? (s.tls ? 'CPU µs / handshake' : 'CPU µs / connection') : 'CPU µs / request';
    const c = (x: number | undefined): string => (x === undefined ? '–' : fmt(x));
    L.push(`| ${s.id} | ${unit} | ${c(cpuPer(hp))} | ${c(cpuPer(j))} | ${ratio(cpuPer(j), cpuPer(hp))} | ${c(nginxCpuPer(hp))} | ${c(nginxCpuPer(j))} | ${c(nginxCpuPer(d))} |`);
  }
  if (ran.length > 0) L.push('');

  L.push(...idleSection(idle));
  if (idle.length > 0 && results.length > 0) L.push('');

  if (results.length > 0) {
    L.push('Every run, with wrk\'s error counters (socket errors: connect / read / write / timeout; non-2xx/3xx responses):', '');
    L.push('| run | target | conns | s | requests | MB | connect | read | write | timeout | non-2xx | host busy | others | notes |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  }
  for (const r of results) {
    const w = r.wrk;
    L.push(
      `| ${r.scenario.id} | ${r.target} | ${r.scenario.conns} | ${r.seconds.toFixed(1)} | ${w.requests} | ${fmt(w.bytes / 1e6, 0)} | ${w.connect} | ${w.read} | ${w.write} | ${w.timeout} | ${w.status} | ${r.hostBusyPct.toFixed(0)}% | ${r.foreignPct.toFixed(0)}% | ${r.notes.join('; ').replace(/\|/g, '\\|')} |`,
    );
  }
  const bad = results.filter((r) => errorsOf(r) > 0);
  const invalid = results.filter((r) => r.invalid);
  if (invalid.length > 0) L.push('', `⚠ ${invalid.length} run(s) are invalid: ${invalid.map((r) => `${r.target} ${r.scenario.id} (${r.invalid})`).join('; ')}.`);
  if (results.length > 0) L.push('', '"host busy": all cores, from /proc/stat. "others": CPU of processes outside the bench (not wrk, nginx, HAProxy, jfe), in % of one core; above 10% the run is marked disturbed.');
  const disturbed = results.filter((r) => r.foreignPct >= 10);
  if (disturbed.length > 0) L.push('', `⚠ ${disturbed.length} run(s) were disturbed by other processes on the host: ${disturbed.map((r) => `${r.target} ${r.scenario.id}`).join(', ')}. Do not trust their numbers.`);
  if (results.length > 0) L.push('', bad.length === 0 ? 'No socket errors and no non-2xx responses in any run.' : `⚠ ${bad.length} run(s) had errors: ${bad.map((r) => `${r.target} ${r.scenario.id}`).join(', ')}.`);
  for (const e of extra) L.push('', e);
  L.push('', `Bench run time: ${seconds.toFixed(0)} s.`, '');
  return L.join('\n');
}

// ---- main ----

/** Adds the idle client's source addresses to the client end of the veth (on-link for the server). */
function addClientAddresses(w: World, addrs: string[]): void {
  const links = w.exec(w.cli, ['ip', '-o', 'link', 'show']);
  const dev = /^\d+:\s+([^:@\s]+)[@:]/m.exec(links.split('\n').filter((l) => !/^\d+:\s+lo:/.test(l)).join('\n'))?.[1];
  if (!dev) throw new Error(`no veth in the client namespace: ${links}`);
  for (const a of addrs) w.exec(w.cli, ['ip', 'addr', 'add', `${a}/24`, 'dev', dev]);
}

function machine(): string[] {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(cpuinfo)?.[1]?.trim();
  // A VM may name only the line ("AMD EPYC"): family/model/stepping tell the generation apart.
  const cpu = `${field('model name') ?? os.cpus()[0]?.model ?? '?'} (${field('vendor_id') ?? '?'} family ${field('cpu family') ?? '?'} model ${field('model') ?? '?'} stepping ${field('stepping') ?? '?'}, ${field('cache size') ?? '?'} cache)`;
  const out = (cmd: string, args: string[]): string => {
    const r = runSync(cmd, args);
    return `${r.stdout}${r.stderr}`;
  };
  const first = (cmd: string, args: string[]): string => out(cmd, args).split('\n')[0]?.trim() ?? '?';
  // The Node jfe runs on is this one (the helpers start it with process.execPath); asked anyway, as jfe would see it.
  const jfeNode = runSync(process.execPath, ['-p', 'process.version + " " + process.versions.openssl']).stdout.trim().split(' ');
  const hvv = out('haproxy', ['-vv']);
  const haproxySsl = `built with ${/Built with OpenSSL version : (.+)/.exec(hvv)?.[1]?.trim() ?? '?'}, running on ${/Running on OpenSSL version : (.+)/.exec(hvv)?.[1]?.trim() ?? '?'}`;
  const nginxSsl = /built with (OpenSSL [^\n]+)/.exec(out('nginx', ['-V']))?.[1]?.trim() ?? '?';
  const rev = runSync('git', ['-C', REPO_ROOT, 'describe', '--always', '--dirty']).stdout.trim() || 'unknown';
  return [
    `jfe under test: commit ${rev.replace(/-dirty$/, ' (with uncommitted changes in the working tree)')}`,
    `Machine: ${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}`,
    `OpenSSL on each side: jfe on Node ${jfeNode[0] ?? '?'} with OpenSSL ${jfeNode[1] ?? '?'} (process.versions.openssl); ${first('haproxy', ['-v']).replace(/ - https.*$/, '')} ${haproxySsl} (haproxy -vv); nginx (direct) ${nginxSsl}; wrk and openssl s_client: ${first('openssl', ['version']).replace(/ \(Library.*$/, '')}`,
    `Software: Node ${jfeNode[0] ?? '?'}, ${first('haproxy', ['-v']).replace(/ - https.*$/, '')}, ${first('nginx', ['-v']).replace(/^nginx version: /, '')}, ${first('wrk', ['--version']).replace(/ Copyright.*$/, '')}`,
  ];
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: must run as root (network namespaces, BPF)\n');
    process.exit(1);
  }
  for (const tool of ['ip', 'wrk', 'haproxy', 'nginx', 'curl', 'openssl']) {
    if (runSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is not on PATH (see scripts/install.sh --with-tests)`);
  }
  // Other processes on the host would skew every number: wait (bounded) for a quiet moment.
  let quiet = false;
  for (let i = 0; i < 30 && !quiet; i++) {
    const a = foreignTicks();
    await sleep(2000);
    const pct = (foreignDelta(a, foreignTicks()).ticks / CLK_TCK / 2) * 100;
    quiet = pct < 10;
    if (!quiet) log(`the host is busy (other processes use ${pct.toFixed(0)}% of a core); waiting for it to calm down`);
  }
  if (!quiet) log('the host stayed busy; measuring anyway (disturbed runs are marked)');
  const started = new Date();
  const t0 = Date.now();
  const w = createWorld(fakeT);
  log(`world ${w.id}; generating a ${BIG_BYTES / 2 ** 20} MiB file for /big`);
  // The clients draw their ports where other hosts' clients do, above jfe's --upstream-ports
  // (1024-32767); the server side keeps a wide range for HAProxy's thousands of backend connections.
  w.exec(w.cli, ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=32768 65000']);
  w.exec(w.srv, ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65000']);
  for (const ns of [w.cli, w.srv]) {
    // Thousands of connections to 127.0.0.1:8080 (HAProxy's backend) take ephemeral ports, and
    // one left closing on 127.0.0.1:9464 would keep jfe's metrics listener from starting again.
    w.exec(ns, ['sysctl', '-q', '-w', `net.ipv4.ip_local_reserved_ports=${[PORTS.plain, 8081, PORTS.nginxTls, PORTS.haproxyPlain, PORTS.haproxyTls, 9464].join(',')}`]);
    w.exec(ns, ['sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1']);
  }
  if (RUNS.has(IDLE_RUN)) {
    if (IDLE_SHORT) log(`${IDLE_RUN}: ${IDLE_SHORT}`);
    addClientAddresses(w, IDLE_SOURCES);
  }
  const nginx = await startNginx(w, { bigBytes: BIG_BYTES });
  const b: Bench = {
    w,
    nginx,
    jfeArgs: ['--ports', String(PORTS.plain), '--listeners-interval', '250ms', ...(JFE_MAX_CONNS ? ['--max-connections', String(JFE_MAX_CONNS)] : [])],
    certDir: path.join(w.tmp, 'bench-cert'),
    jfeStderr: [],
    jfeLogs: [],
  };

  // jfe's leaf for 10.77.0.2, issued on the first TLS request, then shared with nginx and HAProxy.
  log(`starting jfe (${WORKERS} workers) to issue its leaf for ${w.srv4}`);
  b.jfe = await startBenchJfe(b);
  const caFile = b.jfe.caFile;
  await curlOk(w, ['--cacert', caFile, `https://${w.srv4}:${PORTS.plain}/`], 'nginx-plain\n');
  const leafDir = path.join(b.jfe.stateDir, 'certs', 'internal', w.srv4);
  await waitForFile(path.join(leafDir, 'cert.pem'));
  await waitForFile(path.join(leafDir, 'key.pem'));
  fs.mkdirSync(b.certDir, { recursive: true });
  for (const f of ['cert.pem', 'key.pem']) fs.copyFileSync(path.join(leafDir, f), path.join(b.certDir, f));
  // Direct runs go to nginx's own port 8080 too: jfe is stopped and detached for them.
  await stopJfe(b);

  await addNginxTls(b);
  await curlOk(w, ['--cacert', caFile, `https://${w.srv4}:${PORTS.nginxTls}/`], 'nginx-plain\n');
  await curlOk(w, [`http://${w.srv4}:${PORTS.plain}/`], 'nginx-plain\n');
  b.haproxy = await startHaproxy(b);
  await curlOk(w, ['--cacert', caFile, `https://${w.srv4}:${PORTS.haproxyTls}/`], 'nginx-plain\n');
  await curlOk(w, [`http://${w.srv4}:${PORTS.haproxyPlain}/`], 'nginx-plain\n');

  const targets: Record<TargetId, Target> = {
    direct: { id: 'direct', name: 'direct', url: (tls) => (tls ? `https://${w.srv4}:${PORTS.nginxTls}` : `http://${w.srv4}:${PORTS.plain}`), proxyPid: () => undefined },
    haproxy: { id: 'haproxy', name: 'HAProxy', url: (tls) => (tls ? `https://${w.srv4}:${PORTS.haproxyTls}` : `http://${w.srv4}:${PORTS.haproxyPlain}`), proxyPid: () => b.haproxy?.proc.pid },
    jfe: { id: 'jfe', name: 'jfe', url: (tls) => `${tls ? 'https' : 'http'}://${w.srv4}:${PORTS.plain}`, proxyPid: () => b.jfe?.proc.pid },
  };

  const tlsLines: string[] = [];
  const tlsDirect = await tlsInfo(w, PORTS.nginxTls);
  const tlsHaproxy = await tlsInfo(w, PORTS.haproxyTls);

  const results: Result[] = [];
  const idle: IdleResult[] = [];
  // Direct and HAProxy, interleaved run by run; then jfe. The idle run comes last: it leaves
  // thousands of TIME_WAIT sockets in the client namespace behind.
  for (const s of SCENARIOS.filter((x) => RUNS.has(x.id))) {
    if (TARGETS.has('direct')) results.push(await measure(b, targets.direct, s));
    if (TARGETS.has('haproxy')) results.push(await measure(b, targets.haproxy, s));
  }
  if (RUNS.has(IDLE_RUN)) {
    if (TARGETS.has('direct')) idle.push(await measureIdle(b, targets.direct));
    if (TARGETS.has('haproxy')) idle.push(await measureIdle(b, targets.haproxy));
  }
  const haproxyFdLimits = fdLimits(b.haproxy.proc.pid);
  await b.haproxy.stop();
  b.haproxy = undefined;

  log(`starting jfe again (${WORKERS} workers, --ports ${PORTS.plain}); its leaf is loaded from the state directory`);
  b.jfe = await startBenchJfe(b);
  await curlOk(w, ['--cacert', caFile, `https://${w.srv4}:${PORTS.plain}/`], 'nginx-plain\n');
  await curlOk(w, [`http://${w.srv4}:${PORTS.plain}/`], 'nginx-plain\n');
  const tlsJfe = await tlsInfo(w, PORTS.plain);
  if (TARGETS.has('jfe')) {
    for (const s of SCENARIOS.filter((x) => RUNS.has(x.id))) results.push(await measure(b, targets.jfe, s));
    if (RUNS.has(IDLE_RUN)) idle.push(await measureIdle(b, targets.jfe));
  }
  const jfeFdLimits = fdLimits(b.jfe.proc.pid);

  // Stopping drains open connections (--drain-timeout, 30 s): with no client left it should be immediate.
  const stopStart = Date.now();
  const heldAtStop = heldConnections(w, tree(b.jfe.proc.pid ?? 0));
  await stopJfe(b);
  if (opt['jfe-log']) fs.writeFileSync(opt['jfe-log'], `${b.jfeLogs.map((l) => JSON.stringify(l)).join('\n')}\n--- stderr ---\n${b.jfeStderr.join('')}`);
  const stopS = (Date.now() - stopStart) / 1000;
  const stopLine =
    stopS > 5
      ? `⚠ jfe took ${stopS.toFixed(1)} s to stop after the last run (it held ${heldAtStop.length} connection(s): ${heldAtStop.slice(0, 3).join(' · ')}).`
      : `jfe stopped in ${stopS.toFixed(1)} s after the last run.`;
  log(stopLine);
  const fps = new Set([tlsDirect.fingerprint, tlsHaproxy.fingerprint, tlsJfe.fingerprint]);
  tlsLines.push(
    `TLS as negotiated by \`openssl s_client\` (same OpenSSL defaults as wrk): direct ${tlsDirect.summary}; HAProxy ${tlsHaproxy.summary}; jfe ${tlsJfe.summary}. ` +
      (fps.size === 1 ? `All three serve the same ECDSA leaf (jfe's, for ${w.srv4}), SHA-256 ${tlsJfe.fingerprint}.` : `⚠ the leaves differ: direct ${tlsDirect.fingerprint}, HAProxy ${tlsHaproxy.fingerprint}, jfe ${tlsJfe.fingerprint}.`),
  );
  const header: Header = {
    started,
    machine: machine(),
    setup: [
      `Client and server network namespaces joined by a veth pair (${w.cli4} → ${w.srv4}); wrk in the client namespace; nginx (1 worker process), HAProxy and jfe in the server namespace, all on the same ${os.cpus().length} cores.`,
      `direct: nginx :${PORTS.plain} (plaintext) and its own \`ssl\` server :${PORTS.nginxTls} (TLSv1.3 only). HAProxy: \`mode tcp\`, \`nbthread ${WORKERS}\`, TLS :${PORTS.haproxyTls} (ssl-min-ver TLSv1.3) and plaintext :${PORTS.haproxyPlain}, backend nginx 127.0.0.1:${PORTS.plain}. jfe: \`jfe run --workers ${WORKERS} --ports ${PORTS.plain}\` (a primary and ${WORKERS} worker processes), TLS and plaintext both on :${PORTS.plain}; jfe was stopped and detached during the direct and HAProxy runs.`,
      `File descriptors (RLIMIT_NOFILE, soft): HAProxy ${[...new Set(haproxyFdLimits)].join(', ') || '?'} (from its maxconn ${HAPROXY_MAXCONN}), jfe's processes ${[...new Set(jfeFdLimits)].join(', ') || '?'} (prlimit), nginx worker_rlimit_nofile ${FD_LIMIT} with worker_connections ${NGINX_CONNS}; the bench's own hard limit was ${runSync('sh', ['-c', 'ulimit -Hn']).stdout.trim()}. jfe: \`--max-connections\` ${JFE_MAX_CONNS ?? '20000 (default)'}, \`--max-connections-per-client\` 2000 (default).`,
      ...(RUNS.has(IDLE_RUN)
        ? [
            `${IDLE_RUN}: a Node client in the client namespace opens ${IDLE_N} connections, ${IDLE_PARALLEL} at a time, spread over ${IDLE_SOURCES.length} client address(es) ${IDLE_SOURCES[0]}${IDLE_SOURCES.length > 1 ? `–${IDLE_SOURCES.at(-1)}` : ''} (at most ${IDLE_PER_SOURCE} each, half of jfe's per-client cap), sends \`GET /\` on each and reads nginx's answer, then holds them all idle (nginx keepalive_timeout 600s, HAProxy timeouts 10m, jfe's idle timeout 1h). Each proxy is restarted just before (one request through it first), so what the runs before grew does not hide the connections' cost. Memory: Rss and Pss from /proc/<pid>/smaps_rollup summed over the proxy's processes (jfe: the primary and its workers), once it settles (two samples 500 ms apart within 0.2%, at most 10 s), before opening and while holding. Then the client sends FIN on every connection and waits for each to close.`,
          ]
        : []),
      `Each run: wrk ${DURATION} s after a ${WARMUP} s warm-up. New connections: \`-H 'Connection: close'\`, 32 connections, 2 threads. Keep-alive: 32 connections, 2 threads. Bulk: GET /big (${BIG_BYTES / 2 ** 20} MiB, random bytes), 1 connection (1 thread) and 8 connections (2 threads). MB = 10⁶ bytes, GB = 10⁹ bytes.`,
    ],
    tls: tlsLines,
  };
  const seconds = (Date.now() - t0) / 1000;
  const md = report(header, results, idle, seconds, [stopLine]);
  process.stdout.write(`\n${md}\n`);
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, md);
  log(`written to ${OUT}`);
}

main()
  .then(() => teardown())
  .then(() => process.exit(0))
  .catch(async (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    await teardown();
    process.exit(1);
  });

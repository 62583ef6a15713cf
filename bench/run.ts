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
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write('usage: node dist/bench/run.js [--workers N=2] [--duration S=5] [--warmup S=1] [--big-mb MB=256] [--out FILE] [--jfe-log FILE]\n       [--targets direct,haproxy,jfe] [--runs TLS-new,TLS-ka,TLS-bulk1,TLS-bulk8,plaintext-new,plaintext-ka,plaintext-bulk1,plaintext-bulk8]\n');
  process.exit(0);
}
const WORKERS = positiveInt('workers', opt.workers);
const DURATION = positiveInt('duration', opt.duration);
const WARMUP = Number(opt.warmup);
const BIG_BYTES = positiveInt('big-mb', opt['big-mb']) * 1024 * 1024;
const OUT = path.resolve(opt.out ?? '');
const TARGETS = new Set((opt.targets ?? '').split(',').filter(Boolean));
const RUNS = new Set(opt.runs ? opt.runs.split(',') : ['TLS-new', 'TLS-ka', 'TLS-bulk1', 'TLS-bulk8', 'plaintext-new', 'plaintext-ka', 'plaintext-bulk1', 'plaintext-bulk8']);
for (const x of RUNS) {
  if (!['TLS-new', 'TLS-ka', 'TLS-bulk1', 'TLS-bulk8', 'plaintext-new', 'plaintext-ka', 'plaintext-bulk1', 'plaintext-bulk8'].includes(x)) {
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

/** Adds nginx's own TLS server (8443, TLS 1.3, jfe's leaf) to the helper's config and reloads it. */
async function addNginxTls(b: Bench): Promise<void> {
  const dir = path.dirname(b.nginx.accessLog);
  const confFile = path.join(dir, 'nginx.conf');
  const conf = fs.readFileSync(confFile, 'utf8').trimEnd();
  if (!conf.endsWith('}') || !conf.includes('http {')) throw new Error(`unexpected nginx config layout in ${confFile}`);
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
  // The backend is nginx on loopback: the same service jfe forwards to.
  const cfg = `
global
  nbthread ${WORKERS}
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
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
  const jfe = await startJfe(b.w, b.jfeArgs, { workers: WORKERS, nodeArgs: process.env.JFE_BENCH_NODE_ARGS ? process.env.JFE_BENCH_NODE_ARGS.split(" ") : [] });
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
  if (t.id === 'jfe' && b.jfe && tree(b.jfe.proc.pid ?? 0).length < 1 + WORKERS) {
    const left = tree(b.jfe.proc.pid ?? 0).length;
    notes.push(`jfe was down before this run (${left === 0 ? `primary exited with code ${b.jfe.proc.exitCode}` : `${left - 1} of ${WORKERS} workers left`}): restarted it`);
    log(`jfe has lost workers; restarting it before ${s.id}`);
    await stopJfe(b);
    b.jfe = await startBenchJfe(b);
  }
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
  let invalid: string | undefined;
  if (t.id === 'jfe' && b.jfe && (b.jfe.proc.exitCode !== null || b.jfe.proc.signalCode !== null)) {
    invalid = `jfe's primary exited during the run (code ${b.jfe.proc.exitCode}, signal ${b.jfe.proc.signalCode}): connections failed open to nginx`;
    notes.push(`⚠ ${invalid}`);
  } else if (t.id === 'jfe' && p1 && p1.pids.length < 1 + WORKERS) {
    invalid = `jfe had ${Math.max(0, p1.pids.length - 1)} of ${WORKERS} workers at the end of the run: connections failed open to nginx`;
    notes.push(`⚠ ${invalid}`);
  }
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

function report(h: Header, results: Result[], seconds: number, extra: string[]): string {
  const get = (t: TargetId, s: Scenario): Result | undefined => results.find((r) => r.target === t && r.scenario.id === s.id);
  const L: string[] = [];
  L.push(`### Results (${h.started.toISOString().replace(/\.\d+Z$/, 'Z')})`, '');
  L.push(...h.machine.map((m) => `- ${m}`), ...h.setup.map((m) => `- ${m}`), ...h.tls.map((m) => `- ${m}`), '');

  L.push('| measurement | direct (nginx) | HAProxy | jfe | jfe / HAProxy | target | jfe / direct |', '|---|---:|---:|---:|---:|:---:|---:|');
  for (const s of SCENARIOS) {
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
  L.push('');

  L.push('Proxy CPU (utime+stime of all the proxy\'s processes during the run; nginx\'s own CPU for reference):', '');
  L.push('| run | unit | HAProxy | jfe | jfe / HAProxy | nginx behind HAProxy | nginx behind jfe | nginx direct |', '|---|---|---:|---:|---:|---:|---:|---:|');
  for (const s of SCENARIOS) {
    const [d, hp, j] = (['direct', 'haproxy', 'jfe'] as const).map((t) => get(t, s));
    const unit = s.kind === 'bulk' ? 'CPU s / GB' : s.kind === 'new' ? (s.tls ? 'CPU µs / handshake' : 'CPU µs / connection') : 'CPU µs / request';
    const c = (x: number | undefined): string => (x === undefined ? '–' : fmt(x));
    L.push(`| ${s.id} | ${unit} | ${c(cpuPer(hp))} | ${c(cpuPer(j))} | ${ratio(cpuPer(j), cpuPer(hp))} | ${c(nginxCpuPer(hp))} | ${c(nginxCpuPer(j))} | ${c(nginxCpuPer(d))} |`);
  }
  L.push('');

  L.push('Every run, with wrk\'s error counters (socket errors: connect / read / write / timeout; non-2xx/3xx responses):', '');
  L.push('| run | target | conns | s | requests | MB | connect | read | write | timeout | non-2xx | host busy | others | notes |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of results) {
    const w = r.wrk;
    L.push(
      `| ${r.scenario.id} | ${r.target} | ${r.scenario.conns} | ${r.seconds.toFixed(1)} | ${w.requests} | ${fmt(w.bytes / 1e6, 0)} | ${w.connect} | ${w.read} | ${w.write} | ${w.timeout} | ${w.status} | ${r.hostBusyPct.toFixed(0)}% | ${r.foreignPct.toFixed(0)}% | ${r.notes.join('; ').replace(/\|/g, '\\|')} |`,
    );
  }
  const bad = results.filter((r) => errorsOf(r) > 0);
  const invalid = results.filter((r) => r.invalid);
  if (invalid.length > 0) L.push('', `⚠ ${invalid.length} run(s) are invalid: ${invalid.map((r) => `${r.target} ${r.scenario.id} (${r.invalid})`).join('; ')}.`);
  L.push('', '"host busy": all cores, from /proc/stat. "others": CPU of processes outside the bench (not wrk, nginx, HAProxy, jfe), in % of one core; above 10% the run is marked disturbed.');
  const disturbed = results.filter((r) => r.foreignPct >= 10);
  if (disturbed.length > 0) L.push('', `⚠ ${disturbed.length} run(s) were disturbed by other processes on the host: ${disturbed.map((r) => `${r.target} ${r.scenario.id}`).join(', ')}. Do not trust their numbers.`);
  L.push('', bad.length === 0 ? 'No socket errors and no non-2xx responses in any run.' : `⚠ ${bad.length} run(s) had errors: ${bad.map((r) => `${r.target} ${r.scenario.id}`).join(', ')}.`);
  for (const e of extra) L.push('', e);
  L.push('', `Bench run time: ${seconds.toFixed(0)} s.`, '');
  return L.join('\n');
}

// ---- main ----

function machine(): string[] {
  const cpu = /model name\s*:\s*(.+)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? '?';
  const first = (cmd: string, args: string[]): string => {
    const r = runSync(cmd, args);
    return `${r.stdout}${r.stderr}`.split('\n')[0]?.trim() ?? '?';
  };
  const rev = runSync('git', ['-C', REPO_ROOT, 'describe', '--always', '--dirty']).stdout.trim() || 'unknown';
  return [
    `jfe under test: commit ${rev.replace(/-dirty$/, ' (with uncommitted changes in the working tree)')}`,
    `Machine: ${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}`,
    `Software: Node ${process.version} (OpenSSL ${process.versions.openssl}), ${first('haproxy', ['-v']).replace(/ - https.*$/, '')}, ${first('nginx', ['-v']).replace(/^nginx version: /, '')}, ${first('wrk', ['--version']).replace(/ Copyright.*$/, '')}, ${first('openssl', ['version']).replace(/ \(Library.*$/, '')}`,
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
  for (const ns of [w.cli, w.srv]) {
    w.exec(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65000']);
    w.exec(ns, ['sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1']);
  }
  const nginx = await startNginx(w, { bigBytes: BIG_BYTES });
  const b: Bench = {
    w,
    nginx,
    jfeArgs: ['--ports', String(PORTS.plain), '--listeners-interval', '250ms'],
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
  // Direct and HAProxy, interleaved run by run; then jfe.
  for (const s of SCENARIOS.filter((x) => RUNS.has(x.id))) {
    if (TARGETS.has('direct')) results.push(await measure(b, targets.direct, s));
    if (TARGETS.has('haproxy')) results.push(await measure(b, targets.haproxy, s));
  }
  await b.haproxy.stop();
  b.haproxy = undefined;

  log(`starting jfe again (${WORKERS} workers, --ports ${PORTS.plain}); its leaf is loaded from the state directory`);
  b.jfe = await startBenchJfe(b);
  await curlOk(w, ['--cacert', caFile, `https://${w.srv4}:${PORTS.plain}/`], 'nginx-plain\n');
  await curlOk(w, [`http://${w.srv4}:${PORTS.plain}/`], 'nginx-plain\n');
  const tlsJfe = await tlsInfo(w, PORTS.plain);
  if (TARGETS.has('jfe')) for (const s of SCENARIOS.filter((x) => RUNS.has(x.id))) results.push(await measure(b, targets.jfe, s));

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
      `Each run: wrk ${DURATION} s after a ${WARMUP} s warm-up. New connections: \`-H 'Connection: close'\`, 32 connections, 2 threads. Keep-alive: 32 connections, 2 threads. Bulk: GET /big (${BIG_BYTES / 2 ** 20} MiB, random bytes), 1 connection (1 thread) and 8 connections (2 threads). MB = 10⁶ bytes, GB = 10⁹ bytes.`,
    ],
    tls: tlsLines,
  };
  const seconds = (Date.now() - t0) / 1000;
  const md = report(header, results, seconds, [stopLine]);
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

// SPDX-License-Identifier: MIT
// Runs the real bins (bin/jfe, bin/jfe-bpf) and other commands, capturing output.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const BIN = {
  jfe: path.join(REPO_ROOT, 'bin', 'jfe'),
  jfeBpf: path.join(REPO_ROOT, 'bin', 'jfe-bpf'),
};

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function runSync(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Like runSync but async, so the test's own servers keep serving meanwhile. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? (signal ? 128 : -1), stdout, stderr });
    });
    // A child may exit before reading its input (curl, a usage error): the broken pipe is not the run's error.
    child.stdin.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') reject(err);
    });
    child.stdin.end(opts.input ?? '');
  });
}

export function mustRun(cmd: string, args: string[]): string {
  const r = runSync(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} → exit ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Runs one of the checkout's scripts (a bin, or a file under dist/) with this
 * Node as the user nobody (uid and gid 65534, no groups); the caller is root.
 * A checkout where a root user clones things (/root/jfe, under a 0700 /root)
 * is out of nobody's reach, so the command runs in a mount namespace of its
 * own where the checkout is bind-mounted on an empty directory nobody can
 * reach: that one path, for that one command's life, with no cleanup to miss.
 */
export function runUnprivileged(t: TestContext, script: string, args: string[]): RunResult {
  if ((fs.statSync(REPO_ROOT).mode & 0o005) !== 0o005) {
    throw new Error(`${REPO_ROOT} itself is private (mode ${(fs.statSync(REPO_ROOT).mode & 0o777).toString(8)}): a bind mount keeps that mode, so nobody cannot run the checkout (a clone is 755)`);
  }
  const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-nobody-'));
  t.after(() => fs.rmSync(mount, { recursive: true, force: true }));
  fs.chmodSync(mount, 0o755);
  const inMount = path.join(mount, path.relative(REPO_ROOT, script));
  const asNobody = 'mount --bind "$1" "$2" && shift 2 && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"';
  return runSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', asNobody, 'sh', REPO_ROOT, mount, process.execPath, inMount, ...args]);
}

// SPDX-License-Identifier: MIT
// Runs the real bins (bin/jfe, bin/jfe-bpf) and other commands, capturing output.
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';

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
    // A child that exits without reading its input (curl, most commands) closes the pipe
    // first now and then: that EPIPE says nothing its status and output do not.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export function mustRun(cmd: string, args: string[]): string {
  const r = runSync(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} → exit ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

// SPDX-License-Identifier: MIT
// Runs the real `jfe run` inside a world's server namespace, waits until its
// workers are registered, and stops it (and detaches) at teardown.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { World } from './netns';
import { SANITIZE_LOGS_ENV } from './sanitize-preload';
import { BIN, runSync } from './spawn';

export interface RunningJfe {
  proc: ChildProcess;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  stateDir: string;
  /** The internal CA's root, PEM, written to a file for clients' --cacert. */
  caFile: string;
  /** SIGTERM, then wait for the exit (SIGKILL after timeoutMs). Resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** opts.wrap: a command that runs node, e.g. setpriv with a capability bounding set. */
export async function startJfe(w: World, args: string[] = [], opts: { workers?: number; nodeArgs?: string[]; wrap?: string[] } = {}): Promise<RunningJfe> {
  const stateDir = path.join(w.tmp, 'state');
  const workers = opts.workers ?? 2;
  const steering = w.steeringArgs.filter((_, i, a) => a[i] !== '--netns' && a[i - 1] !== '--netns');
  const defaults = args.includes('--listeners-interval') ? [] : ['--listeners-interval', '100ms'];
  const proc = spawn('ip', ['netns', 'exec', w.srv.name, ...(opts.wrap ?? []), process.execPath, ...(opts.nodeArgs ?? []), BIN.jfe, 'run', ...steering, '--state-dir', stateDir, '--workers', String(workers), ...defaults, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let buf = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        parsed = { msg: line, level: 50 };
      }
      logs.push(parsed);
      for (const wt of [...waiters]) {
        if (wt.match(parsed)) {
          waiters.splice(waiters.indexOf(wt), 1);
          wt.resolve(parsed);
        }
      }
    }
  });
  // Under npm run test:sanitize, UBSan writes its reports to stderr only (its log_path is lost
  // to ASan's in the same process): the agent's stderr is kept where the script looks for them.
  const sanitizeLogs = process.env[SANITIZE_LOGS_ENV];
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (sanitizeLogs) fs.appendFileSync(path.join(sanitizeLogs, `jfe-stderr.${proc.pid}`), d);
  });
  // 'exit' can come before the last lines on stdout are read (a test that checked
  // the final "stopped; ..." line failed on it under load): wait for the streams
  // to end too, bounded, since a worker that kept stdout open must not hang a test.
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code) => {
      const bound = setTimeout(() => resolve(code), 2000);
      proc.once('close', () => {
        clearTimeout(bound);
        resolve(code);
      });
    }),
  );

  const waitForLog = (match: (l: Record<string, unknown>) => boolean, timeoutMs = 20_000): Promise<Record<string, unknown>> => {
    const found = logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`jfe did not log the expected line within ${timeoutMs} ms; stderr: ${stderr}; logs: ${JSON.stringify(logs.slice(-10))}`)), timeoutMs);
      const exitedEarly = (): void => reject(new Error(`jfe exited early; stderr: ${stderr}; logs: ${JSON.stringify(logs.slice(-10))}`));
      void exited.then(exitedEarly);
      waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  };

  let stopped: Promise<number | null> | undefined;
  const stop = (timeoutMs = 40_000): Promise<number | null> => {
    stopped ??= (async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      if (process.env.JFE_TEST_DEBUG) process.stderr.write(runSync('ip', ['netns', 'exec', w.srv.name, 'ss', '-tnp']).stdout);
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    })();
    return stopped;
  };
  w.cleanup.add('detach after jfe', () => runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]));
  w.cleanup.add('stop jfe', () => stop());

  for (let slot = 0; slot < workers; slot++) {
    await waitForLog((l) => l.msg === 'worker registered' && l.slot === slot);
  }
  const caFile = path.join(w.tmp, 'jfe-ca.pem');
  fs.writeFileSync(caFile, runSync(BIN.jfe, ['ca', 'export', '--state-dir', stateDir]).stdout);
  return { proc, logs, stateDir, caFile, stop, waitForLog };
}

// SPDX-License-Identifier: MIT
// npm run test:sanitize loads this into every Node process of its run
// (NODE_OPTIONS=--require): the ASan runtime is preloaded (LD_PRELOAD) into
// Node processes only, which may load the sanitized addon, and kept out of
// every other program the tests start: curl, for one, hangs with libasan
// preloaded (Debian 12). So this process's LD_PRELOAD is moved out of its
// environment, and given back to a child only when that child runs Node:
// process.execPath or one of the checkout's bins, directly or through a
// wrapper (ip netns exec, setpriv, unshare: those get it too, harmlessly).
import childProcess from 'node:child_process';
import path from 'node:path';

/** Where scripts/test-sanitize.sh puts the runtime's libraries (LD_PRELOAD's value). */
export const PRELOAD_ENV = 'JFESANITIZE_PRELOAD';
/** The directory scripts/test-sanitize.sh searches for reports afterwards. */
export const SANITIZE_LOGS_ENV = 'JFESANITIZE_LOGS';

const preload = process.env[PRELOAD_ENV];
if (preload) {
  delete process.env.LD_PRELOAD;
  const binDir = path.resolve(__dirname, '..', '..', '..', 'bin') + path.sep;
  const runsNode = (words: readonly unknown[]): boolean =>
    words.some((w) => typeof w === 'string' && (w === process.execPath || path.basename(w) === 'node' || path.resolve(w).startsWith(binDir)));

  // Every asynchronous child (spawn, fork, exec, execFile) is started here, with its environment as "K=V" pairs.
  type SpawnOptions = { file?: string; args?: string[]; envPairs?: string[] };
  const proto = childProcess.ChildProcess.prototype as unknown as { spawn(this: unknown, o: SpawnOptions): unknown };
  const spawn = proto.spawn;
  proto.spawn = function (this: unknown, o: SpawnOptions) {
    if (runsNode([o.file, ...(o.args ?? [])]) && o.envPairs) o.envPairs = [...o.envPairs.filter((p) => !p.startsWith('LD_PRELOAD=')), `LD_PRELOAD=${preload}`];
    return spawn.call(this, o);
  };

  // The synchronous ones: through the module's exports, which the tests' compiled code looks up at each call.
  const cp = childProcess as unknown as Record<string, (file: string, args?: unknown, opts?: unknown) => unknown>;
  for (const name of ['spawnSync', 'execFileSync'] as const) {
    const original = cp[name];
    if (!original) continue;
    cp[name] = function (file: string, args?: unknown, opts?: unknown) {
      if (!Array.isArray(args)) return original.call(this, file, args, opts);
      if (!runsNode([file, ...(args as unknown[])])) return original.call(this, file, args, opts);
      const o = (opts ?? {}) as { env?: NodeJS.ProcessEnv };
      return original.call(this, file, args, { ...o, env: { ...(o.env ?? process.env), LD_PRELOAD: preload } });
    };
  }
}

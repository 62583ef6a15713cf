// SPDX-License-Identifier: MIT
// The primary's workers, by generation: one child process per slot, restarted
// with backoff when it dies. An in-place reload starts a whole new generation
// beside the current one; once every new worker has registered its sockets,
// the old generation is retired: told to drain, and never restarted.
import { type ChildProcess, type StdioOptions, fork } from 'node:child_process';
import type { Logger } from '../log';

// Not JFE_…: that prefix is the settings' environment.
export const SLOT_ENV = 'JFEWORKER_SLOT';
/** Primary → worker: leave the slot, drain, exit. */
export const STOP_MESSAGE = 'jfe:stop';
/** Primary → worker: put your sockets back in your slot (a failed successor is rolled back). */
export const REGISTER_MESSAGE = 'jfe:register';
/** Worker → primary: my sockets are in my slot. */
export const READY_MESSAGE = 'jfe:ready';

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

export interface WorkerPoolOptions {
  slots: number;
  log: Logger;
  /** Called when any worker exits (its bypass entries are then stale). */
  onExit(pid: number, slot: number): void;
  /** Called with each new worker process, before it runs (e.g. to answer its requests). */
  onFork?(worker: ChildProcess): void;
  /** Every other message a worker sends (for whoever needs them, e.g. metrics). */
  onMessage?(slot: number, message: unknown, worker: ChildProcess): void;
  /**
   * What a worker about to be forked is given besides its slot: variables and
   * one fd (at stdio index 4), and what to do once it has exited.
   */
  share?(slot: number): { env: Record<string, string>; fd: number; exited(): void } | null;
}

export class WorkerPool {
  private current = new Map<number, ChildProcess>();
  private readonly retired = new Set<ChildProcess>();
  /** Every worker process not yet exited: current, retired, and a generation still starting. */
  private readonly live = new Set<ChildProcess>();
  private readonly restartDelay = new Map<number, number>();
  private stopping = false;
  private gen = 0;

  constructor(private readonly opts: WorkerPoolOptions) {}

  /** The current generation: 0 before the first promote, 1 for the workers a start promoted, one more per reload. */
  get generation(): number {
    return this.gen;
  }

  /** Sends `message` to every worker of the current generation (SIGHUP's settings and certificate reload). */
  broadcast(message: unknown): void {
    for (const w of this.current.values()) if (w.connected) w.send(message as object);
  }

  /** Every live worker, current and draining. */
  get size(): number {
    return this.live.size;
  }

  /** Every live worker process, current and draining (metrics scrapes ask each). */
  children(): ChildProcess[] {
    return [...this.live];
  }

  /** The pids of the current generation, by slot. */
  pids(): number[] {
    return [...this.current.values()].map((w) => w.pid ?? 0);
  }

  /**
   * Starts a full generation and resolves once each of its workers is
   * registered; rejects (having killed the new workers) when one dies first
   * or the time is up. The previous generation keeps serving until retired.
   */
  async startGeneration(timeoutMs: number): Promise<Map<number, ChildProcess>> {
    const gen = new Map<number, ChildProcess>();
    const ready = Array.from({ length: this.opts.slots }, (_, slot) => {
      const w = this.fork(slot, gen);
      return new Promise<void>((resolve, reject) => {
        w.on('message', (m) => m === READY_MESSAGE && resolve());
        w.once('exit', (code, signal) => reject(new Error(`worker for slot ${slot} exited before it registered (code ${code}, signal ${signal})`)));
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`workers not registered within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all(ready), timeout]);
    } catch (err) {
      for (const w of gen.values()) {
        this.retired.add(w);
        w.kill('SIGKILL');
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return gen;
  }

  /** Makes `gen` the current generation; the previous one drains and is not restarted. */
  promote(gen: Map<number, ChildProcess>): void {
    for (const w of this.current.values()) {
      this.retired.add(w);
      w.send(STOP_MESSAGE);
    }
    this.current = gen;
    this.gen++;
  }

  /** After a failed reload: the current workers take their slots back. */
  reregister(): void {
    for (const w of this.current.values()) w.send(REGISTER_MESSAGE);
  }

  /** Tells every worker to drain; resolves when all have exited, killing them after hardStopMs. */
  stop(hardStopMs: number): Promise<void> {
    this.stopping = true;
    // Including a generation still starting (a stop during a reload): it may hold slots already.
    for (const w of this.live) if (w.connected) w.send(STOP_MESSAGE);
    const hard = setTimeout(() => {
      for (const w of this.live) w.kill('SIGKILL');
    }, hardStopMs);
    return new Promise((resolve) => {
      const check = setInterval(() => {
        if (this.size > 0) return;
        clearInterval(check);
        clearTimeout(hard);
        resolve();
      }, 50);
    });
  }

  private fork(slot: number, gen: Map<number, ChildProcess>): ChildProcess {
    const [script = '', ...args] = process.argv.slice(1);
    const share = this.opts.share?.(slot) ?? null;
    const stdio: StdioOptions = share === null ? 'inherit' : ['inherit', 'inherit', 'inherit', 'ipc', share.fd];
    // --expose-gc: a worker collects once a flood of names is over (daemon/reclaim.ts): the
    // dropped TLS contexts' OpenSSL memory, which V8 does not see and so would not collect for
    // it in an idle worker, and the young generation the flood grew.
    const execArgv = process.execArgv.includes('--expose-gc') ? process.execArgv : [...process.execArgv, '--expose-gc'];
    const w = fork(script, args, { env: { ...process.env, [SLOT_ENV]: String(slot), ...share?.env }, stdio, execArgv });
    // A worker that never ran (spawn failed) has no 'exit' to free its share.
    if (w.pid === undefined) w.once('error', () => share?.exited());
    gen.set(slot, w);
    this.live.add(w);
    this.opts.onFork?.(w);
    const startedAt = Date.now();
    const pid = w.pid;
    w.on('message', (m) => {
      if (m !== READY_MESSAGE) this.opts.onMessage?.(slot, m, w);
    });
    // A send to a worker that just died must not throw out of the primary.
    w.on('error', (err) => this.opts.log.warn({ err, slot }, 'worker channel error'));
    w.on('exit', (code, signal) => {
      share?.exited();
      this.live.delete(w);
      if (pid !== undefined) this.opts.onExit(pid, slot);
      if (this.retired.delete(w)) return;
      if (gen.get(slot) === w) gen.delete(slot);
      if (this.stopping || gen !== this.current) return;
      // A worker that ran a while restarts at once; one that keeps dying backs off.
      const delay = Date.now() - startedAt > RESTART_MAX_MS ? RESTART_MIN_MS : Math.min((this.restartDelay.get(slot) ?? RESTART_MIN_MS / 2) * 2, RESTART_MAX_MS);
      this.restartDelay.set(slot, delay);
      this.opts.log.error({ slot, code, signal, restartInMs: delay }, 'worker exited; restarting it');
      // Not unref'd: with every worker dead, this timer is what keeps the primary alive.
      setTimeout(() => {
        if (!this.stopping && gen === this.current && !gen.has(slot)) this.fork(slot, gen);
      }, delay);
    });
    return w;
  }
}

// SPDX-License-Identifier: MIT
// What a SIGHUP may change in a running agent. A new configuration is split
// into the settings applied live and those that need a restart (kept at their
// running values). Settings not listed here (including ones added later) are
// restart-only: that is the safe default.
import { JfeError } from '../errors';
import type { Logger } from '../log';

/** Applied on SIGHUP: the primary (ports, listeners poll) and the workers (the rest, for new connections). */
export const LIVE_SETTINGS: ReadonlySet<string> = new Set([
  'logLevel',
  'verbose',
  'ports',
  'excludePorts',
  'idleTimeout',
  'helloTimeout',
  'probeTimeout',
  'maxConnections',
  'maxConnectionsPerClient',
  'drainTimeout',
  'listenersInterval',
]);

export interface ReloadPlan<S extends object> {
  /** The settings to run with from now: live ones from the new configuration, the others as they were. */
  next: S;
  live: string[];
  needRestart: string[];
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function planReload<S extends object>(running: S, loaded: S): ReloadPlan<S> {
  const next: Record<string, unknown> = { ...(running as Record<string, unknown>) };
  const live: string[] = [];
  const needRestart: string[] = [];
  const keys = new Set([...Object.keys(running), ...Object.keys(loaded)]);
  for (const k of keys) {
    const a = (running as Record<string, unknown>)[k];
    const b = (loaded as Record<string, unknown>)[k];
    if (same(a, b)) continue;
    if (LIVE_SETTINGS.has(k)) {
      next[k] = b;
      live.push(k);
    } else needRestart.push(k);
  }
  return { next: Object.freeze(next) as S, live, needRestart };
}

/** The messages the primary sends its workers over the IPC channel. */
export type WorkerMessage = { type: 'jfe:settings'; settings: Record<string, unknown> } | { type: 'jfe:reload-certs' };

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && ((m as { type?: unknown }).type === 'jfe:settings' || (m as { type?: unknown }).type === 'jfe:reload-certs');
}

/** Runs reloads one at a time; a SIGHUP during a reload runs one more afterwards. */
export function serialised(fn: () => Promise<void>, log: Logger): () => void {
  let running = false;
  let again = false;
  const go = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    void fn()
      .catch((err: unknown) => log.error({ err: err instanceof JfeError ? err.message : err }, 'reload failed; keeping the running configuration'))
      .finally(() => {
        running = false;
        if (again) {
          again = false;
          go();
        }
      });
  };
  return go;
}

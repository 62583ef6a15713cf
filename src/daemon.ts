// SPDX-License-Identifier: MIT
// The composition root of `jfe run`. The primary process attaches the
// steering, keeps the listeners map current and supervises one worker process
// per slot; each worker owns its listening sockets and connections. Workers
// are plain child processes running the same command (not node:cluster,
// which would route their listen() through the primary).
import { type ChildProcess, fork } from 'node:child_process';
import os from 'node:os';
import { Agent, type AgentEvents } from './agent/agent';
import { NO_EVENTS } from './agent/connection';
import { ALL_DIALOGUES } from './agent/upgrades';
import { parseUpgradePorts } from './agent/upgrades/registry';
import { ListenersSync } from './bpf/listeners-sync';
import { requireSteeringCaps } from './bpf/privileges';
import { attach, openSteering, type SteeringOptions } from './bpf/steering';
import { openCertManager } from './certs/cert-manager';
import { InternalCa } from './certs/internal-ca';
import { StateDir } from './certs/state-dir';
import type { Settings } from './config/load';
import { resolvePortSet } from './config/ports';
import type { Logger } from './log';
import { ACME_OPTION_NAMES, AcmeOwner, openAcmeWorker, validateAcmeSettings } from './daemon/acme';

export const RUN_OPTION_NAMES = [
  'pinDir', 'runDir', 'ports', 'excludePorts', 'mark', 'table', 'rulePriority',
  'stateDir', 'workers', 'upstreamSource', 'idleTimeout', 'helloTimeout', 'maxConnections',
  'drainTimeout', 'probeTimeout', 'tlsProbeTtl', 'listenersInterval', 'logLevel', 'verbose',
  'upgrades', 'upgradeTimeout', ...ACME_OPTION_NAMES,
] as const;
export type RunSettings = Settings<(typeof RUN_OPTION_NAMES)[number]>;

// Not JFE_…: that prefix is the settings' environment.
const SLOT_ENV = 'JFEWORKER_SLOT';
const STOP_MESSAGE = 'jfe:stop';
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function workerCount(s: RunSettings): number {
  return s.workers > 0 ? s.workers : Math.max(1, os.availableParallelism());
}

function steeringOptions(s: RunSettings): SteeringOptions {
  return { netnsPath: undefined, pinDir: s.pinDir, runDir: s.runDir, mark: s.mark, table: s.table, priority: s.rulePriority };
}

/** Runs the agent until SIGTERM or SIGINT; resolves with the exit code. */
export function runDaemon(s: RunSettings, log: Logger): Promise<number> {
  const slot = process.env[SLOT_ENV];
  if (slot === undefined) return runPrimary(s, log.child({ role: 'primary' }));
  return runWorker(s, Number(slot), log.child({ role: 'worker', slot: Number(slot) }));
}

async function runPrimary(s: RunSettings, log: Logger): Promise<number> {
  requireSteeringCaps();
  const ports = resolvePortSet(s.ports, s.excludePorts);
  parseUpgradePorts(s.upgrades, ALL_DIALOGUES); // a bad spec fails here, before anything is touched
  validateAcmeSettings(s);
  const attached = attach({ ...steeringOptions(s), ports }, log);
  log.info({ state: attached.state, ports: attached.ports, linkId: attached.linkId }, 'steering ready');
  const maps = openSteering({ pinDir: s.pinDir });
  // The root is created here, once, before any worker could race to create it.
  const stateDir = await StateDir.open(s.stateDir, log);
  const ca = await InternalCa.open({ stateDir, log });
  log.info({ caExpires: ca.rootNotAfter.toISOString() }, 'internal CA ready');
  const acme = s.issuer === 'acme' ? await AcmeOwner.open(s, stateDir, log) : null;

  const removed = maps.removeBypassOf((pid) => !processAlive(pid));
  if (removed > 0) log.warn({ removed }, 'removed bypass entries left by agents that died');

  const sync = new ListenersSync(maps, log.child({ component: 'listeners' }));
  sync.start(s.listenersInterval);
  acme?.onPendingPorts((ports) => sync.setPinned(ports));

  const n = workerCount(s);
  maps.setSlotCount(n);
  let stopping = false;
  const workers = new Map<number, ChildProcess>();
  const restartDelay = new Map<number, number>();

  const startWorker = (slot: number): void => {
    const [script = '', ...args] = process.argv.slice(1);
    const w = fork(script, args, { env: { ...process.env, [SLOT_ENV]: String(slot) }, stdio: 'inherit' });
    workers.set(slot, w);
    acme?.serve(w, log);
    const startedAt = Date.now();
    const pid = w.pid;
    w.on('exit', (code, signal) => {
      workers.delete(slot);
      if (pid !== undefined) {
        const removed = maps.removeBypassOf((owner) => owner === pid);
        if (removed > 0) log.warn({ slot, removed }, 'removed the bypass entries of a dead worker');
      }
      if (stopping) return;
      // A worker that ran a while restarts at once; one that keeps dying backs off.
      const delay = Date.now() - startedAt > RESTART_MAX_MS ? RESTART_MIN_MS : Math.min((restartDelay.get(slot) ?? RESTART_MIN_MS / 2) * 2, RESTART_MAX_MS);
      restartDelay.set(slot, delay);
      log.error({ slot, code, signal, restartInMs: delay }, 'worker exited; restarting it');
      // Not unref'd: with every worker dead, this timer is what keeps the primary alive.
      setTimeout(() => !stopping && startWorker(slot), delay);
    });
  };
  for (let slot = 0; slot < n; slot++) startWorker(slot);
  log.info({ workers: n, pid: process.pid }, 'jfe running');

  return new Promise((resolve) => {
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, drainMs: s.drainTimeout }, 'stopping: draining connections');
      sync.stop();
      for (const w of workers.values()) w.send(STOP_MESSAGE);
      const hardStop = setTimeout(() => {
        for (const w of workers.values()) w.kill('SIGKILL');
      }, s.drainTimeout + 5000);
      const check = setInterval(() => {
        if (workers.size > 0) return;
        clearInterval(check);
        clearTimeout(hardStop);
        maps.close();
        log.info({}, 'stopped; traffic goes straight to the services');
        resolve(0);
      }, 50);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

/** Counts kept by a worker until metrics/ takes over these hooks. */
function loggingEvents(log: Logger): AgentEvents {
  return {
    ...NO_EVENTS,
    refused: () => undefined,
    collision: () => log.debug({}, 'upstream source port collided with a client connection; picked another'),
  };
}

async function runWorker(s: RunSettings, slot: number, log: Logger): Promise<number> {
  const maps = openSteering({ pinDir: s.pinDir });
  const { manager, store } = await openCertManager({ stateDir: s.stateDir, log });
  const acme = s.issuer === 'acme' ? openAcmeWorker(s, { store, internal: manager, log }) : null;
  const n = workerCount(s);
  const agent = new Agent(
    {
      slot,
      backlog: 4096,
      maxConnections: Math.ceil(s.maxConnections / n),
      upstreamSource: s.upstreamSource,
      mark: s.mark,
      idleTimeoutMs: s.idleTimeout,
      helloTimeoutMs: s.helloTimeout,
      probeTimeoutMs: s.probeTimeout,
      tlsProbeTtlMs: s.tlsProbeTtl,
      upgradeTimeoutMs: s.upgradeTimeout,
      upgradePorts: parseUpgradePorts(s.upgrades, ALL_DIALOGUES),
    },
    { steering: maps, certs: acme?.certs ?? manager, ...(acme ? { challenges: acme.challenges } : {}), events: loggingEvents(log), log },
  );
  await agent.start();
  return new Promise((resolve) => {
    let stopping = false;
    const stop = async (): Promise<void> => {
      if (stopping) return;
      stopping = true;
      await agent.stop(s.drainTimeout);
      maps.close();
      resolve(0);
    };
    process.on('message', (m) => {
      if (m === STOP_MESSAGE) void stop();
    });
    // SIGTERM to the whole group (systemd): drain like the primary says to.
    process.on('SIGTERM', () => void stop());
    process.on('SIGINT', () => undefined);
    // The primary is gone (killed): exit, so our sockets close and traffic fails open.
    process.on('disconnect', () => process.exit(0));
  });
}

/** The internal CA's root certificate (created if this is the first use), for `jfe ca export`. */
export async function exportCaRoot(stateDir: string, log: Logger): Promise<string> {
  const ca = await InternalCa.open({ stateDir: await StateDir.open(stateDir, log), log });
  return ca.rootPem();
}

// SPDX-License-Identifier: MIT
// The composition root of `jfe run`. The primary process attaches the
// steering, keeps the listeners map current and supervises one worker process
// per slot; each worker owns its listening sockets and connections. Workers
// are plain child processes running the same command (not node:cluster,
// which would route their listen() through the primary).
import fs from 'node:fs';
import os from 'node:os';
import { Agent } from './agent/agent';
import { ALL_DIALOGUES } from './agent/upgrades';
import { parseUpgradePorts } from './agent/upgrades/registry';
import { ListenersSync } from './bpf/listeners-sync';
import { requireSteeringCaps } from './bpf/privileges';
import { attach, openSteering, type SteeringOptions } from './bpf/steering';
import { openCertManager } from './certs/cert-manager';
import { InternalCa } from './certs/internal-ca';
import { StateDir } from './certs/state-dir';
import type { CertStore } from './certs/store';
import type { Settings } from './config/load';
import { openFilesNeeded } from './config/open-files';
import { resolvePortSet } from './config/ports';
import { type LogLevel, type Logger, setLogLevel } from './log';
import { ACME_OPTION_NAMES, AcmeOwner, openAcmeWorker, validateAcmeSettings } from './daemon/acme';
import { ReloadableCertSource } from './daemon/cert-reload';
import { type WorkerMessage, isWorkerMessage, planReload, serialised } from './daemon/reload';
import { excludeMetricsPort, startPrimaryMetrics, startWorkerMetrics } from './daemon/metrics';
import { agentRecordPath, processStartTime, readAgentRecord, readLiveAgent, removeAgentRecordIfMine, writeAgentRecord } from './daemon/agent-record';
import { ReclaimSchedule, reclaimMemory } from './daemon/reclaim';
import { applySlotCount } from './daemon/slots';
import { acquireTakeoverLock } from './daemon/takeover-lock';
import { HostConnectionTable, openWorkerCounter } from './daemon/conn-table';
import { READY_MESSAGE, REGISTER_MESSAGE, SLOT_ENV, STOP_MESSAGE, WorkerPool } from './daemon/worker-pool';
import { JfeError } from './errors';
import { native } from './native';

export const RUN_OPTION_NAMES = [
  'pinDir', 'runDir', 'ports', 'excludePorts', 'mark', 'table', 'rulePriority',
  'stateDir', 'workers', 'upstreamSource', 'upstreamPorts', 'idleTimeout', 'helloTimeout', 'maxConnections', 'maxConnectionsPerClient',
  'drainTimeout', 'probeTimeout', 'tlsProbeTtl', 'certCacheIdle', 'maxStoredCerts', 'listenersInterval', 'logLevel', 'verbose',
  'upgrades', 'upgradeTimeout', ...ACME_OPTION_NAMES, 'metricsListen',
] as const;
export type RunSettings = Settings<(typeof RUN_OPTION_NAMES)[number]>;

/** How long a new generation of workers may take to register before the start (or reload) is abandoned. */
const REGISTER_TIMEOUT_MS = 60_000;

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

/**
 * The soft open-files limit up to the hard one, in every process (a worker's
 * limit is its own): two fds per connection, and a login shell's soft 1024
 * would cap a worker near 500 connections. Node raises it at start too
 * (undocumented); this makes it a promise, logged once by the primary.
 */
function raiseOpenFiles(s: RunSettings, log: Logger, primary: boolean): void {
  let limits: { soft: number; hard: number };
  try {
    limits = native().raiseNofileLimit();
  } catch (err) {
    log.warn({ err }, 'could not raise the open files limit to its hard limit');
    return;
  }
  if (!primary) return;
  const needed = openFilesNeeded(s.maxConnections);
  if (limits.soft >= needed) log.info({ ...limits, needed }, 'open files limit');
  else log.warn({ ...limits, needed, maxConnections: s.maxConnections }, 'open files limit below what --max-connections needs: raise the hard limit (systemd: LimitNOFILE=) or lower --max-connections; see jfe doctor');
}

/** Runs the agent until SIGTERM or SIGINT; resolves with the exit code. */
export function runDaemon(s: RunSettings, root: Logger, reload?: () => RunSettings): Promise<number> {
  const slot = process.env[SLOT_ENV];
  if (slot === undefined) {
    const log = root.child({ role: 'primary' });
    raiseOpenFiles(s, log, true);
    return runPrimary(s, root, log, reload);
  }
  const log = root.child({ role: 'worker', slot: Number(slot) });
  raiseOpenFiles(s, log, false);
  return runWorker(s, Number(slot), root, log);
}

/** The settings the primary validated, as JSON: a worker never reads the config file itself. */
const SETTINGS_ENV = 'JFEWORKER_SETTINGS';

/** In a worker: the settings its primary runs with (so a worker restarted after a SIGHUP gets the current ones). */
export function workerSettings(): RunSettings | undefined {
  const json = process.env[SLOT_ENV] === undefined ? undefined : process.env[SETTINGS_ENV];
  return json === undefined ? undefined : (Object.freeze(JSON.parse(json)) as RunSettings);
}

export const logLevelOf = (s: RunSettings): LogLevel => (s.verbose ? 'debug' : s.logLevel);

async function runPrimary(s: RunSettings, root: Logger, log: Logger, reloadSettings?: () => RunSettings): Promise<number> {
  // Until the SIGHUP reload below is ready, a SIGHUP must not kill us (its default action).
  let onHangup = (): void => undefined;
  process.on('SIGHUP', () => onHangup());
  // Workers get the settings the primary runs with (see workerSettings).
  process.env[SETTINGS_ENV] = JSON.stringify(s);
  requireSteeringCaps();
  const ports = resolvePortSet(s.ports, excludeMetricsPort(s.excludePorts, s.metricsListen));
  parseUpgradePorts(s.upgrades, ALL_DIALOGUES); // a bad spec fails here, before anything is touched
  validateAcmeSettings(s);
  // Before the steering: a metrics address in use stops jfe with nothing touched,
  // unless a running agent holds it (a takeover): it frees it when it drains.
  const previousAgent = readLiveAgent(agentRecordPath(s.runDir, fs.statSync('/proc/self/ns/net').ino));
  const metrics = await startPrimaryMetrics(s.metricsListen, log, { waitForPrevious: previousAgent !== null });
  // The state directory and the CA before the steering: a state directory that
  // cannot be used fails the start with nothing attached. The root is created
  // here, once, before any worker could race to create it.
  const stateDir = await StateDir.open(s.stateDir, log);
  const ca = await InternalCa.open({ stateDir, log });
  const attached = attach({ ...steeringOptions(s), ports }, log);
  log.info({ state: attached.state, ports: attached.ports, linkId: attached.linkId }, 'steering ready');
  const maps = openSteering({ pinDir: s.pinDir });
  log.info({ caExpires: ca.rootNotAfter.toISOString() }, 'internal CA ready');
  const acme = s.issuer === 'acme' ? await AcmeOwner.open(s, stateDir, log, metrics.certEvents) : null;

  const removed = maps.removeBypassOf((pid) => !processAlive(pid));
  if (removed > 0) log.warn({ removed }, 'removed bypass entries left by agents that died');

  const sync = new ListenersSync(maps, log.child({ component: 'listeners' }));
  sync.start(s.listenersInterval);
  acme?.onPendingPorts((ports) => sync.setPinned(ports));

  const n = workerCount(s);
  // The connection counts of the host, shared by every worker (daemon/conn-table.ts).
  const connTable = HostConnectionTable.create(s.maxConnections, n);
  const pool = new WorkerPool({
    slots: n,
    log,
    onFork: (w) => acme?.serve(w, log),
    share: (slot) => {
      const share = connTable.forWorker();
      if (share === null) log.warn({ slot }, 'no column of the connection counts left (too many workers at once): this worker counts its own connections only');
      return share;
    },
    onExit: (pid, slot) => {
      const removed = maps.removeBypassOf((owner) => owner === pid);
      if (removed > 0) log.warn({ slot, removed }, 'removed the bypass entries of a dead worker');
    },
  });
  const recordFile = agentRecordPath(s.runDir, attached.netnsIno);
  // generation: which set of workers serves, counted from 1 (those started now); see AgentRecord.
  const record = { pid: process.pid, startTime: processStartTime(process.pid) ?? '', generation: 1, reloads: 0, slots: n };

  // Take over from the agent already running here, if any: our workers
  // replace its sockets in the slots, then it is told to drain. Until our
  // workers are registered it serves alone; if they never are, it goes on.
  const release = await acquireTakeoverLock(s.runDir, attached.netnsIno, REGISTER_TIMEOUT_MS);
  try {
    const previous = readLiveAgent(recordFile);
    try {
      pool.promote(await pool.startGeneration(REGISTER_TIMEOUT_MS));
    } catch (err) {
      sync.stop();
      await pool.stop(0);
      maps.close();
      // Some of ours may have replaced its sockets before one failed: a reload
      // of the previous agent puts fresh sockets of its own in every slot.
      if (previous) process.kill(previous.pid, 'SIGUSR2');
      const keeps = previous ? `; the running agent (pid ${previous.pid}) keeps serving (asked to reload to take its slots back)` : '';
      throw new JfeError('JFE_ERR_TAKEOVER', `workers failed to start: ${(err as Error).message}${keeps}`, { cause: err });
    }
    const cleared = applySlotCount(maps, n);
    record.generation = pool.generation;
    writeAgentRecord(recordFile, record);
    if (previous) {
      log.info({ previousPid: previous.pid, previousSlots: previous.slots, cleared }, 'took over the slots; telling the previous agent to drain');
      try {
        process.kill(previous.pid, 'SIGTERM');
      } catch (err) {
        log.warn({ err, previousPid: previous.pid }, 'previous agent already gone');
      }
    }
  } finally {
    release();
  }
  metrics.connect({ maps, pinDir: s.pinDir, netnsIno: attached.netnsIno, slots: n, workers: () => pool.children() });
  log.info({ workers: n, pid: process.pid }, 'jfe running');

  let stopping = false;
  let reloading = false;
  // In-place reload (SIGUSR2): a new generation of workers, running the code
  // now on disk, takes the slots over; the old one drains. The primary's pid
  // does not change, so systemd keeps tracking it.
  const reload = async (): Promise<void> => {
    if (stopping || reloading) return;
    reloading = true;
    const release = await acquireTakeoverLock(s.runDir, attached.netnsIno, REGISTER_TIMEOUT_MS).catch((err: unknown) => {
      log.error({ err }, 'reload: could not take the takeover lock; keeping the current workers');
      return null;
    });
    record.reloads++;
    try {
      if (!release) throw new Error('takeover lock busy');
      log.info({ generation: pool.generation + 1 }, 'reloading: starting a new generation of workers');
      const gen = await pool.startGeneration(REGISTER_TIMEOUT_MS);
      if (stopping) throw new Error('stopping');
      pool.promote(gen);
      applySlotCount(maps, n);
      record.generation = pool.generation;
      delete (record as { lastReloadError?: string }).lastReloadError;
      log.info({ generation: pool.generation, workers: pool.pids() }, 'reloaded: the previous workers drain');
    } catch (err) {
      // Some new workers may have registered before one failed: give the slots back.
      pool.reregister();
      (record as { lastReloadError?: string }).lastReloadError = (err as Error).message;
      log.error({ err }, 'reload failed; the current workers keep serving');
    } finally {
      if (readAgentRecord(recordFile)?.pid === process.pid) writeAgentRecord(recordFile, record);
      release?.();
      reloading = false;
    }
  };
  process.on('SIGUSR2', () => void reload());

  // SIGHUP: read the configuration again, apply what can change live, and
  // have the workers reload their certificates. A bad configuration is one
  // error line; everything keeps running as it was.
  const tell = (m: WorkerMessage): void => pool.broadcast(m);
  onHangup = serialised(async () => {
    if (stopping) return;
    log.info({}, 'SIGHUP: reloading configuration and certificates');
    if (reloadSettings) {
      const plan = planReload(s, reloadSettings());
      const nextPorts = plan.live.some((k) => k === 'ports' || k === 'excludePorts') ? resolvePortSet(plan.next.ports, plan.next.excludePorts) : undefined;
      if (plan.needRestart.length > 0) log.warn({ settings: plan.needRestart }, 'changed settings need a restart; keeping their running values');
      if (nextPorts) maps.setPorts(nextPorts);
      s = plan.next;
      process.env[SETTINGS_ENV] = JSON.stringify(s);
      setLogLevel(root, logLevelOf(s));
      if (plan.live.includes('listenersInterval')) sync.setPollInterval(s.listenersInterval);
      tell({ type: 'jfe:settings', settings: { ...s } });
      log.info({ changed: plan.live, ports: nextPorts?.toString() }, 'configuration reloaded');
    }
    // The CA first (made again if an operator removed it), then each worker's store.
    try {
      await InternalCa.open({ stateDir: await StateDir.open(s.stateDir, log), log });
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : err }, 'certificate reload failed; keeping the loaded certificates');
      return;
    }
    tell({ type: 'jfe:reload-certs' });
  }, log);

  return new Promise((resolve) => {
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, drainMs: s.drainTimeout }, 'stopping: draining connections');
      sync.stop();
      // Free the metrics address at once, for a successor that starts while we drain.
      void metrics.close();
      const superseded = readAgentRecord(recordFile)?.pid !== process.pid;
      removeAgentRecordIfMine(recordFile);
      void pool.stop(s.drainTimeout + 5000).then(() => {
        maps.close();
        log.info({}, superseded ? 'stopped; a successor serves' : 'stopped; traffic goes straight to the services');
        resolve(0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

async function runWorker(s: RunSettings, slot: number, root: Logger, log: Logger): Promise<number> {
  const maps = openSteering({ pinDir: s.pinDir });
  const wm = startWorkerMetrics(log);
  // SIGHUP reopens the whole certificate side from the state directory.
  let store: CertStore | undefined;
  const openCerts = async () => {
    const opened = await openCertManager({ stateDir: s.stateDir, log, events: wm.certEvents, maxStoredPerIssuer: s.maxStoredCerts });
    const { manager } = opened;
    store = opened.store;
    const acme = s.issuer === 'acme' ? openAcmeWorker(s, { store: opened.store, internal: manager, log, events: wm.certEvents }) : null;
    return { certs: acme?.certs ?? manager, challenges: acme?.challenges };
  };
  const opened = await openCerts();
  const certs = new ReloadableCertSource(opened.certs, async () => (await openCerts()).certs, log);
  // After a flood of names: contexts nobody uses leave, and the memory the
  // flood took goes back to the kernel once it is over (reclaim.ts says what
  // stays otherwise, and why).
  const reclaim = new ReclaimSchedule(10);
  const sweep = setInterval(() => {
    if (reclaim.afterSweep(store?.dropIdleContexts(s.certCacheIdle) ?? 0)) reclaimMemory();
  }, Math.max(1000, s.certCacheIdle / 2));
  sweep.unref();
  const n = workerCount(s);
  // The host's counts; a worker given none (all columns taken) holds its even part of the caps alone.
  const shared = openWorkerCounter(process.env);
  const part = (max: number): number => (shared === null ? Math.ceil(max / n) : max);
  const agent = new Agent(
    {
      slot,
      backlog: 4096,
      maxConnections: part(s.maxConnections),
      maxConnectionsPerClient: part(s.maxConnectionsPerClient),
      upstreamSource: s.upstreamSource,
      upstreamPorts: s.upstreamPorts,
      mark: s.mark,
      idleTimeoutMs: s.idleTimeout,
      helloTimeoutMs: s.helloTimeout,
      probeTimeoutMs: s.probeTimeout,
      tlsProbeTtlMs: s.tlsProbeTtl,
      upgradeTimeoutMs: s.upgradeTimeout,
      upgradePorts: parseUpgradePorts(s.upgrades, ALL_DIALOGUES),
    },
    { steering: maps, certs, ...(opened.challenges ? { challenges: opened.challenges } : {}), events: wm.agentEvents, log, ...(shared ? { counter: shared } : {}) },
  );
  await agent.start();
  wm.serve(
    () => agent.activeConnections,
    () => agent.flushBytes(),
  );
  process.send?.(READY_MESSAGE);
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
      if (m === REGISTER_MESSAGE && !stopping) agent.register();
      if (!isWorkerMessage(m)) return;
      if (m.type === 'jfe:reload-certs') void certs.reload();
      if (m.type === 'jfe:settings') {
        s = Object.freeze({ ...s, ...m.settings }) as RunSettings;
        setLogLevel(root, logLevelOf(s));
        agent.reconfigure({
          idleTimeoutMs: s.idleTimeout,
          helloTimeoutMs: s.helloTimeout,
          probeTimeoutMs: s.probeTimeout,
          maxConnections: part(s.maxConnections),
          maxConnectionsPerClient: part(s.maxConnectionsPerClient),
        });
        log.info({}, 'settings updated by the primary');
      }
    });
    // SIGHUP is the primary's (it tells us); a signal to the whole group must not kill a worker.
    process.on('SIGHUP', () => undefined);
    // SIGTERM to the whole group (systemd): drain like the primary says to.
    process.on('SIGTERM', () => void stop());
    process.on('SIGINT', () => undefined);
    // The primary is gone (killed): leave the slot and drain like a stop, so new
    // connections fail open to the services and the ones in flight finish. An
    // abrupt exit would reset the connections still in the accept queue.
    process.on('disconnect', () => {
      log.warn({}, 'the primary is gone; draining and exiting');
      void stop().then(() => process.exit(0));
    });
  });
}

/** The internal CA's root certificate (created if this is the first use), for `jfe ca export`. */
export async function exportCaRoot(stateDir: string, log: Logger): Promise<string> {
  const ca = await InternalCa.open({ stateDir: await StateDir.open(stateDir, log), log });
  return ca.rootPem();
}

// SPDX-License-Identifier: MIT
// Wiring of ACME across processes: the primary owns the account, the policy
// and every order (one per name for the whole jfe); workers ask it over the
// fork IPC channel and read pending challenges from files in the run dir.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { ChallengeResponder } from '../agent/acme-challenges';
import { AcmeCertSource } from '../certs/acme/acme-cert-source';
import { AcmeIssuer, type ChallengeType, LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING, configureAcmeHttp } from '../certs/acme/acme-issuer';
import { AcmeOrders, type OrderReply } from '../certs/acme/acme-orders';
import { loadOrCreateAccountKey } from '../certs/acme/account-key';
import { CHALLENGES_DIR, ChallengeFiles, readChallengeFiles } from '../certs/acme/challenge-files';
import { type CertEvents, NO_CERT_EVENTS } from '../certs/cert-events';
import type { CertSource } from '../certs/cert-source';
import { createNamePolicy } from '../certs/policy';
import type { StateDir } from '../certs/state-dir';
import { CertStore } from '../certs/store';
import type { Settings } from '../config/load';
import { resolvePortSet } from '../config/ports';
import { JfeError } from '../errors';
import type { Logger } from '../log';
import { NAME_POLICY_OPTION_NAMES, namePolicyOptions } from './name-policy-settings';

export const ACME_OPTION_NAMES = [
  'issuer', 'acmeDirectory', 'staging', 'acmeEmail', 'acmeEabKid', 'acmeEabHmacKey', 'acmeFallbackDirectory',
  'acmeCaFile', 'issueWait', 'challenge', ...NAME_POLICY_OPTION_NAMES, 'acmeRetryMin', 'acmeRenewCheck', 'acmeClockOffset',
] as const;
type AcmeSettings = Settings<(typeof ACME_OPTION_NAMES)[number] | 'runDir' | 'ports' | 'excludePorts' | 'helloTimeout'>;

/** Time a handshake keeps, after the wait, to get the internal CA's certificate and finish. */
const FALLBACK_MARGIN_MS = 2000;

/**
 * The wait a handshake really gets: --issue-wait, but short enough that the
 * fallback certificate still arrives within --hello-timeout (which bounds the
 * whole handshake); otherwise a slow CA would cost the client its connection.
 */
export function effectiveIssueWaitMs(s: Pick<AcmeSettings, 'issueWait' | 'helloTimeout'>): number {
  return Math.max(0, Math.min(s.issueWait, s.helloTimeout - FALLBACK_MARGIN_MS));
}

const ORDER_MESSAGE = 'jfe:acme-order';
const REPLY_MESSAGE = 'jfe:acme-reply';
/** A worker stops waiting for the primary after this long (the primary's own order timeout is shorter). */
const IPC_TIMEOUT_MS = 10 * 60_000;

interface OrderMessage {
  type: typeof ORDER_MESSAGE;
  id: number;
  name: string;
  dialledAddress: string;
  /** Whose share of the rate limits the order uses; null: a renewal. */
  clientAddress: string | null;
}
interface ReplyMessage {
  type: typeof REPLY_MESSAGE;
  id: number;
  reply: OrderReply;
}

function isOrderMessage(m: unknown): m is OrderMessage {
  const o = m as Partial<OrderMessage> | null;
  return typeof o === 'object' && o !== null && o.type === ORDER_MESSAGE && typeof o.id === 'number' && typeof o.name === 'string' && typeof o.dialledAddress === 'string' && (typeof o.clientAddress === 'string' || o.clientAddress === null);
}
function isReplyMessage(m: unknown): m is ReplyMessage {
  const o = m as Partial<ReplyMessage> | null;
  return typeof o === 'object' && o !== null && o.type === REPLY_MESSAGE && typeof o.id === 'number' && typeof o.reply === 'object';
}

function challengesDir(s: AcmeSettings): string {
  return path.join(s.runDir, CHALLENGES_DIR);
}

/** Which challenges may be used: pinned by --challenge, else those whose port is steered. */
export function challengeTypes(s: Pick<AcmeSettings, 'challenge' | 'ports' | 'excludePorts'>): ChallengeType[] {
  if (s.challenge !== 'auto') return [s.challenge];
  const ports = resolvePortSet(s.ports, s.excludePorts);
  const types: ChallengeType[] = [];
  if (ports.has(80)) types.push('http-01');
  if (ports.has(443)) types.push('tls-alpn-01');
  return types;
}

/** Config checks that need more than one setting; run before anything is touched. */
export function validateAcmeSettings(s: AcmeSettings): void {
  if (s.issuer !== 'acme') return;
  const bad = (msg: string): JfeError => new JfeError('JFE_ERR_CONFIG_INVALID', msg);
  if (s.staging && s.acmeDirectory !== '') throw bad('--staging and --acme-directory both name a directory: give one');
  if ((s.acmeEabKid === '') !== (s.acmeEabHmacKey === '')) throw bad('--acme-eab-kid and --acme-eab-hmac-key go together');
  if (challengeTypes(s).length === 0) throw bad('--issuer acme needs port 80 (http-01) or 443 (tls-alpn-01) among the steered ports');
  if (s.acmeCaFile !== '') {
    try {
      fs.accessSync(s.acmeCaFile, fs.constants.R_OK);
    } catch (err) {
      throw bad(`--acme-ca-file ${s.acmeCaFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
}

/** Startup notes on settings that were adjusted, not refused. */
export function logAcmeSettings(s: AcmeSettings, log: Logger): void {
  if (s.issuer !== 'acme') return;
  const wait = effectiveIssueWaitMs(s);
  if (wait < s.issueWait) log.info({ issueWaitMs: s.issueWait, helloTimeoutMs: s.helloTimeout, effectiveMs: wait }, 'issue wait shortened to fit within the hello timeout');
  if (s.domain.length === 0 && s.ask === '') log.warn({}, 'issuer acme with neither --domain nor --ask: every name gets the internal CA');
}

/** The primary's side: account, policy, issuers, orders; serves workers' requests. */
export class AcmeOwner {
  private constructor(
    private readonly orders: AcmeOrders,
    private readonly files: ChallengeFiles,
  ) {}

  /** `fn` is told the validation ports with a pending challenge, to steer them even when no service listens. */
  onPendingPorts(fn: (ports: number[]) => void): void {
    this.files.onPendingPorts = fn;
  }

  static async open(s: AcmeSettings, stateDir: StateDir, log: Logger, events: CertEvents = NO_CERT_EVENTS): Promise<AcmeOwner> {
    const acmeLog = log.child({ component: 'acme' });
    let extraCa: string | null = null;
    if (s.acmeCaFile !== '') {
      try {
        extraCa = await fsp.readFile(s.acmeCaFile, 'utf8');
      } catch (err) {
        throw new JfeError('JFE_ERR_CONFIG_INVALID', `--acme-ca-file ${s.acmeCaFile}: ${(err as Error).message}`, { cause: err });
      }
    }
    configureAcmeHttp(extraCa, acmeLog);
    const accountKeyPem = await loadOrCreateAccountKey(stateDir, acmeLog);
    const files = new ChallengeFiles(challengesDir(s));
    await files.open();
    const policy = createNamePolicy(namePolicyOptions(s), { log: acmeLog, events });
    const types = challengeTypes(s);
    const common = {
      accountKeyPem,
      email: s.acmeEmail === '' ? null : s.acmeEmail,
      eab: s.acmeEabKid === '' ? null : { kid: s.acmeEabKid, hmacKey: s.acmeEabHmacKey },
      challengeTypes: types,
      challenges: files,
      log: acmeLog,
      onOrder: (name: string) => policy.recordOrder(name),
    };
    const primaryUrl = s.acmeDirectory !== '' ? s.acmeDirectory : s.staging ? LETS_ENCRYPT_STAGING : LETS_ENCRYPT_PRODUCTION;
    const issuers = [new AcmeIssuer({ ...common, name: 'acme', directoryUrl: primaryUrl })];
    if (s.acmeFallbackDirectory !== '') issuers.push(new AcmeIssuer({ ...common, name: 'acme-fallback', directoryUrl: s.acmeFallbackDirectory }));
    // Writes only: the primary hands PEMs to workers and serves no handshake.
    const store = await CertStore.open({ stateDir, log: acmeLog, maxContexts: 1 });
    const offset = s.acmeClockOffset;
    const orders = new AcmeOrders({
      issuers, policy, store, stateDir, events, log: acmeLog,
      now: () => Date.now() + offset,
      retryMinMs: s.acmeRetryMin,
      retryMaxMs: 3_600_000,
    });
    orders.startRenewalTimer(s.acmeRenewCheck);
    logAcmeSettings(s, acmeLog);
    acmeLog.info({ directory: primaryUrl, fallback: s.acmeFallbackDirectory || null, challenges: types, domains: s.domain, ask: s.ask !== '' }, 'ACME ready');
    return new AcmeOwner(orders, files);
  }

  /** Answers a worker's order requests; a dead worker's replies are dropped. */
  serve(worker: ChildProcess, log: Logger): void {
    worker.on('message', (m: unknown) => {
      if (!isOrderMessage(m)) return;
      void this.orders.request(m.name, m.dialledAddress, m.clientAddress).then((reply) => {
        if (!worker.connected) return;
        const msg: ReplyMessage = { type: REPLY_MESSAGE, id: m.id, reply };
        worker.send(msg, (err) => err && log.debug({ err }, 'ACME reply to a worker that went away'));
      });
    });
  }
}

/** A worker's side: the CertSource over its store and the internal CA, and the challenge responder. */
export function openAcmeWorker(
  s: AcmeSettings,
  deps: { store: CertStore; internal: CertSource; log: Logger; events?: CertEvents },
): { certs: AcmeCertSource; challenges: ChallengeResponder } {
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: OrderReply) => void; timer: NodeJS.Timeout }>();
  process.on('message', (m: unknown) => {
    if (!isReplyMessage(m)) return;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    clearTimeout(p.timer);
    p.resolve(m.reply);
  });
  const requestOrder = (name: string, dialledAddress: string, clientAddress: string | null): Promise<OrderReply> =>
    new Promise((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve({ kind: 'error', message: 'the primary did not answer', retryInMs: 5000 });
      }, IPC_TIMEOUT_MS);
      pending.set(id, { resolve, timer });
      const msg: OrderMessage = { type: ORDER_MESSAGE, id, name, dialledAddress, clientAddress };
      process.send?.(msg);
    });
  const offset = s.acmeClockOffset;
  const certs = new AcmeCertSource({
    store: deps.store,
    internal: deps.internal,
    requestOrder,
    events: deps.events ?? NO_CERT_EVENTS,
    log: deps.log,
    issueWaitMs: effectiveIssueWaitMs(s),
    now: () => Date.now() + offset,
  });
  return { certs, challenges: readChallengeFiles(challengesDir(s)) };
}

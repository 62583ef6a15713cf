// SPDX-License-Identifier: MIT
// Issued leaves: on disk under <state>/certs/<issuer>/<name>/{cert.pem,key.pem}
// (capped per issuer, since names come from attackers), loaded at start, and
// a bounded LRU of SecureContexts, made once per certificate and reused for
// every handshake.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { JfeError, isSystemError } from '../errors';
import type { Logger } from '../log';
import { LogThrottle } from '../log-throttle';
import { type CertEvents, NO_CERT_EVENTS } from './cert-events';
import { fileSafeName, isIpName, nameFromFileSafe } from './cert-name';
import { ISSUER_NAME_RE, type IssuedCert } from './issuer';
import { type Claim, DiskSlots } from './disk-slots';
import { STALE_TEMP_MS, type StateDir, isTempName } from './state-dir';

export const CERTS_DIR = 'certs';
export const CERT_FILE = 'cert.pem';
export const KEY_FILE = 'key.pem';
export const DEFAULT_MAX_STORED_PER_ISSUER = 2000;
export const DEFAULT_MAX_CONTEXTS = 1000;

/** Options for every SecureContext (ciphers, curves, …); key and certificate come from the store. */
export type ContextOptions = Omit<tls.SecureContextOptions, 'key' | 'cert' | 'pfx' | 'passphrase'>;

export interface CertStoreOptions {
  stateDir: StateDir;
  log: Logger;
  /**
   * Leaves kept on disk per issuer, by every process sharing the state
   * directory together. Beyond it, new names are served from memory only (and
   * re-issued after a restart or eviction).
   */
  maxStoredPerIssuer?: number;
  /** SecureContexts kept in memory, least recently used evicted first. */
  maxContexts?: number;
  contextOptions?: ContextOptions;
  /** Reports the expiry of every certificate held (loaded or taken), for metrics. */
  events?: CertEvents;
  /** Milliseconds; injected by tests. */
  now?: () => number;
}

export interface CertInfo {
  issuer: string;
  /** The normalised name the certificate was issued for. */
  name: string;
  /** Hex, upper case, as node:crypto's X509Certificate prints it. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** False for a leaf issued beyond the disk cap (or whose write failed): it lives in memory only. */
  persisted: boolean;
}

export interface CertEntry {
  info: CertInfo;
  context: tls.SecureContext;
}

export interface CertStoreStats {
  /** Leaves on disk, per issuer. */
  stored: Record<string, number>;
  /** SecureContexts held in memory. */
  contexts: number;
  /** Leaves not written because the issuer's disk cap was reached. */
  notPersistedTotal: number;
  /** Writes that failed (the leaf was served from memory). */
  writeErrorsTotal: number;
  /** Entries skipped at load (half-written, mismatched, unparsable). */
  skippedAtLoadTotal: number;
}

interface Held {
  info: CertInfo;
  certPem: string;
  keyPem: string;
}

function keyOf(issuer: string, name: string): string {
  return `${issuer}/${name}`;
}

/**
 * Parses and cross-checks an issued leaf: the key matches, and the
 * certificate covers `name`. Guards the store against an issuer's mistake
 * and against files moved by hand.
 */
function inspect(issuer: string, name: string, certPem: string, keyPem: string, persisted: boolean): CertInfo {
  const leaf = new X509Certificate(certPem);
  if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) {
    throw new Error('private key does not match the certificate');
  }
  const covers = isIpName(name) ? leaf.checkIP(name) !== undefined : leaf.checkHost(name, { subject: 'never' }) !== undefined;
  if (!covers) {
    throw new Error(`certificate does not cover ${name}`);
  }
  return {
    issuer,
    name,
    serial: leaf.serialNumber.toUpperCase(),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    persisted,
  };
}

export class CertStore {
  private readonly log: Logger;
  private readonly maxStoredPerIssuer: number;
  private readonly maxContexts: number;
  private readonly contextOptions: ContextOptions;
  private readonly events: CertEvents;
  /** Leaves on disk, PEM kept in memory so a context miss never waits on the disk (bounded by the cap). */
  private readonly disk = new Map<string, Held>();
  /** Leaves on disk that this store knows of (loaded, written or adopted), per issuer: for stats. */
  private readonly storedPerIssuer = new Map<string, number>();
  private readonly slots: DiskSlots;
  /**
   * The LRU: a Map iterates in insertion order, so re-inserting on a hit moves an
   * entry to the end, and the entries are in the order of their last use.
   */
  private readonly contexts = new Map<string, { entry: CertEntry; usedAt: number }>();
  private readonly now: () => number;
  /** Names are attacker input: one warning per 10 minutes, with a count of the rest. */
  private readonly fullLog: LogThrottle;
  private notPersistedTotal = 0;
  private writeErrorsTotal = 0;
  private skippedAtLoadTotal = 0;

  private constructor(
    private readonly stateDir: StateDir,
    opts: CertStoreOptions,
  ) {
    this.log = opts.log.child({ component: 'cert-store' });
    this.maxStoredPerIssuer = opts.maxStoredPerIssuer ?? DEFAULT_MAX_STORED_PER_ISSUER;
    this.slots = new DiskSlots(this.maxStoredPerIssuer);
    this.maxContexts = Math.max(1, opts.maxContexts ?? DEFAULT_MAX_CONTEXTS);
    this.now = opts.now ?? Date.now;
    this.contextOptions = opts.contextOptions ?? {};
    this.events = opts.events ?? NO_CERT_EVENTS;
    this.fullLog = new LogThrottle(this.log, {
      level: 'warn',
      msg: 'certificate store full for this issuer; certificate kept in memory only',
      summaryMsg: 'more certificates kept in memory only (store full) than logged',
      perInterval: 1,
      intervalMs: 600_000,
    });
  }

  /** Opens <state>/certs/ and loads every stored leaf. Throws JFE_ERR_STATE when the directory cannot be used. */
  static async open(opts: CertStoreOptions): Promise<CertStore> {
    const store = new CertStore(opts.stateDir, opts);
    await store.load();
    return store;
  }

  /**
   * The hot path: the held leaf for (issuer, name) with its SecureContext, made
   * now if it fell out of the LRU. Undefined when none is held.
   */
  lookup(issuer: string, name: string): CertEntry | undefined {
    const key = keyOf(issuer, name);
    const hit = this.contexts.get(key);
    if (hit) {
      this.contexts.delete(key);
      hit.usedAt = this.now();
      this.contexts.set(key, hit);
      return hit.entry;
    }
    const held = this.disk.get(key);
    if (!held) return undefined;
    let context: tls.SecureContext;
    try {
      context = this.createContext(held.certPem, held.keyPem);
    } catch (err) {
      // Checked at load, so this is unexpected; forget the entry, and the caller issues anew.
      this.log.warn({ err, issuer, name }, 'stored certificate unusable; it will be issued again');
      this.disk.delete(key);
      this.adjustStored(issuer, -1);
      return undefined;
    }
    return this.remember(key, { info: held.info, context });
  }

  /**
   * A leaf another process of this jfe stored for (issuer, name) after this
   * store was loaded (workers share the state directory), taken in; undefined
   * when there is none or it is unusable. Only for names not held at all.
   */
  async adoptFromDisk(issuer: string, name: string): Promise<CertEntry | undefined> {
    const key = keyOf(issuer, name);
    if (this.disk.has(key) || this.contexts.has(key)) return undefined;
    const base = fileSafeName(name);
    const dir = path.join(this.stateDir.root, CERTS_DIR, issuer, base);
    try {
      await fsp.access(path.join(dir, CERT_FILE));
      await this.loadOne(issuer, dir, base);
    } catch {
      return undefined;
    }
    return this.lookup(issuer, name);
  }

  /** What is held for (issuer, name), without making a context or touching the LRU. */
  describe(issuer: string, name: string): CertInfo | undefined {
    const key = keyOf(issuer, name);
    return this.contexts.get(key)?.entry.info ?? this.disk.get(key)?.info;
  }

  /**
   * Takes a newly issued leaf: checks it, makes its context, and writes it to
   * disk unless the issuer's cap is reached (a renewal of a stored name always
   * writes). A failed write is logged and counted; the leaf is still served.
   * Throws JFE_ERR_CERT when the leaf is unusable. `alreadyWritten`: another
   * process of this jfe stored it (ACME leaves, written by the primary); it is
   * taken into memory only.
   */
  async put(issuer: string, name: string, issued: IssuedCert, opts: { alreadyWritten?: boolean } = {}): Promise<CertEntry> {
    const key = keyOf(issuer, name);
    let info: CertInfo;
    let context: tls.SecureContext;
    try {
      info = inspect(issuer, name, issued.certPem, issued.keyPem, false);
      context = this.createContext(issued.certPem, issued.keyPem);
    } catch (err) {
      throw new JfeError('JFE_ERR_CERT', `issuer ${issuer} returned an unusable certificate for ${name}: ${(err as Error).message}`, { cause: err });
    }
    const wasStored = this.disk.has(key);
    if (opts.alreadyWritten === true) {
      info = { ...info, persisted: true };
      if (!wasStored) this.adjustStored(issuer, +1);
      this.disk.set(key, { info, certPem: issued.certPem, keyPem: issued.keyPem });
      return this.remember(key, { info, context });
    }
    let claim: Claim | 'stored' = 'stored';
    let dir: string | undefined;
    try {
      dir = path.join(await this.stateDir.ensureDir(CERTS_DIR, issuer), fileSafeName(name));
      // The cap holds for the host: counted on disk, where every worker writes.
      if (!wasStored) claim = await this.slots.claim(path.dirname(dir), dir);
      if (claim === 'stored' || claim === 'claimed' || claim === 'exists') {
        await this.write(issuer, name, issued);
        info = { ...info, persisted: true };
        if (!wasStored) this.adjustStored(issuer, +1);
        this.disk.set(key, { info, certPem: issued.certPem, keyPem: issued.keyPem });
      }
    } catch (err) {
      if (claim === 'claimed' && dir !== undefined) await this.slots.release(dir);
      claim = 'stored'; // not the cap: counted as a write error below
      this.writeErrorsTotal++;
      this.log.warn({ err, issuer, name }, 'cannot store certificate; serving it from memory');
    }
    if (claim === 'full' || claim === 'busy') {
      this.notPersistedTotal++;
      this.fullLog.note({ issuer, name, maxStoredPerIssuer: this.maxStoredPerIssuer, notPersistedTotal: this.notPersistedTotal, why: claim });
    }
    this.events.expiry(name, info.notAfter);
    return this.remember(key, { info, context });
  }

  /**
   * Drops the contexts not used for `idleMs` (a context is some 30 KB of
   * OpenSSL memory): after a flood of names, memory goes back down once the
   * flood ends. Returns how many were dropped. Stored leaves get a new
   * context at their next handshake; a leaf kept in memory only is issued again.
   */
  dropIdleContexts(idleMs: number): number {
    const cutoff = this.now() - idleMs;
    let dropped = 0;
    // Least recently used first: stop at the first one used since the cutoff.
    for (const [key, c] of this.contexts) {
      if (c.usedAt > cutoff) break;
      this.contexts.delete(key);
      dropped++;
    }
    return dropped;
  }

  stats(): CertStoreStats {
    return {
      stored: Object.fromEntries(this.storedPerIssuer),
      contexts: this.contexts.size,
      notPersistedTotal: this.notPersistedTotal,
      writeErrorsTotal: this.writeErrorsTotal,
      skippedAtLoadTotal: this.skippedAtLoadTotal,
    };
  }

  private createContext(certPem: string, keyPem: string): tls.SecureContext {
    return tls.createSecureContext({ ...this.contextOptions, cert: certPem, key: keyPem });
  }

  private remember(key: string, entry: CertEntry): CertEntry {
    this.contexts.delete(key);
    this.contexts.set(key, { entry, usedAt: this.now() });
    while (this.contexts.size > this.maxContexts) {
      const oldest = this.contexts.keys().next();
      if (oldest.done === true) break;
      this.contexts.delete(oldest.value);
    }
    return entry;
  }

  private adjustStored(issuer: string, delta: number): void {
    this.storedPerIssuer.set(issuer, (this.storedPerIssuer.get(issuer) ?? 0) + delta);
  }

  /**
   * Key first, then certificate, each replaced atomically. A crash between the
   * two leaves a new key beside the old certificate: load sees the mismatch,
   * skips the entry, and the name is issued again.
   */
  private async write(issuer: string, name: string, issued: IssuedCert): Promise<void> {
    const dir = await this.stateDir.ensureDir(CERTS_DIR, issuer, fileSafeName(name));
    await this.stateDir.writeFileAtomic(path.join(dir, KEY_FILE), issued.keyPem, 0o600);
    await this.stateDir.writeFileAtomic(path.join(dir, CERT_FILE), issued.certPem, 0o600);
  }

  private async load(): Promise<void> {
    const root = await this.stateDir.ensureDir(CERTS_DIR);
    await this.stateDir.removeStaleTemps(root);
    for (const issuer of await listDir(root)) {
      if (isTempName(issuer)) continue;
      if (!ISSUER_NAME_RE.test(issuer)) {
        this.log.warn({ dir: path.join(root, issuer) }, 'not an issuer directory; ignored');
        continue;
      }
      const issuerDir = path.join(root, issuer);
      await this.stateDir.removeStaleTemps(issuerDir);
      for (const base of await listDir(issuerDir)) {
        await this.loadOne(issuer, path.join(issuerDir, base), base);
      }
    }
    const stored = Object.fromEntries(this.storedPerIssuer);
    this.log.info({ stored, skipped: this.skippedAtLoadTotal }, 'certificate store loaded');
  }

  private async loadOne(issuer: string, dir: string, base: string): Promise<void> {
    const name = nameFromFileSafe(base);
    const skip = (reason: string, err?: unknown): void => {
      this.skippedAtLoadTotal++;
      this.log.warn({ dir, reason, err }, 'stored certificate skipped; the name will be issued again when asked for');
    };
    if (name === null) {
      skip('directory name is not a normalised name');
      return;
    }
    await this.stateDir.removeStaleTemps(dir);
    let certPem: string;
    let keyPem: string;
    try {
      [certPem, keyPem] = await Promise.all([fsp.readFile(path.join(dir, CERT_FILE), 'utf8'), fsp.readFile(path.join(dir, KEY_FILE), 'utf8')]);
    } catch (err) {
      if (isSystemError(err, 'ENOENT')) {
        // An empty directory is a claim whose writer died before writing (disk-slots.ts): it
        // holds a slot of the cap, so it goes, once old enough not to be a write under way.
        if (await removeIfEmptyAndStale(dir)) return;
        skip('cert.pem or key.pem missing', err);
        return;
      }
      throw new JfeError('JFE_ERR_STATE', `certificate store: cannot read ${dir}: ${(err as Error).message}; run jfe as root or fix its permissions`, { cause: err });
    }
    let info: CertInfo;
    try {
      info = inspect(issuer, name, certPem, keyPem, true);
    } catch (err) {
      skip((err as Error).message, err);
      return;
    }
    this.disk.set(keyOf(issuer, name), { info, certPem, keyPem });
    this.adjustStored(issuer, +1);
    this.events.expiry(name, info.notAfter);
  }
}

async function removeIfEmptyAndStale(dir: string): Promise<boolean> {
  try {
    if (Date.now() - (await fsp.stat(dir)).mtimeMs < STALE_TEMP_MS) return false;
    await fsp.rmdir(dir); // fails unless empty
    return true;
  } catch {
    return false;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    throw new JfeError('JFE_ERR_STATE', `certificate store: cannot list ${dir}: ${(err as Error).message}; run jfe as root or fix its permissions`, { cause: err });
  }
}

// SPDX-License-Identifier: MIT
// The cap on leaves kept on disk, held for the whole host: every worker (and
// a successor during a takeover) writes to the same state directory, so the
// cap is counted on disk, and "count, then claim the name's directory" runs
// under a lock that is a directory (mkdir is atomic) shared by them all.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { isSystemError } from '../errors';
import { TEMP_MARKER, isTempName } from './state-dir';

/** A temp name: skipped by counts and loads, removed at start if a crash left it. */
const LOCK_NAME = `.claim${TEMP_MARKER}lock`;
/** A lock older than this was left by a process that died holding it (it is held for a readdir and a mkdir). */
const LOCK_STALE_MS = 5_000;
const LOCK_RETRY_MS = 2;
/** Tries before giving up (about a second): the leaf is then served from memory, not written. */
const LOCK_TRIES = 500;
/** A full directory is counted again after this long (an operator may have removed leaves). */
export const FULL_RECHECK_MS = 60_000;

/**
 * claimed: the name's directory is new and ours to fill (or release);
 * exists: it was there already (a sibling stored the name, or stores it now);
 * full: the cap is reached; busy: the lock could not be had in time.
 */
export type Claim = 'claimed' | 'exists' | 'full' | 'busy';

export class DiskSlots {
  /** Issuer directory → until when it is known to be full (a flood past the cap costs no readdir per name). */
  private readonly fullUntil = new Map<string, number>();

  constructor(
    private readonly cap: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Claims `dir` (a leaf's directory inside `issuerDir`) if the issuer's
   * directory holds fewer than `cap` leaves, counted on disk under the lock.
   */
  async claim(issuerDir: string, dir: string): Promise<Claim> {
    // A name stored already (by a sibling) takes no new slot: its renewal is written even at the cap.
    if (await exists(dir)) return 'exists';
    const until = this.fullUntil.get(issuerDir);
    if (until !== undefined && this.now() < until) return 'full';
    const lock = path.join(issuerDir, LOCK_NAME);
    if (!(await acquire(lock))) return 'busy';
    try {
      if (await exists(dir)) return 'exists';
      const held = (await fsp.readdir(issuerDir)).filter((n) => !isTempName(n)).length;
      if (held >= this.cap) {
        this.fullUntil.set(issuerDir, this.now() + FULL_RECHECK_MS);
        return 'full';
      }
      this.fullUntil.delete(issuerDir);
      await fsp.mkdir(dir, { mode: 0o700 });
      return 'claimed';
    } finally {
      await fsp.rmdir(lock).catch(() => undefined);
    }
  }

  /** Gives a claimed directory back (its write failed): removed if still empty. */
  async release(dir: string): Promise<void> {
    await fsp.rmdir(dir).catch(() => undefined);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

/** mkdir of the lock; a lock left by a dead process is broken after LOCK_STALE_MS. Bounded: LOCK_TRIES. */
async function acquire(lock: string): Promise<boolean> {
  for (let i = 0; i < LOCK_TRIES; i++) {
    try {
      await fsp.mkdir(lock, { mode: 0o700 });
      return true;
    } catch (err) {
      if (!isSystemError(err, 'EEXIST')) throw err;
    }
    try {
      if (Date.now() - (await fsp.stat(lock)).mtimeMs > LOCK_STALE_MS) {
        await fsp.rmdir(lock);
        continue;
      }
    } catch {
      continue; // released meanwhile
    }
    await new Promise((r) => setTimeout(r, LOCK_RETRY_MS));
  }
  return false;
}

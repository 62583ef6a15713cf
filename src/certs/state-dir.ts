// SPDX-License-Identifier: MIT
// The state directory (internal CA, issued certificates, later ACME account
// keys): one directory private to its owner, written only by atomic renames.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { JfeError, isJfeError, isSystemError } from '../errors';
import type { Logger } from '../log';

export const DEFAULT_STATE_DIR = '/var/lib/jfe';

/** Temp files and directories carry this marker; a crash may leave them behind, and loaders skip them. */
export const TEMP_MARKER = '.tmp-';
/** A temp file this old is a crash's leftover, not a write in progress. */
export const STALE_TEMP_MS = 10 * 60_000;

export function isTempName(base: string): boolean {
  return base.startsWith('.') && base.includes(TEMP_MARKER);
}

function tempName(base: string): string {
  return `.${base}${TEMP_MARKER}${process.pid}-${randomBytes(6).toString('hex')}`;
}

function stateError(dir: string, what: string, err: unknown): JfeError {
  const why = isSystemError(err) && err.code !== undefined ? err.code : (err as Error).message;
  const hint =
    isSystemError(err, 'EACCES') || isSystemError(err, 'EPERM')
      ? 'run jfe as root, or choose a state directory it owns with --state-dir'
      : isSystemError(err, 'EROFS')
        ? 'the file system is read-only: choose a writable state directory with --state-dir'
        : 'check the path, or choose another state directory with --state-dir';
  return new JfeError('JFE_ERR_STATE', `state directory ${dir}: cannot ${what} (${why}); ${hint}`, { cause: err });
}

/**
 * Makes `dir` exist as a directory with mode 0700 owned by this process's user.
 * A directory we own that group or others can access is tightened to 0700;
 * one owned by another user is refused, since that user could read our keys.
 */
async function ensurePrivateDir(dir: string, log: Logger | undefined): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    // EEXIST: something that is not a directory is there; stat below says what.
    if (!isSystemError(err, 'EEXIST')) throw stateError(dir, 'create it', err);
  }
  let st: fs.Stats;
  try {
    st = await fsp.stat(dir);
  } catch (err) {
    throw stateError(dir, 'stat it', err);
  }
  if (!st.isDirectory()) {
    throw new JfeError('JFE_ERR_STATE', `state directory ${dir}: exists and is not a directory; move it away or choose another with --state-dir`);
  }
  const uid = process.getuid?.() ?? st.uid;
  if (st.uid !== uid) {
    throw new JfeError(
      'JFE_ERR_STATE',
      `state directory ${dir}: owned by uid ${st.uid}, but jfe runs as uid ${uid}; ` +
        `keys must be private to jfe: chown ${uid} ${dir} && chmod 0700 ${dir}, or choose another with --state-dir`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    try {
      await fsp.chmod(dir, 0o700);
    } catch (err) {
      throw stateError(dir, 'restrict its mode to 0700', err);
    }
    log?.warn({ dir, mode: (st.mode & 0o777).toString(8) }, 'state directory was accessible to group or others; mode set to 0700');
  }
  try {
    await fsp.access(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw stateError(dir, 'read and write it', err);
  }
}

/** The state directory of one jfe: subdirectories are 0700, files 0600, every write atomic. */
export class StateDir {
  private constructor(
    readonly root: string,
    private readonly log: Logger | undefined,
  ) {}

  /** Creates (0700) and checks `root`. Throws JfeError JFE_ERR_STATE with what to do. */
  static async open(root: string, log?: Logger): Promise<StateDir> {
    const abs = path.resolve(root);
    await ensurePrivateDir(abs, log);
    return new StateDir(abs, log);
  }

  /** The absolute path of `parts` inside the state directory. */
  path(...parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  /** Makes a subdirectory (and its parents below root) exist, private. Returns its path. */
  async ensureDir(...parts: string[]): Promise<string> {
    let dir = this.root;
    for (const part of parts) {
      dir = path.join(dir, part);
      await ensurePrivateDir(dir, this.log);
    }
    return dir;
  }

  /**
   * Replaces `file` atomically: a reader sees the old content or the new one,
   * never a part. Temp file (mode 0600, same directory) → fsync → rename →
   * fsync of the directory, so the rename survives a crash too.
   */
  async writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
    const dir = path.dirname(file);
    const tmp = path.join(dir, tempName(path.basename(file)));
    try {
      const fh = await fsp.open(tmp, 'wx', mode);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, file);
    } catch (err) {
      await removeTemp(tmp);
      throw stateError(file, 'write it', err);
    }
    await syncDir(dir);
  }

  /**
   * Makes a directory appear whole: `fill` populates a temp directory, which is
   * then renamed to `dir`. Returns false, leaving `dir` untouched, when `dir`
   * already exists (another process won the race; load theirs).
   */
  async createDirAtomic(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<boolean> {
    const parent = path.dirname(dir);
    const tmp = path.join(parent, tempName(path.basename(dir)));
    try {
      await fsp.mkdir(tmp, { mode: 0o700 });
      await fill(tmp);
      await syncDir(tmp);
    } catch (err) {
      await removeTemp(tmp);
      throw isJfeError(err) ? err : stateError(dir, 'create it', err);
    }
    try {
      // rename(2) of a directory replaces an EMPTY directory (nothing was there)
      // and fails with ENOTEMPTY/EEXIST on a non-empty one: someone else made it.
      await fsp.rename(tmp, dir);
    } catch (err) {
      await removeTemp(tmp);
      if (isSystemError(err, 'ENOTEMPTY') || isSystemError(err, 'EEXIST')) {
        return false;
      }
      throw stateError(dir, 'create it', err);
    }
    await syncDir(parent);
    return true;
  }

  /** Writes a new file inside a directory being filled by createDirAtomic (no rename needed). */
  async writeNewFile(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
    try {
      const fh = await fsp.open(file, 'wx', mode);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw stateError(file, 'write it', err);
    }
  }

  /**
   * Removes temp files and directories left by a crash in `dir` (not
   * recursive). Only those older than `olderThanMs`: a younger one may belong
   * to a process writing right now (`jfe ca export` beside `jfe run`).
   */
  async removeStaleTemps(dir: string, olderThanMs = STALE_TEMP_MS): Promise<number> {
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch (err) {
      if (isSystemError(err, 'ENOENT')) return 0;
      throw stateError(dir, 'list it', err);
    }
    let removed = 0;
    const cutoff = Date.now() - olderThanMs;
    for (const name of names) {
      if (!isTempName(name)) continue;
      const p = path.join(dir, name);
      try {
        if ((await fsp.lstat(p)).mtimeMs > cutoff) continue;
        await fsp.rm(p, { recursive: true, force: true });
      } catch (err) {
        if (isSystemError(err, 'ENOENT')) continue; // its writer renamed or removed it meanwhile
        throw stateError(p, 'remove this stale temp file', err);
      }
      removed++;
    }
    return removed;
  }
}

/** Best-effort cleanup on a failure path: the caller rethrows the first error, and a temp left behind is removed by removeStaleTemps at the next start. */
async function removeTemp(tmp: string): Promise<void> {
  try {
    await fsp.rm(tmp, { recursive: true, force: true });
  } catch {
    // ignored on purpose: see above
  }
}

async function syncDir(dir: string): Promise<void> {
  // fsync on a directory makes a rename in it durable. Some file systems refuse
  // it (EINVAL, EISDIR on a few FUSE mounts): the rename itself is already done.
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch (err) {
    if (!isSystemError(err, 'EINVAL') && !isSystemError(err, 'EISDIR') && !isSystemError(err, 'EBADF')) {
      throw stateError(dir, 'sync it', err);
    }
  } finally {
    await fh?.close();
  }
}

// SPDX-License-Identifier: MIT
// What `jfe certs list` shows: every leaf stored under
// <state>/certs/<issuer>/<name>/cert.pem, read only (nothing is created or
// repaired, so it is safe beside a running jfe).
import { X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { JfeError, isSystemError } from '../errors';
import { nameFromFileSafe } from './cert-name';
import { ISSUER_NAME_RE } from './issuer';
import { isTempName } from './state-dir';
import { CERTS_DIR, CERT_FILE } from './store';

const DAY_MS = 86_400_000;

export interface StoredCert {
  name: string;
  issuer: string;
  /** Null when the entry could not be read (then `problem` says why). */
  notBefore: Date | null;
  notAfter: Date | null;
  /** Whole days until notAfter, negative once expired. */
  daysLeft: number | null;
  serial: string | null;
  /** Why the entry is unusable (jfe skips it and issues the name again when asked). */
  problem: string | null;
}

function unreadable(p: string, err: unknown): JfeError {
  const code = isSystemError(err) ? err.code : undefined;
  if (code === 'EACCES' || code === 'EPERM') {
    return new JfeError('JFE_ERR_STATE', `cannot read ${p}: permission denied; the state directory is private to the user jfe runs as (root): run this as root, e.g. sudo jfe certs list`, { cause: err });
  }
  return new JfeError('JFE_ERR_STATE', `cannot read ${p}: ${code ?? (err as Error).message}`, { cause: err });
}

/** The subdirectories of `dir` (temp ones left out); [] when `dir` is missing. */
async function subdirs(dir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && !isTempName(e.name)).map((e) => e.name);
  } catch (err) {
    if (isSystemError(err, 'ENOENT')) return [];
    throw unreadable(dir, err);
  }
}

async function readOne(issuer: string, name: string, dir: string, now: number): Promise<StoredCert> {
  const row: StoredCert = { name, issuer, notBefore: null, notAfter: null, daysLeft: null, serial: null, problem: null };
  let pem: string;
  try {
    pem = await fsp.readFile(path.join(dir, CERT_FILE), 'utf8');
  } catch (err) {
    if (isSystemError(err, 'ENOENT')) return { ...row, problem: `${CERT_FILE} missing` };
    throw unreadable(path.join(dir, CERT_FILE), err);
  }
  try {
    const leaf = new X509Certificate(pem);
    const notAfter = new Date(leaf.validTo);
    return {
      ...row,
      notBefore: new Date(leaf.validFrom),
      notAfter,
      daysLeft: Math.floor((notAfter.getTime() - now) / DAY_MS),
      serial: leaf.serialNumber.toUpperCase(),
    };
  } catch (err) {
    return { ...row, problem: `${CERT_FILE} unparsable: ${(err as Error).message}` };
  }
}

/**
 * The stored certificates of the state directory `root`, by name then issuer.
 * Throws JFE_ERR_STATE when the directory is missing or unreadable (with what to do).
 */
export async function listStoredCerts(root: string, now = Date.now()): Promise<StoredCert[]> {
  try {
    await fsp.access(root);
  } catch (err) {
    if (isSystemError(err, 'ENOENT')) {
      throw new JfeError('JFE_ERR_STATE', `state directory ${root} does not exist: jfe has not run with it yet, or give the one it uses with --state-dir`, { cause: err });
    }
    throw unreadable(root, err);
  }
  const certsDir = path.join(root, CERTS_DIR);
  const rows: StoredCert[] = [];
  for (const issuer of (await subdirs(certsDir)).filter((i) => ISSUER_NAME_RE.test(i))) {
    const issuerDir = path.join(certsDir, issuer);
    for (const base of await subdirs(issuerDir)) {
      const name = nameFromFileSafe(base);
      if (name === null) continue; // not a directory jfe wrote; the store ignores it too
      rows.push(await readOne(issuer, name, path.join(issuerDir, base), now));
    }
  }
  return rows.sort((a, b) => (a.name === b.name ? a.issuer.localeCompare(b.issuer) : a.name.localeCompare(b.name)));
}

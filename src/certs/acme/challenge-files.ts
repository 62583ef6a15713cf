// SPDX-License-Identifier: MIT
// Pending ACME challenges as files under <run-dir>/acme-challenges/, written by
// the process that places orders and read on demand by every worker (any of
// them may receive the CA's validation connection).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { JfeError } from '../../errors';
import { normaliseDnsName } from '../cert-name';

export const CHALLENGES_DIR = 'acme-challenges';
const TOKEN_RE = /^[A-Za-z0-9_-]{1,128}$/;

function writeAtomicSync(file: string, data: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** The writer side: one file per http-01 token, one per tls-alpn-01 name. */
export class ChallengeFiles {
  private readonly pending = { 'http-01': new Set<string>(), 'tls-alpn-01': new Set<string>() };
  /** Told which validation ports have a pending challenge (80, 443), so they are steered even with no service there. */
  onPendingPorts: (ports: number[]) => void = () => undefined;

  constructor(readonly dir: string) {}

  private changed(kind: 'http-01' | 'tls-alpn-01', id: string, add: boolean): void {
    const set = this.pending[kind];
    const before = set.size;
    if (add) set.add(id);
    else set.delete(id);
    if ((before === 0) === (set.size === 0)) return;
    const ports: number[] = [];
    if (this.pending['http-01'].size > 0) ports.push(80);
    if (this.pending['tls-alpn-01'].size > 0) ports.push(443);
    this.onPendingPorts(ports);
  }

  /** Makes the directories, and clears what a previous run left: no order is pending at start. */
  async open(): Promise<void> {
    for (const sub of ['http-01', 'tls-alpn-01']) {
      const dir = path.join(this.dir, sub);
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    }
  }

  setHttp01(token: string, keyAuthorization: string): void {
    if (!TOKEN_RE.test(token)) throw new JfeError('JFE_ERR_CERT', `ACME server sent an unusable http-01 token ${JSON.stringify(token.slice(0, 40))}`);
    writeAtomicSync(path.join(this.dir, 'http-01', token), keyAuthorization);
    this.changed('http-01', token, true);
  }

  setTlsAlpn01(name: string, certPem: string, keyPem: string): void {
    writeAtomicSync(path.join(this.dir, 'tls-alpn-01', `${name}.pem`), `${keyPem.trim()}\n${certPem.trim()}\n`);
    this.changed('tls-alpn-01', name, true);
  }

  remove(kind: 'http-01' | 'tls-alpn-01', id: string): void {
    const file = kind === 'http-01' ? path.join(this.dir, kind, id) : path.join(this.dir, kind, `${id}.pem`);
    fs.rmSync(file, { force: true });
    this.changed(kind, id, false);
  }
}

/**
 * The reader side, given to the agent as its ChallengeResponder. Reads are
 * synchronous and happen only for validation requests (a path under
 * /.well-known/acme-challenge/ on port 80, ALPN acme-tls/1 on 443), which
 * are rare; names and tokens are checked before they touch a path.
 */
export function readChallengeFiles(dir: string): { http01(token: string): string | null; tlsAlpn01(servername: string): tls.SecureContext | null } {
  const read = (file: string): string | null => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return null; // no pending challenge by that id
    }
  };
  return {
    http01(token) {
      if (!TOKEN_RE.test(token)) return null;
      return read(path.join(dir, 'http-01', token));
    },
    tlsAlpn01(servername) {
      const name = normaliseDnsName(servername);
      if (name === null) return null;
      const pem = read(path.join(dir, 'tls-alpn-01', `${name}.pem`));
      if (pem === null) return null;
      try {
        return tls.createSecureContext({ key: pem, cert: pem });
      } catch {
        return null; // a file being replaced; the CA retries
      }
    },
  };
}

// SPDX-License-Identifier: MIT
// Shared by the agent's tests on real loopback sockets (connection, relay,
// reused reads): a throwaway certificate, listening, and reading what arrives.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const HOST = '127.0.0.1';

export interface Pem {
  cert: string;
  key: string;
}

/** A throwaway self-signed ECDSA P-256 certificate; `san` as openssl's subjectAltName takes it. */
export function selfSigned(cn: string, san: string): Pem {
  const dir = mkdtempSync(join(tmpdir(), 'jfe-agent-test-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${san}`,
      ],
      { stdio: 'pipe' },
    );
    return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Listens on an ephemeral port of HOST; resolves with the port. */
export async function listen(server: net.Server): Promise<number> {
  server.listen(0, HOST);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

export function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Reads `s` to EOF and returns the bytes. */
export function readAll(s: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (chunk: Buffer) => parts.push(chunk));
  return new Promise((resolve) => s.once('end', () => resolve(Buffer.concat(parts))));
}

/** Reads `s` until at least n bytes have arrived; returns all of them (a chunk that runs past n is not split). */
export async function readN(s: net.Socket, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const [chunk] = (await once(s, 'data')) as [Buffer];
    parts.push(chunk);
    got += chunk.length;
  }
  return Buffer.concat(parts);
}

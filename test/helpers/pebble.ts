// SPDX-License-Identifier: MIT
// Debian's Pebble (a real RFC 8555 server) and pebble-challtestsrv (its DNS)
// run in a world's CLIENT namespace, so Pebble's validation connections come
// from outside the server namespace and are steered like any client's.
import type { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { World } from './netns';
import { makeServicePki } from './pki';
import { type Daemon, spawnIn, waitForPortIn } from './servers';
import { run } from './spawn';

/** A Pebble, spawned with its stdout kept: output() is everything it printed. */
export interface Pebble extends Daemon {
  /** https://<addr>:14000/dir */
  directory: string;
  /** Trust for Pebble's own HTTPS (our test CA): jfe's --acme-ca-file. */
  httpsCaFile: string;
  /** New-order requests Pebble received so far (counted from its log). */
  orders(): number;
  /** Pebble's current issuing root (PEM), for clients' --cacert. */
  rootPem(): Promise<string>;
}

/** A leaf Pebble issued (not jfe's internal CA's). */
export const isPebbleLeaf = (c: X509Certificate): boolean => c.issuer.includes('Pebble');

const PEBBLE_PORT = 14000;
const MANAGEMENT_PORT = 15000;
const DNS_PORT = 8053;
const CHALLTEST_MANAGEMENT_PORT = 8055;

/** Pebble and challtestsrv can be slow to start on a busy machine. */
const START_TIMEOUT_MS = 15_000;

/** challtestsrv answers every A query with the server namespace's address unless told otherwise. */
export async function startChallTestSrv(w: World): Promise<{ dnsServer: string; addA(host: string, addr: string): Promise<void> }> {
  spawnIn(
    w,
    w.cli,
    [
      'pebble-challtestsrv',
      '-management', `${w.cli4}:${CHALLTEST_MANAGEMENT_PORT}`,
      '-dns01', `${w.cli4}:${DNS_PORT}`,
      '-http01', '', '-https01', '', '-tlsalpn01', '',
      '-defaultIPv4', w.srv4, '-defaultIPv6', '',
    ],
    'pebble-challtestsrv',
  );
  await waitForPortIn(w.cli, w.cli4, CHALLTEST_MANAGEMENT_PORT, START_TIMEOUT_MS);
  return {
    dnsServer: `${w.cli4}:${DNS_PORT}`,
    async addA(host, addr) {
      const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '5', '-d', JSON.stringify({ host: `${host}.`, addresses: [addr] }), `http://${w.cli4}:${CHALLTEST_MANAGEMENT_PORT}/add-a`]);
      if (r.status !== 0) throw new Error(`challtestsrv add-a: ${r.stderr}`);
    },
  };
}

/**
 * Pebble validating on ports 80 and 443 of the names it is asked for, which
 * challtestsrv resolves to the server namespace. No artificial sleeps, no
 * nonce rejections, no reused authorizations: every order is validated.
 */
export async function startPebble(
  w: World,
  dnsServer: string,
  opts: { validitySeconds?: number; instance?: number; eabKeys?: Record<string, string> } = {},
): Promise<Pebble> {
  const instance = opts.instance ?? 0;
  const dir = path.join(w.tmp, `pebble-${instance}`);
  fs.mkdirSync(dir, { recursive: true });
  // One HTTPS test CA for every Pebble of the world: jfe takes one --acme-ca-file.
  const httpsDir = path.join(w.tmp, 'pebble-https');
  const pki = fs.existsSync(path.join(httpsDir, 'leaf.crt'))
    ? { caCert: path.join(httpsDir, 'ca.crt'), cert: path.join(httpsDir, 'leaf.crt'), key: path.join(httpsDir, 'leaf.key') }
    : makeServicePki(httpsDir, 'pebble', w.cli4);
  const port = PEBBLE_PORT + instance;
  const managementPort = MANAGEMENT_PORT + instance;
  const config = {
    pebble: {
      listenAddress: `${w.cli4}:${port}`,
      managementListenAddress: `${w.cli4}:${managementPort}`,
      certificate: pki.cert,
      privateKey: pki.key,
      httpPort: 80,
      tlsPort: 443,
      ocspResponderURL: '',
      externalAccountBindingRequired: opts.eabKeys !== undefined,
      ...(opts.eabKeys ? { externalAccountMACKeys: opts.eabKeys } : {}),
      ...(opts.validitySeconds ? { certificateValidityPeriod: opts.validitySeconds } : {}),
    },
  };
  const configFile = path.join(dir, 'pebble-config.json');
  fs.writeFileSync(configFile, JSON.stringify(config));
  const d = spawnIn(w, w.cli, ['pebble', '-config', configFile, '-dnsserver', dnsServer], `pebble-${instance}`, {
    env: { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    stdout: true,
  });
  await waitForPortIn(w.cli, w.cli4, port, START_TIMEOUT_MS);
  await waitForPortIn(w.cli, w.cli4, managementPort, START_TIMEOUT_MS);
  return {
    ...d,
    directory: `https://${w.cli4}:${port}/dir`,
    httpsCaFile: pki.caCert,
    orders: () => (d.output().match(/POST \/order-plz/g) ?? []).length,
    async rootPem() {
      const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '5', '--cacert', pki.caCert, `https://${w.cli4}:${managementPort}/roots/0`]);
      if (r.status !== 0 || !r.stdout.includes('BEGIN CERTIFICATE')) throw new Error(`pebble root: ${r.stderr}${r.stdout}`);
      return r.stdout;
    },
  };
}

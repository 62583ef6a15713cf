// SPDX-License-Identifier: MIT
// A real DNS server for the name policy's tests: Debian's pebble-challtestsrv
// with only its DNS and management API, on loopback ports of this namespace.
// Records are added through POST /add-a and /add-aaaa; a name with none gets
// no answer (the default addresses are switched off).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import http from 'node:http';
import type { TestContext } from 'node:test';
import { ROOT_REQUIRED } from './root';

export interface ChallTestSrv {
  /** "127.0.0.1:PORT", as --dns-server takes it. */
  dnsServer: string;
  addA(host: string, addresses: string[]): Promise<void>;
  addAAAA(host: string, addresses: string[]): Promise<void>;
  clearA(host: string): Promise<void>;
}

/** Like requireRoot for tools that need no root: a loud skip here, a failure under JFE_TEST_REQUIRE_ROOT=1 (CI). */
export function requireTools(t: TestContext, tools: string[]): boolean {
  const missing = tools.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  if (missing.length === 0) return true;
  const msg = `NOT RUN: ${t.name}: needs ${missing.join(', ')} on PATH (scripts/install.sh --with-tests installs it)`;
  if (ROOT_REQUIRED) assert.fail(`${msg} (JFE_TEST_REQUIRE_ROOT=1 forbids skipping)`);
  process.stderr.write(`\n*** ${msg} ***\n\n`);
  t.skip(msg);
  return false;
}

function post(port: number, path: string, body: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`challtestsrv ${path}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function fqdn(host: string): string {
  return host.endsWith('.') ? host : `${host}.`;
}

async function started(proc: ChildProcess, mgmtPort: number, dnsServer: string): Promise<boolean> {
  const resolver = new Resolver({ timeout: 300, tries: 1 });
  resolver.setServers([dnsServer]);
  for (let i = 0; i < 50 && proc.exitCode === null; i++) {
    try {
      await post(mgmtPort, '/add-a', { host: 'ready.jfe-test.', addresses: ['192.0.2.1'] });
      if ((await resolver.resolve4('ready.jfe-test')).includes('192.0.2.1')) return true;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Starts pebble-challtestsrv on free loopback ports; stopped when the test ends. */
export async function startChallTestSrv(t: TestContext): Promise<ChallTestSrv> {
  for (let attempt = 0; attempt < 5; attempt++) {
    // Random high ports: a port taken by someone else makes the server exit, and we try others.
    const dnsPort = 20_000 + Math.floor(Math.random() * 30_000);
    const mgmtPort = dnsPort + 1;
    const dnsServer = `127.0.0.1:${dnsPort}`;
    const proc = spawn(
      'pebble-challtestsrv',
      ['-dns01', dnsServer, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${mgmtPort}`, '-defaultIPv4', '', '-defaultIPv6', ''],
      { stdio: 'ignore' },
    );
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    if (await started(proc, mgmtPort, dnsServer)) {
      t.after(async () => {
        proc.kill('SIGTERM');
        await exited;
      });
      return {
        dnsServer,
        addA: (host, addresses) => post(mgmtPort, '/add-a', { host: fqdn(host), addresses }),
        addAAAA: (host, addresses) => post(mgmtPort, '/add-aaaa', { host: fqdn(host), addresses }),
        clearA: (host) => post(mgmtPort, '/clear-a', { host: fqdn(host) }),
      };
    }
    proc.kill('SIGKILL');
    await exited;
  }
  throw new Error('pebble-challtestsrv did not start on any of 5 port pairs');
}

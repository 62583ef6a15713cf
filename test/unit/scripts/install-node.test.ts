// SPDX-License-Identifier: MIT
// scripts/install-node.sh installs nothing it cannot verify: a tarball that is
// not the pinned one, or a registry that does not answer, leaves no Node
// behind; an installed version is not downloaded again. (Its real download is
// run by .ci/run and scripts/check-clean-system.sh.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { REPO_ROOT, run } from '../../helpers/spawn';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'install-node.sh');
const ARCH = process.arch === 'arm64' ? 'arm64' : 'x64';

/** A registry on loopback that answers every request with `body` and records the paths asked for. */
async function fakeRegistry(t: TestContext, body: string | null): Promise<{ url: string; paths: string[] }> {
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    if (body === null) res.writeHead(404).end();
    else res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, paths };
}

function nodeRoot(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-node-root-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a tarball that is not the pinned one is refused, and nothing is installed', async (t) => {
  const registry = await fakeRegistry(t, 'not the node you pinned');
  const root = nodeRoot(t);
  const r = await run('sh', [SCRIPT, '26'], { env: { JFE_NODE_ROOT: root, npm_config_registry: registry.url } });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`Error: ${registry.url}node-linux-${ARCH}/-/node-linux-${ARCH}-26\\.\\d+\\.\\d+\\.tgz does not match its pinned integrity sha512-`));
  assert.equal(r.stdout, '');
  assert.deepEqual(registry.paths, [`/node-linux-${ARCH}/-/node-linux-${ARCH}-${/node-linux-\w+-(26\.\d+\.\d+)\.tgz/.exec(r.stderr)?.[1]}.tgz`]);
  assert.deepEqual(fs.readdirSync(root), [], 'no Node and no half-unpacked directory');
});

test('a registry that does not have it: a clear error, nothing installed', async (t) => {
  const registry = await fakeRegistry(t, null);
  const root = nodeRoot(t);
  const r = await run('sh', [SCRIPT, '22'], { env: { JFE_NODE_ROOT: root, npm_config_registry: registry.url } });
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`Error: could not download ${registry.url}node-linux-${ARCH}/-/node-linux-${ARCH}-22\\.`));
  assert.deepEqual(fs.readdirSync(root), []);
});

test('an installed version is not downloaded again', async (t) => {
  // This very Node, when install-node.sh installed it (CI runs the suite on it).
  const prefix = path.resolve(process.execPath, '..', '..');
  const installed = path.basename(prefix);
  if (!/^node-v\d+\.\d+\.\d+-linux-/.test(installed) || !fs.existsSync(path.join(prefix, 'bin', 'npm'))) {
    return t.skip(`this Node (${process.execPath}) was not installed by scripts/install-node.sh`);
  }
  const line = process.versions.node.split('.')[0] ?? '';
  const registry = await fakeRegistry(t, null);
  const root = nodeRoot(t);
  fs.symlinkSync(prefix, path.join(root, installed));
  const r = await run('sh', [SCRIPT, line], { env: { JFE_NODE_ROOT: root, npm_config_registry: registry.url } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${path.join(root, installed, 'bin')}\n`);
  assert.deepEqual(registry.paths, []);
});

test('usage errors exit 2', async () => {
  const r = await run('sh', [SCRIPT, '20']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^usage: .*install-node\.sh \[--system\] \[26\|24\|22\]\n$/);
});

test('the README names the Node and npm versions the script pins', () => {
  const script = fs.readFileSync(SCRIPT, 'utf8');
  const node = /^26-x64\) pin="(\d+\.\d+\.\d+) sha512-/m.exec(script)?.[1];
  const npm = /^npm_pin="(\d+\.\d+\.\d+) sha512-/m.exec(script)?.[1];
  assert.ok(node && npm);
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8').replace(/\s+/g, ' ');
  assert.ok(readme.includes(`installs Node.js ${node} with npm ${npm} from the npm registry`), `README: Node.js ${node} with npm ${npm}`);
});

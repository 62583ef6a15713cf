// SPDX-License-Identifier: MIT
// scripts/build-native.sh builds the addon only against the headers of the
// Node that runs the build: a nodedir from npm's config (an .npmrc written for
// another Node) with other headers is refused before node-gyp runs. The
// script runs from a copy, so nothing here can rebuild the checkout's addon.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { REPO_ROOT, run } from '../../helpers/spawn';

function scriptCopy(t: TestContext): { script: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-build-native-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'scripts'));
  fs.mkdirSync(path.join(dir, 'native'));
  const script = path.join(dir, 'scripts', 'build-native.sh');
  fs.copyFileSync(path.join(REPO_ROOT, 'scripts', 'build-native.sh'), script);
  return { script, dir };
}

function headers(dir: string, version: string): string {
  const [major, minor, patch] = version.split('.');
  fs.mkdirSync(path.join(dir, 'include', 'node'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'include', 'node', 'node_version.h'),
    `#define NODE_MAJOR_VERSION ${major}\n#define NODE_MINOR_VERSION ${minor}\n#define NODE_PATCH_VERSION ${patch}\n`,
  );
  return dir;
}

// The shell's `node` must be this one, whatever PATH the runner had.
const env = (nodedir: string): NodeJS.ProcessEnv => ({ npm_config_nodedir: nodedir, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` });

test("a nodedir with another Node's headers is refused, naming both versions and the fix", async (t) => {
  const { script, dir } = scriptCopy(t);
  const other = headers(path.join(dir, 'old-node'), '20.20.2');
  const r = await run('sh', [script], { env: env(other) });
  assert.equal(r.status, 1);
  const prefix = path.resolve(process.execPath, '..', '..');
  assert.equal(
    r.stderr,
    `Error: npm's nodedir ${other} holds the headers of Node 20.20.2, but this build runs Node ${process.versions.node} (${process.execPath}): the addon would not match. Remove nodedir from npm's config (npm config delete nodedir) or set it to ${prefix}.\n`,
  );
  assert.deepEqual(fs.readdirSync(path.join(dir, 'native')), [], 'node-gyp did not run');
});

test('a nodedir with no headers at all is refused too', async (t) => {
  const { script, dir } = scriptCopy(t);
  const r = await run('sh', [script], { env: env(path.join(dir, 'nothing')) });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /holds the headers of Node \(none found\), but this build runs Node /);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'native')), []);
});

test('an argument other than "sanitize" is refused with the usage, before anything runs', async (t) => {
  const { script, dir } = scriptCopy(t);
  const r = await run('sh', [script, 'asan'], { env: env(path.resolve(process.execPath, '..', '..')) });
  assert.equal(r.status, 2);
  assert.equal(r.stderr, `usage: ${script} [sanitize]\n`);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'native')), []);
});

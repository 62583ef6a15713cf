// SPDX-License-Identifier: MIT
// The package's install script builds on npm install / npm ci, but not again
// when `npx jfe` links a built checkout into npx's cache (npm runs the link's
// install script): no second build on first use. Real npm, in a throwaway
// package shaped like the checkout, with its own npm cache.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { REPO_ROOT, run } from '../../helpers/spawn';

const BUILT = ['dist/src/cli/jfe.js', 'native/build/Release/jfe_native.node', 'bpf/.output/jfe.bpf.o'];

function fakeCheckout(t: TestContext): { dir: string; env: NodeJS.ProcessEnv } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-npx-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const dir = path.join(tmp, 'jfe');
  fs.mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  fs.copyFileSync(path.join(REPO_ROOT, 'scripts', 'build-on-install.sh'), path.join(dir, 'scripts', 'build-on-install.sh'));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.writeFileSync(path.join(dir, 'bin', 'jfe'), "#!/usr/bin/env node\nconsole.log('jfe ran');\n", { mode: 0o755 });
  const scripts = { install: 'sh scripts/build-on-install.sh', build: 'node -e "require(\'node:fs\').appendFileSync(\'builds\', \'build\\\\n\')"' };
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'jfe', version: '0.0.0', private: true, bin: { jfe: 'bin/jfe' }, scripts }));
  const env = {
    npm_config_cache: path.join(tmp, 'npm-cache'),
    npm_config_userconfig: path.join(tmp, 'npmrc'),
    npm_config_update_notifier: 'false',
    PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
  };
  fs.writeFileSync(env.npm_config_userconfig, '');
  return { dir, env };
}

const builds = (dir: string): number => (fs.existsSync(path.join(dir, 'builds')) ? fs.readFileSync(path.join(dir, 'builds'), 'utf8').split('\n').length - 1 : 0);
const inDir = (dir: string, argv: string[]): string[] => ['-c', 'cd "$1" && shift && exec "$@"', 'sh', dir, ...argv];

test('npm install builds; npx in a built checkout runs the bin without building again', async (t) => {
  const { dir, env } = fakeCheckout(t);
  const install = await run('sh', inDir(dir, ['npm', 'install', '--no-audit', '--no-fund', '--offline']), { env, timeoutMs: 120_000 });
  assert.equal(install.status, 0, install.stderr);
  assert.equal(builds(dir), 1, 'npm install ran the build');
  for (const f of BUILT) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), '');
  }
  const npx = await run('sh', inDir(dir, ['npx', '--offline', 'jfe']), { env, timeoutMs: 120_000 });
  assert.equal(npx.status, 0, npx.stderr);
  assert.equal(npx.stdout, 'jfe ran\n');
  assert.equal(builds(dir), 1, 'npx did not build again');
});

test('npx in a checkout that was never built builds it first', async (t) => {
  const { dir, env } = fakeCheckout(t);
  const npx = await run('sh', inDir(dir, ['npx', '--offline', 'jfe']), { env, timeoutMs: 120_000 });
  assert.equal(npx.status, 0, npx.stderr);
  assert.equal(npx.stdout, 'jfe ran\n');
  assert.equal(builds(dir), 1);
});

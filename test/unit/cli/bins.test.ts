// SPDX-License-Identifier: MIT
// npx jfe and npx jfe-bpf keep working after a rebuild: the package's bins
// are committed, executable shims that a rebuild of dist/ never rewrites
// (npx caches its bin links; a bin rewritten without +x is "Permission denied").
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, runSync } from '../../helpers/spawn';

const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };

test('each bin is an executable file outside dist/', () => {
  assert.deepEqual(Object.keys(pkg.bin).sort(), ['jfe', 'jfe-bpf']);
  for (const [name, rel] of Object.entries(pkg.bin)) {
    assert.ok(!rel.startsWith('dist/'), `${name} must not point into dist/ (rebuilt files lose their mode)`);
    const mode = fs.statSync(path.join(REPO_ROOT, rel)).mode;
    assert.equal(mode & 0o111, 0o111, `${rel} is executable by everyone`);
    assert.match(fs.readFileSync(path.join(REPO_ROOT, rel), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  }
});

test('git records the executable bit of the shims', (t) => {
  // Only a git checkout has a record to check; install.sh installs no git.
  const r = spawnSync('git', ['-C', REPO_ROOT, 'ls-files', '-s', 'bin/jfe', 'bin/jfe-bpf'], { encoding: 'utf8' });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return t.skip('git is not installed');
  if (r.error) throw r.error;
  if (r.status !== 0 || r.stdout.trim() === '') return t.skip('not a git checkout (e.g. a copy or a packed tarball)');
  for (const line of r.stdout.trim().split('\n')) assert.match(line, /^100755 /, line);
});

test('the shims run the compiled CLIs', () => {
  for (const [name, rel] of Object.entries(pkg.bin)) {
    const r = runSync(path.join(REPO_ROOT, rel), ['--help']);
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^${name} <command>`));
  }
});

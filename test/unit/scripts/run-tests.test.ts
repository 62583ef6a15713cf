// SPDX-License-Identifier: MIT
// npm test's runner (scripts/run-tests.sh) runs every suite even after one
// fails, ends with one summary naming every failed and skipped test, and
// exits non-zero; when the build fails, the rest are reported as not run.
// Driven with real npm and node --test in a throwaway package.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { REPO_ROOT, run } from '../../helpers/spawn';

const RUNNER = path.join(REPO_ROOT, 'scripts', 'run-tests.sh');

function fakePackage(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-run-tests-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const scripts = {
    build: 'node -e "process.exit(Number(process.env.BUILD_EXIT))"',
    lint: "echo 'x.ts(1,1): error TS2322: not a number'; exit 2",
    unit: 'node --test --test-reporter=spec "t/*.test.js"',
    later: 'node -e "require(\'node:fs\').writeFileSync(\'later-ran\', \'\')"',
  };
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'fake', private: true, scripts }));
  fs.mkdirSync(path.join(dir, 't'));
  fs.writeFileSync(
    path.join(dir, 't', 'a.test.js'),
    [
      "const { test } = require('node:test');",
      "test('passes', () => {});",
      "test('breaks', () => { throw new Error('broken'); });",
      "test('cannot run here', (t) => t.skip('NOT RUN: needs root'));",
      '',
    ].join('\n'),
  );
  return dir;
}

async function runner(dir: string, buildExit: number, suites: string[]): Promise<{ status: number; summary: string }> {
  const r = await run('sh', ['-c', `cd "$1" && shift && exec sh "$@"`, 'sh', dir, RUNNER, ...suites], {
    // NODE_TEST_CONTEXT would make the inner node --test report to this one instead of failing.
    env: { BUILD_EXIT: String(buildExit), NODE_TEST_CONTEXT: undefined, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` },
    timeoutMs: 120_000,
  });
  return { status: r.status, summary: r.stdout.slice(r.stdout.lastIndexOf('=== summary')) };
}

test('every suite runs after a failure; the summary names each failure and skip; exit 1', async (t) => {
  const dir = fakePackage(t);
  const r = await runner(dir, 0, ['build', 'lint', 'unit', 'later']);
  assert.equal(r.status, 1);
  assert.equal(
    r.summary.replace(/ +/g, ' '),
    [
      '=== summary',
      'build ok',
      'lint FAILED (exit 2)',
      ' x.ts(1,1): error TS2322: not a number',
      'unit FAILED (exit 1)',
      ' skipped: cannot run here # NOT RUN: needs root',
      ' ✖ breaks [t/a.test.js:3:1]',
      'later ok',
      '2 of 4 suites failed or did not run',
      '',
    ].join('\n'),
  );
  assert.ok(fs.existsSync(path.join(dir, 'later-ran')));
});

test('a failed build: the suites after it are not run, and count as failures', async (t) => {
  const dir = fakePackage(t);
  const r = await runner(dir, 1, ['build', 'later']);
  assert.equal(r.status, 1);
  assert.match(r.summary, /^build +FAILED \(exit 1\)\n/m);
  assert.match(r.summary, /^later +not run: the build \(build\) failed\n2 of 2 suites failed or did not run\n$/m);
  assert.ok(!fs.existsSync(path.join(dir, 'later-ran')));
});

test('all suites passing: exit 0', async (t) => {
  const dir = fakePackage(t);
  const r = await runner(dir, 0, ['build', 'later']);
  assert.equal(r.status, 0);
  assert.match(r.summary, /\nall 2 suites passed\n$/);
});

// SPDX-License-Identifier: MIT
// Root-only tests: skipped loudly without root, and failed instead when
// JFE_TEST_REQUIRE_ROOT=1 (CI), so they can never pass by not running.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export const ROOT_REQUIRED = process.env.JFE_TEST_REQUIRE_ROOT === '1';

/** Returns true when the test may go on; otherwise it has been skipped (loudly) or failed. */
export function requireRoot(t: TestContext, tools: string[] = []): boolean {
  const why: string[] = [];
  if (process.getuid?.() !== 0) why.push('needs root (network namespaces, BPF)');
  for (const tool of ['ip', 'nsenter', ...tools]) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) why.push(`needs ${tool} on PATH`);
  }
  if (why.length === 0) return true;
  const msg = `NOT RUN: ${t.name}: ${why.join('; ')}`;
  if (ROOT_REQUIRED) assert.fail(`${msg} (JFE_TEST_REQUIRE_ROOT=1 forbids skipping)`);
  process.stderr.write(`\n*** ${msg} ***\n\n`);
  t.skip(msg);
  return false;
}

// SPDX-License-Identifier: MIT
// The module boundaries of STYLE.md hold in src/, and the checker catches a breach.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { violations } from '../../scripts/check-imports';
import { REPO_ROOT } from '../helpers/spawn';

test('src/ respects the import table', () => {
  assert.deepEqual(violations(path.join(REPO_ROOT, 'src')), []);
});

test('a forbidden import is reported', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-bounds-'));
  try {
    fs.mkdirSync(path.join(dir, 'agent'));
    fs.writeFileSync(path.join(dir, 'native.ts'), '');
    fs.writeFileSync(path.join(dir, 'agent', 'relay.ts'), "import { native } from '../native';\n");
    fs.writeFileSync(path.join(dir, 'agent', 'client-hello.ts'), "import type { X } from './relay';\n");
    assert.deepEqual(violations(dir).sort(), [
      'agent/client-hello: may not import agent/relay (rule for "agent/client-hello")',
      'agent/relay: may not import native (rule for "agent/")',
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

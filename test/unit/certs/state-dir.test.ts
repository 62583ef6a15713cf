// SPDX-License-Identifier: MIT
// Guards the state directory: created private, loosened modes tightened,
// foreign or unusable paths refused with JFE_ERR_STATE, writes atomic.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { isJfeError } from '../../../src/errors';
import { STALE_TEMP_MS, StateDir, TEMP_MARKER } from '../../../src/certs/state-dir';
import { bufferLogger, isRoot, modeOf, tempDir } from './temp-state';

test('creates a missing state directory (and parents) with mode 0700', async (t) => {
  const root = path.join(tempDir(t), 'var', 'lib', 'jfe');
  const sd = await StateDir.open(root);
  assert.equal(sd.root, root);
  assert.equal(modeOf(root), 0o700);
  const sub = await sd.ensureDir('certs', 'internal');
  assert.equal(modeOf(path.join(root, 'certs')), 0o700);
  assert.equal(modeOf(sub), 0o700);
});

test('tightens a state directory we own that group or others can access, and says so', async (t) => {
  const root = path.join(tempDir(t), 'state');
  fs.mkdirSync(root);
  fs.chmodSync(root, 0o755);
  const log = bufferLogger();
  await StateDir.open(root, log);
  assert.equal(modeOf(root), 0o700);
  assert.ok(log.lines.some((l) => l.level === 'warn' && l.obj['dir'] === root));
});

test('refuses a path that is a file', async (t) => {
  const file = path.join(tempDir(t), 'state');
  fs.writeFileSync(file, 'x');
  await assert.rejects(StateDir.open(file), (err) => isJfeError(err, 'JFE_ERR_STATE') && err.message.includes(file) && /not a directory/.test(err.message));
});

test('refuses a path below a file, naming the path and what to do', async (t) => {
  const file = path.join(tempDir(t), 'file');
  fs.writeFileSync(file, 'x');
  const root = path.join(file, 'state');
  await assert.rejects(StateDir.open(root), (err) => isJfeError(err, 'JFE_ERR_STATE') && err.message.includes(root) && err.message.includes('--state-dir'));
});

test('refuses a directory owned by another user', { skip: !isRoot() && 'needs root to chown' }, async (t) => {
  const root = path.join(tempDir(t), 'state');
  fs.mkdirSync(root, { mode: 0o755 });
  fs.chownSync(root, 65534, 65534);
  await assert.rejects(StateDir.open(root), (err) => isJfeError(err, 'JFE_ERR_STATE') && /owned by uid 65534/.test(err.message));
  assert.equal(modeOf(root), 0o755, 'a foreign directory is not modified');
});

test('refuses an unwritable directory', { skip: isRoot() && 'root bypasses file modes' }, async (t) => {
  const parent = tempDir(t);
  const root = path.join(parent, 'state');
  // Empty, so tempDir's cleanup removes it whatever its mode.
  fs.mkdirSync(root, { mode: 0o500 });
  await assert.rejects(StateDir.open(root), (err) => isJfeError(err, 'JFE_ERR_STATE') && err.message.includes(root) && /EACCES/.test(err.message));
});

test('writeFileAtomic writes 0600, replaces whole, and leaves no temp file', async (t) => {
  const sd = await StateDir.open(tempDir(t));
  const file = sd.path('a.pem');
  await sd.writeFileAtomic(file, 'first');
  assert.equal(fs.readFileSync(file, 'utf8'), 'first');
  assert.equal(modeOf(file), 0o600);
  await sd.writeFileAtomic(file, 'second');
  assert.equal(fs.readFileSync(file, 'utf8'), 'second');
  assert.deepEqual(fs.readdirSync(sd.root), ['a.pem']);
});

test('concurrent atomic writes leave one whole version and no temp file', async (t) => {
  const sd = await StateDir.open(tempDir(t));
  const file = sd.path('x');
  const versions = Array.from({ length: 20 }, (_, i) => String(i).repeat(10_000));
  await Promise.all(versions.map((v) => sd.writeFileAtomic(file, v)));
  assert.ok(versions.includes(fs.readFileSync(file, 'utf8')));
  assert.deepEqual(fs.readdirSync(sd.root), ['x']);
});

test('a failed atomic write throws JFE_ERR_STATE and leaves no temp file', async (t) => {
  const sd = await StateDir.open(tempDir(t));
  fs.mkdirSync(sd.path('occupied'));
  await assert.rejects(sd.writeFileAtomic(sd.path('occupied'), 'x'), (err) => isJfeError(err, 'JFE_ERR_STATE'));
  assert.deepEqual(fs.readdirSync(sd.root), ['occupied']);
  await assert.rejects(sd.writeFileAtomic(sd.path('missing', 'f'), 'x'), (err) => isJfeError(err, 'JFE_ERR_STATE'));
});

test('createDirAtomic makes a directory appear whole, once', async (t) => {
  const sd = await StateDir.open(tempDir(t));
  const dir = sd.path('ca');
  const fill = (content: string) => async (tmp: string) => sd.writeNewFile(path.join(tmp, 'f'), content);
  assert.equal(await sd.createDirAtomic(dir, fill('one')), true);
  assert.equal(await sd.createDirAtomic(dir, fill('two')), false);
  assert.equal(fs.readFileSync(path.join(dir, 'f'), 'utf8'), 'one');
  assert.deepEqual(fs.readdirSync(sd.root), ['ca']);
  assert.equal(modeOf(dir), 0o700);
});

test('removeStaleTemps removes what a crash left, and nothing else', async (t) => {
  const sd = await StateDir.open(tempDir(t));
  const old = new Date(Date.now() - STALE_TEMP_MS - 60_000);
  fs.writeFileSync(sd.path(`.cert.pem${TEMP_MARKER}123-abc`), 'half');
  fs.mkdirSync(sd.path(`.ca${TEMP_MARKER}123-abc`));
  fs.utimesSync(sd.path(`.cert.pem${TEMP_MARKER}123-abc`), old, old);
  fs.utimesSync(sd.path(`.ca${TEMP_MARKER}123-abc`), old, old);
  fs.writeFileSync(sd.path(`.key.pem${TEMP_MARKER}456-def`), 'being written right now');
  fs.writeFileSync(sd.path('keep.pem'), 'x');
  assert.equal(await sd.removeStaleTemps(sd.root), 2);
  assert.deepEqual(fs.readdirSync(sd.root).sort(), [`.key.pem${TEMP_MARKER}456-def`, 'keep.pem']);
});

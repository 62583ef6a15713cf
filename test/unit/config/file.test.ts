// SPDX-License-Identifier: MIT
// The --config file: YAML or JSON, camelCase keys, the same validation as
// flags and JFE_ variables, precedence flag > env > file > defaults, and
// one-line errors with file:line.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { readConfigFile, suggestSetting } from '../../../src/config/file';
import { loadSettings } from '../../../src/config/load';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jfe-config-test-'));
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(text: string): string {
  const p = path.join(dir, `c${++n}.yaml`);
  fs.writeFileSync(p, text);
  return p;
}

test('values from the file, converted by the same schema as flags', () => {
  const f = file('# jfe\nworkers: 3\nmark: 0x10\nidleTimeout: 2m\nexcludePorts: 25,8080\njson: yes\n');
  const s = loadSettings({ config: f }, ['workers', 'mark', 'idleTimeout', 'excludePorts', 'json', 'pinDir'] as const, { env: {} });
  assert.deepEqual(s, { workers: 3, mark: 16, idleTimeout: 120_000, excludePorts: '25,8080', json: true, pinDir: '/sys/fs/bpf/jfe' });
});

test('JSON is YAML: a JSON file works as is', () => {
  const f = file('{"workers": 2, "ports": "80,443", "verbose": true}');
  assert.deepEqual(loadSettings({ config: f }, ['workers', 'ports', 'verbose'] as const, { env: {} }), { workers: 2, ports: '80,443', verbose: true });
});

test('a list is the comma-separated form', () => {
  const f = file('ports:\n  - 80\n  - 443\nexcludePorts: [8080]\n');
  assert.deepEqual(loadSettings({ config: f }, ['ports', 'excludePorts'] as const, { env: {} }), { ports: '80,443', excludePorts: '8080' });
});

test('JFE_CONFIG names the file when --config does not', () => {
  const f = file('workers: 5\n');
  assert.equal(loadSettings({}, ['workers'] as const, { env: { JFE_CONFIG: f } }).workers, 5);
  const other = file('workers: 6\n');
  assert.equal(loadSettings({ config: other }, ['workers'] as const, { env: { JFE_CONFIG: f } }).workers, 6);
});

test('precedence: flag > environment > file > command default > table default', () => {
  const f = file('logLevel: error\npinDir: /from/file\nworkers: 7\n');
  const names = ['logLevel', 'pinDir', 'workers', 'runDir'] as const;
  const defaults = { logLevel: 'warn', runDir: '/cmd/run' };
  assert.deepEqual(loadSettings({ config: f }, names, { env: {}, defaults }), { logLevel: 'error', pinDir: '/from/file', workers: 7, runDir: '/cmd/run' });
  assert.deepEqual(loadSettings({ config: f }, names, { env: { JFE_PIN_DIR: '/from/env', JFE_WORKERS: '1' }, defaults }), {
    logLevel: 'error',
    pinDir: '/from/env',
    workers: 1,
    runDir: '/cmd/run',
  });
  assert.deepEqual(loadSettings({ config: f, workers: '2' }, names, { env: { JFE_WORKERS: '1' } }), { logLevel: 'error', pinDir: '/from/file', workers: 2, runDir: '/run/jfe' });
});

test('an empty value is the empty string (clears excludePorts); an empty file sets nothing', () => {
  assert.equal(loadSettings({ config: file('excludePorts:\n') }, ['excludePorts'] as const, { env: { JFE_EXCLUDE_PORTS: undefined } }).excludePorts, '');
  assert.deepEqual(loadSettings({ config: file('') }, ['workers'] as const, { env: {} }), { workers: 0 });
  assert.deepEqual(loadSettings({ config: file('# only comments\n') }, ['workers'] as const, { env: {} }), { workers: 0 });
});

test('the whole file is validated, also keys this command does not read', () => {
  const f = file('pinDir: /p\nworkers: 99\n');
  assert.throws(() => loadSettings({ config: f }, ['pinDir'] as const, { env: {} }), {
    code: 'JFE_ERR_CONFIG_INVALID',
    message: `invalid workers (${f}:2): workers must be an integer from 0 to 64, got "99"`,
  });
});

test('errors: one line naming the setting, the file and line, and the problem', () => {
  const cases: [string, (p: string) => string][] = [
    ['ports: 20-70000\n', (p) => `invalid ports (${p}:1): port 70000 out of range in "20-70000": ports are 1 to 65535`],
    ['workers: 2\npinDirr: /x\n', (p) => `unknown setting "pinDirr" in ${p}:2; did you mean "pinDir"? (keys are the settings' names in camelCase)`],
    ['exclude-ports: 25\n', (p) => `unknown setting "exclude-ports" in ${p}:1; did you mean "excludePorts"? (keys are the settings' names in camelCase)`],
    ['JFE_WORKERS: 2\n', (p) => `unknown setting "JFE_WORKERS" in ${p}:1; did you mean "workers"? (keys are the settings' names in camelCase)`],
    ['colour: blue\n', (p) => `unknown setting "colour" in ${p}:1 (keys are the settings' names in camelCase)`],
    ['config: /etc/other.yaml\n', (p) => `unknown setting "config" in ${p}:1 (keys are the settings' names in camelCase)`],
    ['ports:\n  a: 80\n', (p) => `invalid ports (${p}:1): expected a value or a list of values, got a mapping`],
    ['workers: 1\nworkers: 2\n', (p) => `config file ${p}:2: Map keys must be unique`],
    ['workers: [1\n', (p) => `config file ${p}:2: Flow sequence in block collection must be sufficiently indented and end with a ]`],
    ['- workers\n', (p) => `config file ${p}: expected a mapping of setting names to values, e.g. "excludePorts: 25,8080"`],
    ['idleTimeout: 300\n', (p) => `invalid idleTimeout (${p}:1): "300" is not a duration: write a number with a unit, e.g. 250ms, 10s, 5m, 1h`],
  ];
  for (const [text, msg] of cases) {
    const f = file(text);
    assert.throws(() => loadSettings({ config: f }, ['workers'] as const, { env: {} }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'JFE_ERR_CONFIG_INVALID');
      assert.equal(err.message, msg(f));
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    });
  }
});

test('a missing file: named, with the variable that named it', () => {
  const p = path.join(dir, 'nope.yaml');
  assert.throws(() => loadSettings({}, ['workers'] as const, { env: { JFE_CONFIG: p } }), {
    code: 'JFE_ERR_CONFIG_INVALID',
    message: `cannot read config file ${p} (ENOENT); check --config / JFE_CONFIG`,
  });
});

test('suggestions: other spellings of a name, and typos up to two letters', () => {
  assert.equal(suggestSetting('state_dir'), 'stateDir');
  assert.equal(suggestSetting('STATE-DIR'), 'stateDir');
  assert.equal(suggestSetting('maxConnection'), 'maxConnections');
  assert.equal(suggestSetting('somethingElse'), undefined);
});

test('readConfigFile reports each key with its line', () => {
  const f = file('\n\nworkers: 1\n\nports: "80"\n');
  const c = readConfigFile(f);
  assert.deepEqual([...c.values], [
    ['workers', { raw: '1', line: 3 }],
    ['ports', { raw: '80', line: 5 }],
  ]);
});

// SPDX-License-Identifier: MIT
// --help is generated from the option table; this keeps it so: every flag a
// command's help shows is a setting of the table with its JFE_ variable and
// the default the command really applies, every setting a command reads is
// shown, and every setting of the table is shown by some command.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ATTACH_SETTINGS } from '../../../src/cli/commands/attach';
import { CA_EXPORT_SETTINGS } from '../../../src/cli/commands/ca';
import { DETACH_SETTINGS } from '../../../src/cli/commands/detach';
import { STATUS_SETTINGS } from '../../../src/cli/commands/status';
import type { CommandSettings } from '../../../src/cli/options';
import { OPTIONS, type OptionName, envName, flagName } from '../../../src/config/options';
import { RUN_OPTION_NAMES } from '../../../src/daemon';
import { BIN, runSync } from '../../helpers/spawn';

interface HelpOption {
  flag: string;
  text: string;
}

/** The options of a help screen: each starts at "  --flag" or "  -v, --flag" and runs until the next. */
function helpOptions(help: string): HelpOption[] {
  const out: HelpOption[] = [];
  for (const line of help.split('\n')) {
    const m = /^\s{1,6}(?:-\w, )?--([a-z][a-z0-9-]*)\s/.exec(line);
    if (m?.[1]) out.push({ flag: m[1], text: line });
    else if (/^\s{6,}\S/.test(line) && out.length > 0) out[out.length - 1]!.text += line;
    else if (line.trim() === '' || /^\S.*:$/.test(line)) out.push({ flag: '', text: '' });
  }
  return out.filter((o) => o.flag !== '').map((o) => ({ ...o, text: o.text.replace(/\s+/g, ' ') }));
}

const byFlag = new Map(Object.keys(OPTIONS).map((n) => [flagName(n), n as OptionName]));

const COMMANDS: [string, string[], CommandSettings][] = [
  ['jfe run', [BIN.jfe, 'run'], { names: RUN_OPTION_NAMES }],
  ['jfe ca export', [BIN.jfe, 'ca', 'export'], CA_EXPORT_SETTINGS],
  ['jfe certs list', [BIN.jfe, 'certs', 'list'], { names: ['stateDir', 'json'] }],
  ['jfe-bpf attach', [BIN.jfeBpf, 'attach'], ATTACH_SETTINGS],
  ['jfe-bpf detach', [BIN.jfeBpf, 'detach'], DETACH_SETTINGS],
  ['jfe-bpf status', [BIN.jfeBpf, 'status'], STATUS_SETTINGS],
];

test('each command\'s help shows exactly its settings, with their variable and real default', () => {
  const shownAnywhere = new Set<string>();
  for (const [what, [bin = '', ...args], settings] of COMMANDS) {
    const r = runSync(bin, [...args, '--help'], { COLUMNS: '100' });
    assert.equal(r.status, 0, `${what} --help: ${r.stderr}`);
    const shown = helpOptions(r.stdout);
    const flags = shown.map((o) => o.flag).filter((f) => f !== 'help');
    assert.deepEqual(new Set(flags), new Set(['config', ...settings.names].map(flagName)), `${what}: the flags shown are the settings it reads`);
    for (const o of shown) {
      if (o.flag === 'help') continue;
      const name = byFlag.get(o.flag);
      assert.ok(name, `${what}: --${o.flag} is not in the option table`);
      shownAnywhere.add(name);
      const def = OPTIONS[name];
      assert.ok(o.text.includes(`[env ${envName(name)}]`), `${what}: --${o.flag} names ${envName(name)}: ${o.text}`);
      assert.ok(o.text.includes(def.describe.replace(/\s+/g, ' ')), `${what}: --${o.flag} has the table's description`);
      const expected = (settings.defaults as Record<string, unknown> | undefined)?.[name] ?? ('default' in def ? def.default : undefined);
      const shownDefault = /\[default: (.*?)\]/.exec(o.text)?.[1];
      assert.equal(shownDefault, expected === undefined ? undefined : JSON.stringify(expected), `${what}: --${o.flag} shows the default it gets`);
    }
    assert.match(r.stdout.replace(/\s+/g, ' '), /Precedence: flag > environment > config file > default\./, `${what}: says how the sources combine`);
  }
  assert.deepEqual([...Object.keys(OPTIONS)].filter((n) => !shownAnywhere.has(n)), [], 'every setting of the table is in some help');
});

test('the roots\' help lists their commands and points at the settings', () => {
  for (const [bin, commands] of [
    [BIN.jfe, ['run', 'ca', 'certs']],
    [BIN.jfeBpf, ['attach', 'detach', 'status']],
  ] as const) {
    const r = runSync(bin, ['--help']);
    assert.equal(r.status, 0, r.stderr);
    for (const c of commands) assert.match(r.stdout, new RegExp(`^\\s+\\S+ ${c}\\b`, 'm'));
    assert.match(r.stdout.replace(/\s+/g, ' '), /--help" for the options of a command\. Every option is also a JFE_ environment variable/);
  }
});

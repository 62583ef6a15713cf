// SPDX-License-Identifier: MIT
// The --config file: YAML (so JSON too), a mapping of setting names (camelCase,
// as in the option table) to values. Parsed with the failsafe schema, so every
// value reaches the one validation as the same string a flag or a JFE_
// variable would carry: "0x10", "no", "300" mean what they mean on the
// command line, not what YAML's type guessing would make of them.
import fs from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { JfeError } from '../errors';
import { OPTIONS, type OptionName, envName, flagName } from './options';

export interface FileValue {
  /** The value as written (failsafe: always a string). */
  raw: string;
  line: number;
}

export interface ConfigFile {
  /** Absolute path, as the errors name it. */
  path: string;
  values: ReadonlyMap<OptionName, FileValue>;
}

/** Keys that are not settings of the file itself. */
const NOT_IN_FILE = new Set<string>(['config']);

function invalid(message: string): JfeError {
  return new JfeError('JFE_ERR_CONFIG_INVALID', message);
}

const squash = (s: string): string => s.toLowerCase().replace(/^jfe_/, '').replace(/[-_]/g, '');

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The setting an unknown key was probably meant to be: same letters in another spelling, or a typo away. */
export function suggestSetting(key: string): string | undefined {
  const names = Object.keys(OPTIONS).filter((n) => !NOT_IN_FILE.has(n));
  const k = squash(key);
  const same = names.find((n) => squash(n) === k || squash(flagName(n)) === k || squash(envName(n)) === k);
  if (same) return same;
  let best: { name: string; d: number } | undefined;
  for (const n of names) {
    const d = editDistance(k, squash(n));
    if (d <= 2 && (!best || d < best.d)) best = { name: n, d };
  }
  return best?.name;
}

/** Reads and checks a config file. Throws JFE_ERR_CONFIG_INVALID naming the file, the line and the problem. */
export function readConfigFile(file: string): ConfigFile {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw invalid(`cannot read config file ${abs} (${code}); check --config / JFE_CONFIG`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { schema: 'failsafe', lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const first = doc.errors[0];
  if (first) {
    const line = lines.linePos(first.pos[0]).line;
    const what = first.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'syntax error';
    throw invalid(`config file ${abs}:${line}: ${what}`);
  }
  const values = new Map<OptionName, FileValue>();
  if (doc.contents === null) return { path: abs, values }; // an empty file sets nothing
  if (!isMap(doc.contents)) throw invalid(`config file ${abs}: expected a mapping of setting names to values, e.g. "excludePorts: 25,8080"`);
  for (const pair of doc.contents.items) {
    const line = pair.key !== null && isScalar(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]).line : 0;
    const where = `${abs}:${line}`;
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (!(key in OPTIONS) || NOT_IN_FILE.has(key)) {
      const hint = suggestSetting(key);
      throw invalid(`unknown setting "${key}" in ${where}${hint ? `; did you mean "${hint}"?` : ''} (keys are the settings' names in camelCase)`);
    }
    const name = key as OptionName;
    const v = pair.value;
    // A list of plain values is the comma-separated form (--domain a,b; ports: [80, 443]).
    if (isSeq(v) && v.items.every((i) => isScalar(i))) {
      values.set(name, { raw: v.items.map((i) => String((i as { value: unknown }).value)).join(','), line });
      continue;
    }
    if (v !== null && !isScalar(v)) throw invalid(`invalid ${name} (${where}): expected a value or a list of values, got a ${isMap(v) ? 'mapping' : 'nested list'}`);
    values.set(name, { raw: v === null ? '' : String(v.value), line });
  }
  return { path: abs, values };
}

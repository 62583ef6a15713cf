// SPDX-License-Identifier: MIT
// Enforces the module boundaries of STYLE.md ("who may import whom"): every
// internal import in src/ must be allowed by the table below. Run by `npm run lint`.
import fs from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(__dirname, '..', '..', 'src');

interface Rule {
  /** Modules this rule is for: a file ("native") or a folder prefix ("agent/"). */
  from: string;
  /** What they may import: files or folder prefixes, relative to src/ without .ts. */
  allow: string[];
}

// The first matching rule wins, so specific files come before their folder.
const RULES: Rule[] = [
  { from: 'errors', allow: [] },
  { from: 'log', allow: [] },
  { from: 'log-throttle', allow: ['log'] },
  { from: 'client-key', allow: [] },
  { from: 'native', allow: ['errors'] },
  { from: 'config/', allow: ['errors', 'config/'] },
  { from: 'bpf/', allow: ['native', 'errors', 'log', 'config/', 'bpf/'] },
  { from: 'agent/client-hello', allow: [] },
  { from: 'agent/tls-answer', allow: [] },
  { from: 'agent/listener', allow: ['agent/', 'errors', 'log', 'native', 'certs/cert-source'] },
  { from: 'agent/data-plane', allow: ['agent/', 'errors', 'log', 'log-throttle', 'client-key', 'native', 'certs/cert-source'] },
  { from: 'agent/upstream', allow: ['agent/', 'errors', 'log', 'native', 'certs/cert-source'] },
  { from: 'agent/', allow: ['agent/', 'errors', 'log', 'log-throttle', 'client-key', 'certs/cert-source'] },
  { from: 'certs/', allow: ['errors', 'log', 'log-throttle', 'client-key', 'certs/'] },
  { from: 'metrics/', allow: ['errors', 'log', 'metrics/', 'bpf/maps', 'bpf/steering'] },
  { from: 'daemon', allow: ['errors', 'log', 'client-key', 'native', 'config/', 'bpf/', 'agent/', 'certs/', 'metrics/', 'daemon/'] },
  { from: 'daemon/', allow: ['errors', 'log', 'client-key', 'native', 'config/', 'bpf/', 'agent/', 'certs/', 'metrics/', 'daemon/'] },
  { from: 'doctor/', allow: ['errors', 'log', 'native', 'config/', 'bpf/', 'doctor/'] },
  { from: 'cli/', allow: ['cli/', 'config/', 'daemon', 'daemon/', 'doctor/', 'bpf/', 'log', 'errors'] },
];

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

function matches(mod: string, pattern: string): boolean {
  return pattern.endsWith('/') ? mod.startsWith(pattern) : mod === pattern;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'|require\('([^']+)'\)/g;

export function violations(srcDir = SRC): string[] {
  const out: string[] = [];
  for (const file of walk(srcDir)) {
    const mod = path.relative(srcDir, file).replace(/\.ts$/, '');
    const rule = RULES.find((r) => matches(mod, r.from));
    if (!rule) {
      out.push(`${mod}: no boundary rule covers this module; add one to scripts/check-imports.ts`);
      continue;
    }
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? '';
      if (!spec.startsWith('.')) continue;
      const target = path.relative(srcDir, path.resolve(path.dirname(file), spec));
      if (target.startsWith('..')) {
        out.push(`${mod}: imports ${spec}, outside src/`);
        continue;
      }
      if (!rule.allow.some((a) => matches(target, a))) out.push(`${mod}: may not import ${target} (rule for "${rule.from}")`);
    }
  }
  return out;
}

if (require.main === module) {
  const v = violations();
  for (const line of v) process.stderr.write(`boundary: ${line}\n`);
  if (v.length > 0) process.exitCode = 1;
  else process.stdout.write('module boundaries: ok\n');
}

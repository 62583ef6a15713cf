// SPDX-License-Identifier: MIT
// deploy/prometheus/scrape.yml and deploy/grafana/jfe-dashboard.json against
// the metrics module: the scrape config parses and points at /metrics on the
// metrics port; every metric a dashboard query uses exists (renaming a metric
// breaks this test), and the README lists every jfe_ metric.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { createMetrics } from '../../../src/metrics/registry';
import { REPO_ROOT } from '../../helpers/spawn';

const read = (p: string): string => fs.readFileSync(path.join(REPO_ROOT, p), 'utf8');

/** Every metric name the registry exposes, histogram series included. */
async function exposedNames(): Promise<Set<string>> {
  const m = createMetrics({ version: 'test', bpfCounters: () => ({ steered: 0, passNotTcp: 0, passPort: 0, passLoopback: 0, passBypass: 0, passNoListener: 0, passNoSocket: 0, assignFailed: 0 }) });
  const names = new Set<string>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(metric.name + s);
  }
  return names;
}

/** The YAML of scrape.yml is JSON in flow style with whole-line comments. */
function parseFlowYaml(text: string): unknown {
  return JSON.parse(text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n'));
}

test('the Prometheus scrape config parses and scrapes /metrics on the metrics port', () => {
  const cfg = parseFlowYaml(read('deploy/prometheus/scrape.yml')) as { scrape_configs: Record<string, unknown>[] };
  assert.ok(Array.isArray(cfg.scrape_configs) && cfg.scrape_configs.length >= 2);
  const names = cfg.scrape_configs.map((c) => c.job_name);
  assert.deepEqual(names, ['jfe', 'jfe-kubernetes']);
  for (const c of cfg.scrape_configs) {
    assert.equal(c.metrics_path, '/metrics');
    assert.match(String(c.scrape_timeout), /^\d+s$/);
  }
  const targets = (cfg.scrape_configs[0]?.static_configs as { targets: string[] }[]).flatMap((s) => s.targets);
  for (const t of targets) assert.match(t, /:9464$/);
  const relabel = cfg.scrape_configs[1]?.relabel_configs as { action: string; regex?: string }[];
  assert.ok(relabel.some((r) => r.action === 'keep' && r.regex === 'metrics'), 'keeps the port named metrics');
});

test('every metric the Grafana dashboard queries exists in the metrics module', async () => {
  const dash = JSON.parse(read('deploy/grafana/jfe-dashboard.json')) as { panels: { id: number; type: string; targets?: { expr: string }[] }[]; templating: { list: { query: string }[] } };
  const exposed = await exposedNames();
  const exprs = [...dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...dash.templating.list.map((v) => v.query)];
  assert.ok(exprs.length >= 20);
  const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:jfe|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1] ?? '')));
  const missing = [...used].filter((n) => !exposed.has(n));
  assert.deepEqual(missing, [], 'dashboard queries metrics that do not exist');
  // And the dashboard shows every jfe_ metric.
  const jfe = [...exposed].filter((n) => n.startsWith('jfe_') && !/_(sum|count)$/.test(n) && !(n.endsWith('_bucket') && exposed.has(n.slice(0, -7))));
  const unshown = jfe.filter((n) => ![...used].some((u) => u === n || u.startsWith(`${n}_`)));
  assert.deepEqual(unshown, [], 'metrics without a panel');
  const ids = dash.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
});

test('the README lists every jfe_ metric', async () => {
  const readme = read('README.md');
  const missing = [...(await exposedNames())].filter((n) => n.startsWith('jfe_') && !/_(bucket|sum|count)$/.test(n) && !readme.includes(`\`${n}`));
  assert.deepEqual(missing, []);
});

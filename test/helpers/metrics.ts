// SPDX-License-Identifier: MIT
// jfe's /metrics as the tests read it: one scrape from the client namespace,
// parsed into series → value.
import type { World } from './netns';
import { run } from './spawn';

export const METRICS_PORT = 9464;

/** name{labels} → value. */
export type Sample = Map<string, number>;

/** The flags that make jfe serve /metrics where scrapeMetrics() reads it. */
export function metricsArgs(w: World): string[] {
  return ['--metrics-listen', `${w.srv4}:${METRICS_PORT}`];
}

/** The Prometheus text of a scrape, parsed. */
export function parseMetrics(text: string): Sample {
  const out: Sample = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** One scrape of jfe's /metrics (started with metricsArgs) from the client namespace. */
export async function scrapeMetrics(w: World): Promise<Sample> {
  const r = await run('ip', ['netns', 'exec', w.cli.name, 'curl', '-sS', '--max-time', '10', `http://${w.srv4}:${METRICS_PORT}/metrics`]);
  if (r.status !== 0) throw new Error(`scrape failed: ${r.stderr}`);
  return parseMetrics(r.stdout);
}

// SPDX-License-Identifier: MIT
// Durations as people write them: "250ms", "10s", "5m", "1h", "1m30s". Pure.
import { JfeError } from '../errors';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration to milliseconds; a bare number is refused (which unit would it be?). */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(t)) {
    throw new JfeError('JFE_ERR_CONFIG_INVALID', `"${text}" is not a duration: write a number with a unit, e.g. 250ms, 10s, 5m, 1h`);
  }
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
  return Math.round(ms);
}

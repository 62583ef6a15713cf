// SPDX-License-Identifier: MIT
// Rate limits as people write them: "5/1h,40/7d" (at most 5 in any hour and
// 40 in any 7 days), "10/h", or "off". Pure.
import { JfeError } from '../errors';
import { parseDuration } from './duration';

/** At most `count` events in any window of `windowMs`. */
export interface RateWindow {
  count: number;
  windowMs: number;
}

const MAX_WINDOW_MS = 31 * 86_400_000;

function bad(text: string, why: string): JfeError {
  return new JfeError('JFE_ERR_CONFIG_INVALID', `"${text}" is not a rate limit: ${why}; write COUNT/PERIOD[,COUNT/PERIOD…], e.g. "5/1h,40/7d", or "off"`);
}

/** A share as a percentage, "25%" (1% to 100%), or "off" (100%: no share). Returns a fraction. */
export function parseShare(text: string): number {
  const t = text.trim();
  if (t === 'off') return 1;
  const m = /^(\d{1,3})\s*%$/.exec(t);
  const pct = m ? Number(m[1]) : NaN;
  if (!(pct >= 1 && pct <= 100)) {
    throw new JfeError('JFE_ERR_CONFIG_INVALID', `"${text}" is not a share: write a percentage from 1% to 100%, e.g. "25%", or "off"`);
  }
  return pct / 100;
}

/** Parses a rate-limit spec; "off" is no limit (an empty list). Windows come out sorted, shortest first. */
export function parseRateLimit(text: string): RateWindow[] {
  const t = text.trim();
  if (t === 'off') return [];
  const windows: RateWindow[] = [];
  for (const part of t.split(',')) {
    const m = /^\s*(\d+)\s*\/\s*(\S+)\s*$/.exec(part);
    if (!m) throw bad(text, `"${part.trim()}" is not COUNT/PERIOD`);
    const count = Number(m[1]);
    // "10/h" reads as "10 per hour": a bare unit means one of it.
    const period = /^(ms|s|m|h|d)$/.test(m[2] ?? '') ? `1${m[2]}` : (m[2] ?? '');
    let windowMs: number;
    try {
      windowMs = parseDuration(period);
    } catch {
      throw bad(text, `"${m[2]}" is not a period such as 1h or 7d`);
    }
    if (count < 1 || count > 1_000_000) throw bad(text, `count ${count} must be from 1 to 1000000 (use "off" for no limit)`);
    if (windowMs < 1000 || windowMs > MAX_WINDOW_MS) throw bad(text, `period ${m[2]} must be from 1s to 31d`);
    windows.push({ count, windowMs });
  }
  return windows.sort((a, b) => a.windowMs - b.windowMs);
}

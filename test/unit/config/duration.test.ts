// SPDX-License-Identifier: MIT
// Durations as people write them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration } from '../../../src/config/duration';

test('durations with units parse to milliseconds', () => {
  const cases: [string, number][] = [
    ['250ms', 250],
    ['10s', 10_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1m30s', 90_000],
    ['1.5s', 1500],
    [' 2s ', 2000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test('a bare number or a bad unit is refused with a hint', () => {
  for (const bad of ['300', '', '5x', 's', '-1s', '1 s']) {
    assert.throws(() => parseDuration(bad), { code: 'JFE_ERR_CONFIG_INVALID', message: /is not a duration: write a number with a unit, e\.g\. 250ms, 10s, 5m, 1h/ }, bad);
  }
});

// SPDX-License-Identifier: MIT
// The capability check that runs before any steering command touches anything.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { effectiveCaps, requireSteeringCaps } from '../../../src/bpf/privileges';

const status = (capEff: string): string => `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`;

test('full root capabilities pass', () => {
  assert.doesNotThrow(() => requireSteeringCaps(status('000001ffffffffff')));
});

test('CAP_NET_ADMIN with CAP_BPF, or with CAP_SYS_ADMIN, pass', () => {
  const netAdmin = 1n << 12n;
  assert.doesNotThrow(() => requireSteeringCaps(status((netAdmin | (1n << 39n)).toString(16).padStart(16, '0'))));
  assert.doesNotThrow(() => requireSteeringCaps(status((netAdmin | (1n << 21n)).toString(16).padStart(16, '0'))));
});

test('missing either fails with "run as root"', () => {
  for (const caps of ['0000000000000000', (1n << 12n).toString(16), (1n << 39n).toString(16)]) {
    assert.throws(() => requireSteeringCaps(status(caps.padStart(16, '0'))), { code: 'JFE_ERR_NOT_ROOT', message: 'run as root: needs CAP_BPF and CAP_NET_ADMIN' });
  }
});

test('CapEff parses as hex; a missing line means none', () => {
  assert.equal(effectiveCaps(status('0000000000003000')), 0x3000n);
  assert.equal(effectiveCaps('Name: x\n'), 0n);
});

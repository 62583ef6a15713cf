// SPDX-License-Identifier: MIT
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ALL_DIALOGUES } from '../../../src/agent/upgrades';
import { postgresDialogue } from '../../../src/agent/upgrades/postgres';
import { MAX_DETECT_BYTES, UpgradeRegistry, parseUpgradePorts } from '../../../src/agent/upgrades/registry';
import { smtpDialogue } from '../../../src/agent/upgrades/smtp';
import type { DialogueFactory, FirstSpeaker, UpgradeProtocol } from '../../../src/agent/upgrades/upgrade';

/** A factory that says yes to its marker, need-more to a prefix of it. */
function fake(protocol: UpgradeProtocol, firstSpeaker: FirstSpeaker, marker: string, defaultPorts: number[], detectAnywhere = false): DialogueFactory {
  const m = Buffer.from(marker);
  return {
    protocol,
    firstSpeaker,
    defaultPorts,
    detectAnywhere,
    detect: (first) => {
      const n = Math.min(first.length, m.length);
      if (!first.subarray(0, n).equals(m.subarray(0, n))) return 'no';
      return first.length >= m.length ? 'yes' : 'need-more';
    },
    create: () => {
      throw new Error('not used');
    },
  };
}

const pg = fake('postgres', 'client', 'PG', [5432], true);
const smtp = fake('smtp', 'server', '220', [25, 587]);
const ALL = [pg, smtp];

describe('parseUpgradePorts', () => {
  test('"default" takes each protocol\'s default ports; "off" none', () => {
    assert.deepEqual([...parseUpgradePorts('default', ALL)].map(([p, f]) => [p, f.protocol]), [
      [5432, 'postgres'],
      [25, 'smtp'],
      [587, 'smtp'],
    ]);
    assert.equal(parseUpgradePorts('off', ALL).size, 0);
  });

  test('protocol=port+port lists replace the defaults', () => {
    const m = parseUpgradePorts('postgres=6432, smtp=2525+25', ALL);
    assert.deepEqual([...m].map(([p, f]) => [p, f.protocol]), [
      [6432, 'postgres'],
      [2525, 'smtp'],
      [25, 'smtp'],
    ]);
  });

  for (const [spec, message] of [
    ['ftp=21', /"ftp=21" is not protocol=port.*postgres, smtp/],
    ['postgres=70000', /"70000" in "postgres=70000" is not a port/],
    ['postgres=5432,smtp=5432', /port 5432 is given twice/],
    ['postgres', /"postgres" is not protocol=port/],
  ] as const) {
    test(`"${spec}" is refused with a message naming the setting`, () => {
      assert.throws(() => parseUpgradePorts(spec, ALL), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'JFE_ERR_CONFIG_INVALID');
        assert.match(err.message, /^upgrades: /);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

describe('UpgradeRegistry.match', () => {
  const reg = new UpgradeRegistry(parseUpgradePorts('default', ALL), ALL);

  test('by port, for the side that speaks first there', () => {
    assert.equal(reg.match('server', 25, Buffer.from('220 mx')), smtp);
    assert.equal(reg.match('server', 25, Buffer.from('22')), 'need-more');
    assert.equal(reg.match('server', 25, Buffer.from('SSH-2.0')), null);
    assert.equal(reg.match('server', 2525, Buffer.from('220 mx')), null, 'smtp is not detected off its ports');
  });

  test('an unmistakable opening is detected on any port; others are not', () => {
    assert.equal(reg.match('client', 9999, Buffer.from('PG')), pg);
    assert.equal(reg.match('client', 9999, Buffer.from('P')), 'need-more');
    assert.equal(reg.match('client', 9999, Buffer.from('GET /')), null);
  });

  test('a disabled protocol is not detected anywhere, and an endless opening is plaintext', () => {
    const none = new UpgradeRegistry(parseUpgradePorts('smtp=25', ALL), ALL);
    assert.equal(none.match('client', 5432, Buffer.from('PG')), null);
    const long = fake('postgres', 'client', 'P'.repeat(2 * MAX_DETECT_BYTES), [5432]);
    const endless = new UpgradeRegistry(parseUpgradePorts('default', [long]), [long]);
    assert.equal(endless.match('client', 5432, Buffer.alloc(MAX_DETECT_BYTES, 'P')), 'need-more');
    assert.equal(endless.match('client', 5432, Buffer.alloc(MAX_DETECT_BYTES + 1, 'P')), null);
  });

  // Found by the upgrade-openings fuzz target: a 1,100-byte first read that opens with "220 "
  // was plaintext, while the same bytes read 4 at a time got the SMTP dialogue.
  test('an opening decided in a read longer than MAX_DETECT_BYTES is decided the same as in short reads', () => {
    const real = new UpgradeRegistry(parseUpgradePorts('default', ALL_DIALOGUES), ALL_DIALOGUES);
    const greeting = Buffer.concat([Buffer.from('220 '), Buffer.alloc(1096)]);
    assert.equal(real.match('server', 25, greeting.subarray(0, 4)), smtpDialogue);
    assert.equal(real.match('server', 25, greeting), smtpDialogue);
    const sslRequest = Buffer.concat([Buffer.from('0000000804d2162f', 'hex'), Buffer.alloc(MAX_DETECT_BYTES)]);
    assert.equal(real.match('client', 9999, sslRequest), postgresDialogue);
  });
});

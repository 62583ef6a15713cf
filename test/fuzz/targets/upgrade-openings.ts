// SPDX-License-Identifier: MIT
// Fuzz target: the upgrade registry's opening matchers, which read the first
// bytes of a connection (the client's, or the server's when it speaks first)
// and pick the upgrade dialogue, if any; and each dialogue's own detect().
// Properties: only the documented outcomes (a dialogue the registry knows,
// 'need-more' or null; detect's yes/no/need-more), never an exception; a
// dialogue is chosen only for its own first speaker, on a port configured for
// it or by an unmistakable opening, and only when its detect says yes; for
// the registry and for each detect, every prefix is need-more or the whole
// input's verdict; the registry says need-more only up to MAX_DETECT_BYTES.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ALL_DIALOGUES } from '../../../src/agent/upgrades';
import { MAX_DETECT_BYTES, UpgradeRegistry, parseUpgradePorts } from '../../../src/agent/upgrades/registry';
import type { FirstSpeaker } from '../../../src/agent/upgrades/upgrade';
import { assertPrefixesAgree, bytesInput, cutPoints, toBuffer } from '../inputs';
import { tally } from '../tally';
import { type Corpus, type FuzzTarget, filesEnding } from '../target';

interface Input {
  config: string;
  speaker: FirstSpeaker;
  port: number;
  bytes: Buffer;
  cuts: number[];
}

const CONFIGS = ['default', 'off', 'postgres=6432,mysql=3306+3307,smtp=2525', 'pop3=5432,imap=3306', 'smtp=25+587,imap=143,pop3=110,mysql=3306'];
const registries = new Map(CONFIGS.map((c) => [c, new UpgradeRegistry(parseUpgradePorts(c, ALL_DIALOGUES), ALL_DIALOGUES)]));
const PORTS = [5432, 6432, 3306, 3307, 25, 587, 2525, 143, 110, 80, 443, 9999];
const VERDICTS = new Set(['yes', 'no', 'need-more']);

/** Openings of every protocol the registry knows, whole and cut short, with anything after them. */
const opening: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.constantFrom(
      Buffer.from('0000000804d2162f', 'hex'),
      Buffer.from('0000000804d21630', 'hex'),
      Buffer.from('4a0000000a', 'hex'),
      Buffer.from('220 mx.example ESMTP\r\n'),
      Buffer.from('220-mx.example\r\n'),
      Buffer.from('* OK [CAPABILITY IMAP4rev1] ready\r\n'),
      Buffer.from('+OK POP3 ready\r\n'),
    ),
    fc.nat({ max: 40 }),
    fc.uint8Array({ maxLength: 1500, size: 'max' }),
  )
  .map(([o, keep, tail]) => Buffer.concat([o.subarray(0, keep), toBuffer(tail)]));

function seedsOf(corpus: Corpus): Input[] {
  const as = (speaker: FirstSpeaker, ports: number[]) => (bytes: Buffer) => ports.map((port) => ({ config: 'default', speaker, port, bytes, cuts: [] }));
  return [...filesEnding(corpus, '.client').flatMap(as('client', [5432, 9999])), ...filesEnding(corpus, '.server').flatMap(as('server', [3306, 25, 143, 110, 9999]))];
}

export const upgradeOpeningsTarget: FuzzTarget<Input> = {
  name: 'upgrade-openings',
  corpusDirs: ['test/fuzz/corpus/postgres', 'test/fuzz/corpus/mysql', 'test/fuzz/corpus/smtp', 'test/fuzz/corpus/imap', 'test/fuzz/corpus/pop3'],
  smokeRuns: 20_000,
  async: false,

  seeds: seedsOf,

  input: (corpus: Corpus) =>
    fc.record({
      config: fc.constantFrom(...CONFIGS),
      speaker: fc.constantFrom<FirstSpeaker>('client', 'server'),
      port: fc.constantFrom(...PORTS),
      bytes: bytesInput([...filesEnding(corpus, '.client'), ...filesEnding(corpus, '.server')], opening),
      cuts: cutPoints,
    }),

  check(input: Input): void {
    const { bytes, speaker, port } = input;
    const registry = registries.get(input.config) as UpgradeRegistry;
    const byPort = parseUpgradePorts(input.config, ALL_DIALOGUES);

    for (const f of ALL_DIALOGUES) {
      const whole = f.detect(bytes);
      assert.ok(VERDICTS.has(whole), `${f.protocol} detect: undocumented verdict ${JSON.stringify(whole)}`);
      assertPrefixesAgree(bytes, input.cuts, whole, (prefix) => f.detect(prefix), (v) => v === 'need-more', (v) => `${v} (${f.protocol} detect)`);
    }

    const whole = registry.match(speaker, port, bytes);
    if (whole !== null && whole !== 'need-more') {
      assert.ok(ALL_DIALOGUES.includes(whole), 'a dialogue the registry knows');
      assert.equal(whole.firstSpeaker, speaker, `${whole.protocol} chosen for what the ${speaker} said first`);
      const enabled = [...byPort.values()].includes(whole);
      assert.ok(byPort.get(port) === whole || (whole.detectAnywhere && enabled), `${whole.protocol} chosen on port ${port} with upgrades ${input.config}`);
      assert.equal(whole.detect(bytes), 'yes', `${whole.protocol} chosen though its detect does not say yes`);
    }
    if (whole === 'need-more') assert.ok(bytes.length <= MAX_DETECT_BYTES, `need-more after ${bytes.length} bytes`);
    const name = (m: typeof whole): string => (m === null || m === 'need-more' ? String(m) : m.protocol);
    tally(name(whole));
    assertPrefixesAgree(bytes, input.cuts, whole, (prefix) => registry.match(speaker, port, prefix), (m) => m === 'need-more', name);
  },
};

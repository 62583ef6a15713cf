// SPDX-License-Identifier: MIT
// The fuzz inputs every target draws from: the seeds of its corpus as they
// are, the seeds mutated as libFuzzer mutates (bit flips, interesting bytes,
// length fields set to edge values, inserts, deletes, copies, splices,
// truncation), random bytes, and a target's own structure-aware generator;
// plus the cut points that split one input into reads.
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';

/** Byte values that sit on the edges parsers test: lengths, separators, the TLS and mail protocols' markers. */
const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0d, 0x15, 0x16, 0x20, 0x2e, 0x2d, 0x30, 0x7f, 0x80, 0xfe, 0xff];
/** Values for 16- and 24-bit length fields: zero, one, the edges of one byte, two bytes, a TLS record. */
const INTERESTING_LENGTHS = [0, 1, 2, 3, 4, 5, 8, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0x4100, 0x4101, 0x7fff, 0x8000, 0xffff, 0x10000, 0xffffff];

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'byte'; at: number; value: number }
  | { op: 'len'; at: number; width: 2 | 3; value: number; relative: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; n: number }
  | { op: 'copy'; from: number; to: number; n: number }
  | { op: 'splice'; at: number; other: number; from: number }
  | { op: 'truncate'; at: number };

const position = fc.nat({ max: 0xffff });

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: position, bit: fc.nat({ max: 7 }) }),
  fc.record({ op: fc.constant('byte' as const), at: position, value: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.nat({ max: 255 })) }),
  fc.record({
    op: fc.constant('len' as const),
    at: position,
    width: fc.constantFrom(2 as const, 3 as const),
    value: fc.constantFrom(...INTERESTING_LENGTHS),
    // Most length bugs are off by one: shift the field's own value instead, half the time.
    relative: fc.oneof(fc.constant(0), fc.integer({ min: -4, max: 4 })),
  }),
  fc.record({ op: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('delete' as const), at: position, n: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ op: fc.constant('copy' as const), from: position, to: position, n: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ op: fc.constant('splice' as const), at: position, other: fc.nat(), from: position }),
  fc.record({ op: fc.constant('truncate' as const), at: position }),
);

function applyMutation(b: Buffer, m: Mutation, seeds: readonly Buffer[]): Buffer {
  const at = (p: number, n = b.length): number => (n === 0 ? 0 : p % n);
  switch (m.op) {
    case 'flip': {
      if (b.length === 0) return b;
      const out = Buffer.from(b);
      const i = at(m.at);
      out[i] = (out[i] ?? 0) ^ (1 << m.bit);
      return out;
    }
    case 'byte': {
      if (b.length === 0) return Buffer.from([m.value]);
      const out = Buffer.from(b);
      out[at(m.at)] = m.value;
      return out;
    }
    case 'len': {
      if (b.length < m.width) return b;
      const out = Buffer.from(b);
      const i = at(m.at, b.length - m.width + 1);
      const max = m.width === 2 ? 0xffff : 0xffffff;
      const own = out.readUIntBE(i, m.width);
      const v = m.relative === 0 ? Math.min(m.value, max) : Math.max(0, Math.min(max, own + m.relative));
      out.writeUIntBE(v, i, m.width);
      return out;
    }
    case 'insert': {
      const i = at(m.at, b.length + 1);
      return Buffer.concat([b.subarray(0, i), m.bytes, b.subarray(i)]);
    }
    case 'delete': {
      const i = at(m.at, b.length + 1);
      return Buffer.concat([b.subarray(0, i), b.subarray(i + m.n)]);
    }
    case 'copy': {
      if (b.length === 0) return b;
      const from = at(m.from);
      const piece = b.subarray(from, from + m.n);
      const to = at(m.to, b.length + 1);
      return Buffer.concat([b.subarray(0, to), piece, b.subarray(to)]);
    }
    case 'splice': {
      const other = seeds.length === 0 ? b : (seeds[m.other % seeds.length] as Buffer);
      const i = at(m.at, b.length + 1);
      return Buffer.concat([b.subarray(0, i), other.subarray(at(m.from, other.length + 1))]);
    }
    case 'truncate':
      return b.subarray(0, at(m.at, b.length + 1));
  }
}

/** A seed with 1 to `max` mutations applied in turn. */
export function mutated(seeds: readonly Buffer[], max = 8): fc.Arbitrary<Buffer> {
  if (seeds.length === 0) return fc.uint8Array({ maxLength: 256 }).map(toBuffer);
  return fc
    .tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: max }))
    .map(([seed, ms]) => ms.reduce((b, m) => applyMutation(b, m, seeds), seed));
}

export const toBuffer = (a: Uint8Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.length);

/**
 * The mix every byte-input target draws from: seeds as they are, mutated
 * seeds (most of the time), random bytes, and `structured` when the target
 * has a generator of its own.
 */
export function bytesInput(seeds: readonly Buffer[], structured?: fc.Arbitrary<Buffer>, maxRandom = 2048): fc.Arbitrary<Buffer> {
  const arms: fc.WeightedArbitrary<Buffer>[] = [
    { weight: 12, arbitrary: mutated(seeds) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: maxRandom, size: 'max' }).map(toBuffer) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }).map(toBuffer) },
  ];
  if (seeds.length > 0) arms.push({ weight: 1, arbitrary: fc.constantFrom(...seeds) });
  if (structured) arms.push({ weight: 6, arbitrary: structured }, { weight: 4, arbitrary: structured.chain((s) => mutated([s], 4)) });
  return fc.oneof(...arms);
}

/** Cut points in an input of unknown length (taken modulo its length + 1), sorted when applied. */
export const cutPoints = fc.array(fc.nat({ max: 0xffff }), { maxLength: 12 });

/** `data` split at `cuts` (each taken modulo data.length + 1): the reads a peer's bytes arrive in. Empty pieces are dropped. */
export function chunked(data: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, data.length]) {
    if (p > prev) out.push(data.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  return out;
}

/** Prefix lengths to check for an input of `n` bytes: all of them when short, else the cut points plus the edges. */
export function prefixLengths(n: number, cuts: readonly number[]): number[] {
  if (n <= 64) return Array.from({ length: n }, (_, i) => i);
  const picks = new Set([0, 1, 2, 3, 4, 5, 6, n - 1, n - 2]);
  for (const c of cuts) picks.add(c % n);
  return [...picks].filter((p) => p >= 0 && p < n);
}

/**
 * Need-more never turns into another verdict: each prefix of `bytes` (those
 * prefixLengths picks, from `from` bytes on) gets need-more or `whole`.
 * `verdict` may assert more of each prefix's result.
 */
export function assertPrefixesAgree<V>(
  bytes: Buffer,
  cuts: readonly number[],
  whole: V,
  verdict: (prefix: Buffer) => V,
  isNeedMore: (v: V) => boolean,
  show: (v: V) => string = (v) => JSON.stringify(v),
  from = 0,
): void {
  for (const n of prefixLengths(bytes.length, cuts)) {
    if (n < from) continue;
    const part = verdict(bytes.subarray(0, n));
    // The message is built only on failure: this runs a dozen times per input.
    if (!isNeedMore(part) && !isDeepStrictEqual(part, whole)) assert.fail(`the first ${n} of ${bytes.length} bytes say ${show(part)}, the whole ${show(whole)}`);
  }
}

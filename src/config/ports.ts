// SPDX-License-Identifier: MIT
// The port-set grammar: "23-65535", "80,443,8000-8999"; exclusions are a
// second spec subtracted from the first. Pure.
import { JfeError } from '../errors';

export interface PortRange {
  from: number;
  to: number;
}

const MIN_PORT = 1;
const MAX_PORT = 65535;

/** An immutable set of TCP ports, kept as sorted, disjoint, non-adjacent ranges. */
export class PortSet {
  readonly ranges: readonly PortRange[];

  private constructor(ranges: PortRange[]) {
    this.ranges = Object.freeze(ranges.map((r) => Object.freeze({ ...r })));
  }

  static fromRanges(ranges: readonly PortRange[]): PortSet {
    const sorted = [...ranges].sort((a, b) => a.from - b.from);
    const merged: PortRange[] = [];
    for (const r of sorted) {
      const last = merged[merged.length - 1];
      if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
      else merged.push({ from: r.from, to: r.to });
    }
    return new PortSet(merged);
  }

  /** One bit per port, in 64-bit words of host byte order: bpf/jfe.h's struct jfe_ports. */
  static fromBitmap(bitmap: Buffer): PortSet {
    const words = new BigUint64Array(Uint8Array.from(bitmap).buffer, 0, 1024);
    const ranges: PortRange[] = [];
    let start = -1;
    for (let port = 0; port <= MAX_PORT + 1; port++) {
      const on = port <= MAX_PORT && ((words[port >> 6] ?? 0n) >> BigInt(port & 63)) & 1n;
      if (on && start < 0) start = port;
      if (!on && start >= 0) {
        ranges.push({ from: start, to: port - 1 });
        start = -1;
      }
    }
    return new PortSet(ranges);
  }

  minus(other: PortSet): PortSet {
    const out: PortRange[] = [];
    for (const r of this.ranges) {
      let pieces: PortRange[] = [{ ...r }];
      for (const x of other.ranges) {
        pieces = pieces.flatMap((p) => {
          if (x.to < p.from || x.from > p.to) return [p];
          const left = x.from > p.from ? [{ from: p.from, to: x.from - 1 }] : [];
          const right = x.to < p.to ? [{ from: x.to + 1, to: p.to }] : [];
          return [...left, ...right];
        });
      }
      out.push(...pieces);
    }
    return PortSet.fromRanges(out);
  }

  has(port: number): boolean {
    return this.ranges.some((r) => port >= r.from && port <= r.to);
  }

  get size(): number {
    return this.ranges.reduce((n, r) => n + r.to - r.from + 1, 0);
  }

  equals(other: PortSet): boolean {
    return this.toString() === other.toString();
  }

  /**
   * The bitmap as the BPF program reads it: bit (port & 63) of 64-bit word
   * (port >> 6). Built through a BigUint64Array so the words are in host
   * byte order, as the kernel copies them.
   */
  toBitmap(): Buffer {
    const words = new BigUint64Array(1024);
    for (const r of this.ranges) {
      for (let p = r.from; p <= r.to; p++) {
        words[p >> 6] = (words[p >> 6] ?? 0n) | (1n << BigInt(p & 63));
      }
    }
    return Buffer.from(words.buffer);
  }

  /** The canonical spec, e.g. "23-24,26-65535"; "" for the empty set. */
  toString(): string {
    return this.ranges.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(',');
  }
}

function parsePort(text: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text)) {
    throw new JfeError('JFE_ERR_PORTS_INVALID', `invalid port "${text}" in "${spec}": expected a number from 1 to 65535`);
  }
  const port = Number(text);
  if (port < MIN_PORT || port > MAX_PORT) {
    throw new JfeError('JFE_ERR_PORTS_INVALID', `port ${port} out of range in "${spec}": ports are 1 to 65535`);
  }
  return port;
}

/**
 * Parses "80", "23-65535", "80,443,8000-8999" (spaces around items allowed).
 * An empty spec is the empty set only when allowEmpty (for exclusions).
 */
export function parsePortSet(spec: string, allowEmpty = false): PortSet {
  const trimmed = spec.trim();
  if (trimmed === '') {
    if (allowEmpty) return PortSet.fromRanges([]);
    throw new JfeError('JFE_ERR_PORTS_INVALID', 'empty port set: give ports like "23-65535" or "80,443"');
  }
  const ranges: PortRange[] = [];
  for (const raw of trimmed.split(',')) {
    const item = raw.trim();
    if (item === '') throw new JfeError('JFE_ERR_PORTS_INVALID', `empty item in port set "${spec}"`);
    const dash = item.indexOf('-');
    if (dash < 0) {
      const p = parsePort(item, spec);
      ranges.push({ from: p, to: p });
      continue;
    }
    const from = parsePort(item.slice(0, dash).trim(), spec);
    const to = parsePort(item.slice(dash + 1).trim(), spec);
    if (from > to) {
      throw new JfeError('JFE_ERR_PORTS_INVALID', `range "${item}" in "${spec}" runs backwards: write ${to}-${from}`);
    }
    ranges.push({ from, to });
  }
  return PortSet.fromRanges(ranges);
}

/** The steered set: ports minus exclusions; must not end up empty. */
export function resolvePortSet(ports: string, excludePorts: string): PortSet {
  const set = parsePortSet(ports).minus(parsePortSet(excludePorts, true));
  if (set.size === 0) {
    throw new JfeError('JFE_ERR_PORTS_INVALID', `ports "${ports}" minus excluded "${excludePorts}" leaves no port to steer`);
  }
  return set;
}

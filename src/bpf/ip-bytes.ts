// SPDX-License-Identifier: MIT
// IP address text to the network-order bytes that BPF map keys hold. Pure.
import net from 'node:net';
import type { Family } from '../native';

export interface IpBytes {
  family: Family;
  bytes: Buffer;
}

function v4Bytes(addr: string, out: Buffer, offset: number): void {
  const parts = addr.split('.');
  for (let i = 0; i < 4; i++) out[offset + i] = Number(parts[i]);
}

/** Parses an IPv4 or IPv6 address (a zone suffix is ignored); null if it is neither. */
export function ipToBytes(text: string): IpBytes | null {
  const addr = text.replace(/%.*$/, '');
  if (net.isIPv4(addr)) {
    const bytes = Buffer.alloc(4);
    v4Bytes(addr, bytes, 0);
    return { family: 4, bytes };
  }
  if (!net.isIPv6(addr)) return null;
  const bytes = Buffer.alloc(16);
  let rest = addr;
  let groups = 8;
  // An embedded IPv4 address ("::ffff:192.0.2.1") fills the last 4 bytes.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(rest)?.[1];
  if (v4 !== undefined) {
    v4Bytes(v4, bytes, 12);
    rest = rest.slice(0, -v4.length);
    if (!rest.endsWith('::')) rest = rest.slice(0, -1);
    groups = 6;
  }
  const gap = rest.indexOf('::');
  let words: string[];
  if (gap < 0) {
    words = rest.split(':');
  } else {
    const head = gap > 0 ? rest.slice(0, gap).split(':') : [];
    const tail = rest.length > gap + 2 ? rest.slice(gap + 2).split(':') : [];
    words = [...head, ...new Array<string>(groups - head.length - tail.length).fill('0'), ...tail];
  }
  for (let i = 0; i < groups; i++) bytes.writeUInt16BE(parseInt(words[i] ?? '0', 16), i * 2);
  return { family: 6, bytes };
}

/** The text form of key bytes, as Node prints addresses. */
export function bytesToIp(family: Family, bytes: Buffer): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const words: string[] = [];
  for (let i = 0; i < 8; i++) words.push(bytes.readUInt16BE(i * 2).toString(16));
  // Compress the longest run of zero words, as inet_ntop does.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

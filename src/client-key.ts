// SPDX-License-Identifier: MIT
// Which clients count as one for the limits a client must share with others
// (connections held, ACME orders): an IPv4 address, or an IPv6 /64. A /64 is
// one host or one site, and whoever has one address of it has all 2^64. Pure,
// and cheap enough to run once per connection.

export interface ClientKey {
  family: 4 | 6;
  /** IPv4: the address; IPv6: the first 32 bits of the /64. */
  hi: number;
  /** IPv4: 0; IPv6: the second 32 bits of the /64. */
  lo: number;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** The key of a client address as Node prints it (a zone suffix is ignored); null if it is not an address. */
export function clientKey(address: string): ClientKey | null {
  const pct = address.indexOf('%');
  const a = pct < 0 ? address : address.slice(0, pct);
  if (a.indexOf(':') < 0) {
    const v4 = parseV4(a);
    return v4 === null ? null : { family: 4, hi: v4, lo: 0 };
  }
  // An IPv4-mapped address (a dual-stack socket) is that IPv4 client.
  if (a.startsWith('::ffff:') && a.indexOf('.') > 0) {
    const v4 = parseV4(a.slice(7));
    return v4 === null ? null : { family: 4, hi: v4, lo: 0 };
  }
  const groups = v6Groups(a);
  if (groups === null) return null;
  return { family: 6, hi: ((groups[0] << 16) | groups[1]) >>> 0, lo: ((groups[2] << 16) | groups[3]) >>> 0 };
}

/** The text form of a key, for logs and map keys: "192.0.2.7" or "2001:db8:0:1::/64". */
export function clientKeyText(k: ClientKey): string {
  if (k.family === 4) return `${k.hi >>> 24}.${(k.hi >>> 16) & 255}.${(k.hi >>> 8) & 255}.${k.hi & 255}`;
  const g = [k.hi >>> 16, k.hi & 0xffff, k.lo >>> 16, k.lo & 0xffff].map((x) => x.toString(16));
  return `${g.join(':')}::/64`;
}

function parseV4(a: string): number | null {
  let value = 0;
  let octet = -1;
  let dots = 0;
  for (let i = 0; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c === 46 /* . */) {
      if (octet < 0 || ++dots > 3) return null;
      value = value * 256 + octet;
      octet = -1;
    } else if (c >= 48 && c <= 57) {
      octet = octet < 0 ? c - 48 : octet * 10 + (c - 48);
      if (octet > 255) return null;
    } else {
      return null;
    }
  }
  if (dots !== 3 || octet < 0) return null;
  return (value * 256 + octet) >>> 0;
}

/** The first four 16-bit groups of an IPv6 address in text ("::" expanded); null if it is not one. */
function v6Groups(a: string): [number, number, number, number] | null {
  const gap = a.indexOf('::');
  if (gap >= 0 && a.indexOf('::', gap + 1) >= 0) return null;
  const head = gap < 0 ? a.split(':') : gap === 0 ? [] : a.slice(0, gap).split(':');
  const rest = gap < 0 ? '' : a.slice(gap + 2);
  const tail = rest === '' ? [] : rest.split(':');
  // A trailing IPv4 part ("64:ff9b::192.0.2.1") stands for the last two groups.
  const lastPart = (gap < 0 ? head : tail).at(-1);
  const v4Tail = lastPart !== undefined && lastPart.indexOf('.') >= 0;
  if (v4Tail && parseV4(lastPart) === null) return null;
  const groups = [...head, ...tail];
  if (v4Tail) groups.pop();
  if (!groups.every((g) => HEX_GROUP.test(g))) return null;
  const count = groups.length + (v4Tail ? 2 : 0);
  if (gap < 0 ? count !== 8 : count > 7) return null;
  const zeros = 8 - count;
  const out: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    // Group i is from the head, one of the zeros of "::", or from the tail.
    const g = i < head.length ? head[i] : i < head.length + zeros ? '0' : tail[i - head.length - zeros];
    out[i] = g === undefined || g.indexOf('.') >= 0 ? 0 : parseInt(g, 16);
  }
  return out;
}

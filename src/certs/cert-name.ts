// SPDX-License-Identifier: MIT
// Names a certificate is issued for: SNI (untrusted) or the dialled address,
// normalised to one canonical string, and its file-safe form on disk.
import net from 'node:net';

const MAX_DNS_NAME = 253;
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * An IP address in canonical text: IPv4 dotted quad; IPv6 in RFC 5952 form
 * (lower case, longest zero run compressed), zone index dropped, and an
 * IPv4-mapped IPv6 address (a v4 client on a dual-stack socket) as IPv4.
 * Null when `addr` is not an IP address.
 */
export function canonicalIp(addr: string): string | null {
  const noZone = addr.includes('%') ? addr.slice(0, addr.indexOf('%')) : addr;
  const family = net.isIP(noZone);
  if (family === 4) return noZone;
  if (family !== 6) return null;
  // The WHATWG URL parser serialises IPv6 hosts in RFC 5952 form.
  const host = new URL(`http://[${noZone}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const hi = parseInt(mapped[1] ?? '0', 16);
    const lo = parseInt(mapped[2] ?? '0', 16);
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return host;
}

/**
 * A DNS name as a certificate may carry it: lower case, no trailing dot, at
 * most 253 characters, labels of letters, digits and inner hyphens (RFC 1123
 * §2.1), not all-numeric at the top (RFC 3696 §2, so "1.2.3.999" is no name).
 * Null when `raw` is not one. No wildcards, no underscores.
 */
export function normaliseDnsName(raw: string): string | null {
  let name = raw.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > MAX_DNS_NAME) return null;
  const labels = name.split('.');
  for (const label of labels) {
    if (!LABEL_RE.test(label)) return null;
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return null;
  return name;
}

/**
 * The name to issue for a ClientHello's SNI: a DNS name, or an IP literal
 * (which clients should not send in SNI, but some do). Null when invalid: the
 * caller then uses the dialled address.
 */
export function normaliseServername(sni: string): string | null {
  if (sni.length > MAX_DNS_NAME + 1) return null;
  return canonicalIp(sni) ?? normaliseDnsName(sni);
}

export function isIpName(name: string): boolean {
  return net.isIP(name) !== 0;
}

/**
 * The directory name of a normalised name: DNS names and IPv4 as they are;
 * IPv6 with ':' as '_' (a character no normalised DNS name contains).
 */
export function fileSafeName(name: string): string {
  return name.toLowerCase().replace(/:/g, '_');
}

/** The inverse of fileSafeName; null when the directory name is no normalised name. */
export function nameFromFileSafe(base: string): string | null {
  const name = base.replace(/_/g, ':');
  const ip = canonicalIp(name);
  if (ip !== null) return ip === name ? name : null;
  return normaliseDnsName(name) === name ? name : null;
}

// SPDX-License-Identifier: MIT
// The list-valued settings of the name policy: repeatable flags and
// comma-separated values, each item checked. Pure.
import net from 'node:net';
import { getPublicSuffix } from 'tldts';
import { JfeError } from '../errors';

/**
 * A repeated flag arrives as an array, an environment variable or a single
 * flag as one string; both may hold comma- or space-separated items.
 */
export function splitList(v: string | readonly string[]): string[] {
  const parts = typeof v === 'string' ? [v] : v;
  return parts.flatMap((p) => p.split(/[\s,]+/)).filter((x) => x.length > 0);
}

// The same rules as normaliseDnsName in certs/cert-name.ts (config/ may not
// import certs/): RFC 1123 labels, at most 253 characters, not all-numeric at the top.
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
function isDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((l) => LABEL_RE.test(l)) && !/^[0-9]+$/.test(labels[labels.length - 1] ?? '');
}

/**
 * A --domain item: "example.com" or "*.example.com", lower case, no trailing
 * dot. A pattern that covers a whole public suffix ("*.co.uk", "*.github.io")
 * is refused: it would let anyone who owns a name under it choose ours.
 */
export function normaliseDomainPattern(raw: string): string {
  let p = raw.trim().toLowerCase();
  if (p.endsWith('.')) p = p.slice(0, -1);
  const wildcard = p.startsWith('*.');
  const base = wildcard ? p.slice(2) : p;
  if (!isDnsName(base)) {
    throw new JfeError('JFE_ERR_CONFIG_INVALID', `"${raw}" is not a domain: write a name ("example.com") or "*.example.com" for every name below it`);
  }
  if (wildcard && getPublicSuffix(base, { allowPrivateDomains: true }) === base) {
    throw new JfeError('JFE_ERR_CONFIG_INVALID', `"${raw}" covers the public suffix "${base}": anyone could register a name under it; list your own domains`);
  }
  return p;
}

/** A --public-ip item: an IPv4 or IPv6 address (no brackets, no zone). */
export function checkIpAddress(raw: string): string {
  const ip = raw.trim();
  if (net.isIP(ip) === 0) throw new JfeError('JFE_ERR_CONFIG_INVALID', `"${raw}" is not an IP address`);
  return ip;
}

/** --dns-server: "10.0.0.53", "10.0.0.53:5353", "fd00::53" or "[fd00::53]:5353", as node:dns setServers takes them. */
export function checkDnsServer(raw: string): string {
  const v = raw.trim();
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(v) ?? /^([0-9.]+)(?::(\d+))?$/.exec(v);
  const host = m ? m[1] ?? '' : v;
  const port = m?.[2];
  const okHost = m ? net.isIP(host) !== 0 && (v.startsWith('[') ? net.isIPv6(host) : net.isIPv4(host)) : net.isIPv6(v);
  const okPort = port === undefined || (Number(port) >= 1 && Number(port) <= 65535);
  if (!okHost || !okPort) {
    throw new JfeError('JFE_ERR_CONFIG_INVALID', `"${raw}" is not a DNS server: write an IP address with an optional port, e.g. 10.0.0.53, 10.0.0.53:5353 or [fd00::53]:5353`);
  }
  return v;
}

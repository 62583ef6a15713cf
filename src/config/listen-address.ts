// SPDX-License-Identifier: MIT
// The address an HTTP endpoint of jfe listens on: "host:port", "[v6]:port",
// ":port" (every address) or "off".
import net from 'node:net';
import { JfeError } from '../errors';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Null for "off". Throws JFE_ERR_CONFIG_INVALID with what is wrong. */
export function parseListenAddress(spec: string): ListenAddress | null {
  const v = spec.trim();
  if (v === 'off') return null;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v);
  const host = m ? (m[1] ?? m[2] ?? '') : '';
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new JfeError('JFE_ERR_CONFIG_INVALID', `must be host:port (e.g. 127.0.0.1:9464, [::1]:9464, :9464) or "off", got "${spec}"`);
  }
  if (m[1] !== undefined && !net.isIPv6(host)) {
    throw new JfeError('JFE_ERR_CONFIG_INVALID', `"${host}" in brackets is not an IPv6 address`);
  }
  if (m[1] === undefined && host !== '' && !net.isIPv4(host) && !/^[a-zA-Z0-9.-]{1,253}$/.test(host)) {
    throw new JfeError('JFE_ERR_CONFIG_INVALID', `"${host}" is not an IPv4 address or host name (write IPv6 as [addr]:port)`);
  }
  return { host: host === '' ? '::' : host, port };
}

/** host:port as a user writes it (brackets around IPv6). */
export function formatListenAddress(a: ListenAddress): string {
  return net.isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

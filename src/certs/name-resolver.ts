// SPDX-License-Identifier: MIT
// The A and AAAA records of a name, for the policy's "does it point here?"
// check: through the system resolver or one configured server (split DNS,
// the tests' pebble-challtestsrv), with a bound on time.
import { Resolver } from 'node:dns/promises';
import { canonicalIp } from './cert-name';

export interface NameResolverOptions {
  /** "IP[:port]" or "[IPv6]:port"; null: the system's resolvers (/etc/resolv.conf). */
  server: string | null;
  /** Per query attempt; c-ares retries once. */
  timeoutMs: number;
}

/** Canonical addresses, or the error that left the answer unknown (a failure, not "no records"). */
export interface Resolved {
  addresses: string[];
  /** The DNS error code of a family that failed (SERVFAIL, timeout, …); null when both answered. */
  error: string | null;
}

/** "No such name" and "no records of this type" are answers, not failures. */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'NODATA']);

export type ResolveAddresses = (name: string) => Promise<Resolved>;

export function createNameResolver(opts: NameResolverOptions): ResolveAddresses {
  const resolver = new Resolver({ timeout: opts.timeoutMs, tries: 2 });
  if (opts.server !== null) resolver.setServers([opts.server]);
  const family = async (query: Promise<string[]>): Promise<Resolved> => {
    try {
      return { addresses: (await query).map((a) => canonicalIp(a) ?? a), error: null };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
      return { addresses: [], error: NO_RECORDS.has(code) ? null : code };
    }
  };
  return async (name) => {
    const [v4, v6] = await Promise.all([family(resolver.resolve4(name)), family(resolver.resolve6(name))]);
    return { addresses: [...v4.addresses, ...v6.addresses], error: v4.error ?? v6.error };
  };
}

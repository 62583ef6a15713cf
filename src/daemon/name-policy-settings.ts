// SPDX-License-Identifier: MIT
// From the validated settings to the name policy's options: the one place
// where config/ (flags, env) meets certs/policy.ts.
import type { NamePolicyOptions } from '../certs/policy';
import type { Settings } from '../config/load';

/** The settings of the name policy; `jfe run` takes them with the ACME ones. */
export const NAME_POLICY_OPTION_NAMES = [
  'domain', 'ask', 'askTimeout', 'publicIp', 'dnsServer', 'rateLimitDomain', 'rateLimitTotal', 'rateLimitClientShare', 'negativeCacheTtl', 'negativeCacheSize',
] as const;
export type NamePolicySettings = Settings<(typeof NAME_POLICY_OPTION_NAMES)[number]>;

export function namePolicyOptions(s: NamePolicySettings): NamePolicyOptions {
  return {
    domains: s.domain,
    askUrl: s.ask === '' ? null : s.ask,
    askTimeoutMs: s.askTimeout,
    publicIps: s.publicIp,
    dnsServer: s.dnsServer === '' ? null : s.dnsServer,
    rateLimitDomain: s.rateLimitDomain,
    rateLimitTotal: s.rateLimitTotal,
    rateLimitClientShare: s.rateLimitClientShare,
    negativeCacheTtlMs: s.negativeCacheTtl,
    negativeCacheSize: s.negativeCacheSize,
  };
}

// SPDX-License-Identifier: MIT
// The name policy for ACME: which SNI names (attacker input) may cost a
// request to a CA. Checks run cheapest first; the first refusal wins.
import type { Logger } from '../log';
import type { CertEvents, PolicyRefusal } from './cert-events';
import { canonicalIp, normaliseDnsName } from './cert-name';
import type { NamePolicy, PolicyVerdict } from './name-policy';

export interface NamePolicyOptions {
  /** Allowed names: exact ("example.com") or a suffix pattern ("*.example.com": any name below it). */
  domains: readonly string[];
  /** An URL asked `?domain=<name>`; 200 allows. Null: not configured. */
  askUrl: string | null;
  /** Addresses, besides the dialled one, that a name may resolve to (hosts behind NAT). */
  publicIps: readonly string[];
}

export interface NamePolicyDeps {
  log: Logger;
  events: CertEvents;
}

/** "*.example.com" matches "a.example.com" and "b.a.example.com", not "example.com". */
export function matchesDomain(name: string, pattern: string): boolean {
  if (pattern.startsWith('*.')) return name.endsWith(pattern.slice(1));
  return name === pattern;
}

class ConfiguredPolicy implements NamePolicy {
  constructor(
    private readonly opts: NamePolicyOptions,
    private readonly deps: NamePolicyDeps,
  ) {}

  async check(name: string, dialledAddress: string): Promise<PolicyVerdict> {
    const verdict = this.syntax(name) ?? this.allowList(name);
    if (verdict !== null) return this.refuse(name, dialledAddress, verdict);
    return { ok: true };
  }

  recordOrder(_name: string): void {}

  private syntax(name: string): PolicyRefusal | null {
    if (canonicalIp(name) !== null) return 'ip-literal';
    if (name.includes('*')) return 'wildcard';
    if (normaliseDnsName(name) !== name) return 'invalid-name';
    return null;
  }

  private allowList(name: string): PolicyRefusal | null {
    if (this.opts.domains.some((d) => matchesDomain(name, d))) return null;
    return 'not-allowed';
  }

  private refuse(name: string, dialledAddress: string, reason: PolicyRefusal): PolicyVerdict {
    this.deps.events.policyRefused(reason);
    // The name is attacker input: logged (truncated), never a metric label.
    this.deps.log.info({ name: name.slice(0, 64), dialledAddress, reason }, 'certificate name refused by policy');
    return { ok: false, reason };
  }
}

/** The policy for the configured options; with no domain and no ask URL, every name is refused. */
export function createNamePolicy(opts: NamePolicyOptions, deps: NamePolicyDeps): NamePolicy {
  return new ConfiguredPolicy(opts, deps);
}

// SPDX-License-Identifier: MIT
// The registered domain of a name, as CAs count their rate limits:
// a.example.co.uk and b.example.co.uk both belong to example.co.uk.
import { getDomain } from 'tldts';

/**
 * The name's registered domain by the Public Suffix List (tldts bundles the
 * list and updates it with each release), private section included, as Let's
 * Encrypt counts: x.github.io and y.github.io are two registered domains.
 * A name with no registered domain (a bare suffix, "localhost") is its own group.
 */
export function registeredDomain(name: string): string {
  return getDomain(name, { allowPrivateDomains: true }) ?? name;
}

// SPDX-License-Identifier: MIT
// When an ACME leaf is renewed: at two thirds of its lifetime, plus a jitter of
// up to a thirtieth of it, derived from the serial so that every process of
// one jfe agrees on the moment (and many hosts' leaves do not renew at once).
import type { CertInfo } from '../store';

export function renewalAtMs(info: Pick<CertInfo, 'notBefore' | 'notAfter' | 'serial'>): number {
  const start = info.notBefore.getTime();
  const life = info.notAfter.getTime() - start;
  const frac = parseInt(info.serial.slice(-6) || '0', 16) / 0x1000000;
  return start + (life * 2) / 3 + (Number.isFinite(frac) ? frac : 0) * (life / 30);
}

export function acmeRenewalDue(info: Pick<CertInfo, 'notBefore' | 'notAfter' | 'serial'>, nowMs: number): boolean {
  return nowMs >= renewalAtMs(info);
}

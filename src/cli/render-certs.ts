// SPDX-License-Identifier: MIT
// Human text and --json for `jfe certs list`. Pure: strings out, stdout only.
import type { StoredCert } from '../daemon/certs-list';

function iso(d: Date | null): string {
  return d === null ? '-' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function renderCertList(rows: readonly StoredCert[], stateDir: string): string {
  if (rows.length === 0) return `no certificates stored in ${stateDir}`;
  const table = [
    ['NAME', 'ISSUER', 'NOT AFTER', 'DAYS LEFT'],
    ...rows.map((r) => [
      r.name,
      r.issuer,
      iso(r.notAfter),
      r.problem !== null ? `- (unusable: ${r.problem}; issued again when asked for)` : r.daysLeft !== null && r.daysLeft < 0 ? `${r.daysLeft} (expired)` : String(r.daysLeft),
    ]),
  ];
  const widths = [0, 1, 2].map((i) => Math.max(...table.map((row) => (row[i] ?? '').length)));
  return table.map((row) => row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i] ?? 0) : cell)).join('  ')).join('\n');
}

export function renderCertListJson(rows: readonly StoredCert[]): string {
  return JSON.stringify(
    rows.map((r) => ({ name: r.name, issuer: r.issuer, notBefore: r.notBefore, notAfter: r.notAfter, daysLeft: r.daysLeft, serial: r.serial, problem: r.problem })),
    null,
    2,
  );
}

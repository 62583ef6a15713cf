// SPDX-License-Identifier: MIT
// Reads the files under deploy/ for the tests that keep them honest.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './spawn';

export const DEPLOY = {
  unit: path.join(REPO_ROOT, 'deploy', 'systemd', 'jfe.service'),
  containerfile: path.join(REPO_ROOT, 'deploy', 'container', 'Containerfile'),
  daemonset: path.join(REPO_ROOT, 'deploy', 'kubernetes', 'daemonset.yaml'),
  install: path.join(REPO_ROOT, 'scripts', 'install.sh'),
};

/** Every value of `key=` in the unit file (a key may repeat). */
export function unitValues(key: string): string[] {
  return fs
    .readFileSync(DEPLOY.unit, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1).trim());
}

/** The capabilities of the unit's bounding set, e.g. ["CAP_BPF", "CAP_NET_ADMIN"]. */
export function unitCapabilities(): string[] {
  return unitValues('CapabilityBoundingSet').flatMap((v) => v.split(/\s+/)).filter((c) => c !== '').sort();
}

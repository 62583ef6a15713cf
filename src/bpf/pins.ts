// SPDX-License-Identifier: MIT
// The pin directory layout: <pin-dir>/<netns-inode>/<object>, so several
// namespaces and test instances live side by side.
import path from 'node:path';

export const MAP_NAMES = ['ports', 'config', 'sockets', 'bypass', 'listeners', 'counters'] as const;
export type MapName = (typeof MAP_NAMES)[number];
export const PIN_NAMES = ['link', 'prog', ...MAP_NAMES] as const;
export type PinName = (typeof PIN_NAMES)[number];

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/jfe';

export function netnsPinDir(pinDir: string, netnsIno: number): string {
  return path.join(pinDir, String(netnsIno));
}

export function pinPath(dir: string, name: PinName): string {
  return path.join(dir, name);
}

/** Where attach builds a new set of pins before renaming it into place (bpffs refuses names with dots). */
export function stagingPinDir(pinDir: string, netnsIno: number): string {
  return path.join(pinDir, `staging-${netnsIno}-${process.pid}`);
}

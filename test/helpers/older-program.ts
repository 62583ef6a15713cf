// SPDX-License-Identifier: MIT
// "Another jfe build" of the steering program, for upgrade tests: this
// source compiled with one edit, loaded by bpftool, and put where an older
// jfe would have left it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { MAP_NAMES, pinPath } from '../../src/bpf/pins';
import { native } from '../../src/native';
import { REPO_ROOT, runSync } from './spawn';

export const BPFTOOL = fs.existsSync('/usr/sbin/bpftool') ? '/usr/sbin/bpftool' : 'bpftool';

/** Compiles bpf/jfe.bpf.c with `edit` applied to it or to jfe.h; returns the object's path. */
export function compileVariant(dir: string, edit: { file: 'jfe.bpf.c' | 'jfe.h'; from: string; to: string }): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['jfe.bpf.c', 'jfe.h']) {
    const text = fs.readFileSync(path.join(REPO_ROOT, 'bpf', f), 'utf8');
    if (f === edit.file) assert.ok(text.includes(edit.from), `${f} still contains ${edit.from}`);
    fs.writeFileSync(path.join(dir, f), f === edit.file ? text.replace(edit.from, edit.to) : text);
  }
  const arch = runSync('gcc', ['-dumpmachine']).stdout.trim();
  const out = path.join(dir, 'variant.o');
  const r = runSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${arch}`, `-I${dir}`, '-c', path.join(dir, 'jfe.bpf.c'), '-o', out]);
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/**
 * Swaps an older build (same maps, another hash seed) into the attached link
 * at `pins`, on the attached maps, as an older jfe would have left it.
 */
export function installOlderBuild(pins: string, workDir: string): void {
  const variant = compileVariant(workDir, { file: 'jfe.bpf.c', from: '0x6a6665', to: '0x6a6666' });
  const older = path.join(pins, 'older');
  const load = runSync(BPFTOOL, ['prog', 'load', variant, older, 'type', 'sk_lookup', ...MAP_NAMES.flatMap((m) => ['map', 'name', m, 'pinned', pinPath(pins, m)])]);
  assert.equal(load.status, 0, load.stderr);
  const n = native();
  const link = n.objGet(pinPath(pins, 'link'));
  const olderFd = n.objGet(older);
  try {
    n.linkUpdate(link, olderFd);
  } finally {
    fs.closeSync(link);
    fs.closeSync(olderFd);
  }
  fs.rmSync(pinPath(pins, 'prog'));
  fs.renameSync(older, pinPath(pins, 'prog'));
}

/** The kernel's tag of the program in the link at `pins` (checking that the prog pin names it). */
export function linkedTag(pins: string): string {
  const n = native();
  const link = n.objGet(pinPath(pins, 'link'));
  const prog = n.objGet(pinPath(pins, 'prog'));
  try {
    assert.equal(n.linkInfo(link).progId, n.progInfo(prog).id, 'the prog pin is the linked program');
    return n.progInfo(prog).tag;
  } finally {
    fs.closeSync(link);
    fs.closeSync(prog);
  }
}

/** The tag of this build's program (loaded, looked at, closed). */
export function thisBuildsTag(): string {
  const fds = native().loadProgram();
  try {
    return native().progInfo(fds.prog).tag;
  } finally {
    for (const fd of Object.values(fds)) fs.closeSync(fd);
  }
}

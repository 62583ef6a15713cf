// SPDX-License-Identifier: MIT
// Human text and --json for jfe-bpf results. Pure: strings out, stdout only.
import type { AttachResult, DetachResult, SteeringStatus } from '../bpf/steering';

export function renderAttach(r: AttachResult): string {
  const head =
    r.state === 'attached'
      ? 'attached'
      : r.state === 'updated'
        ? 'already attached; port set updated'
        : 'already attached; nothing to change';
  const lines = [`${head} (netns inode ${r.netnsIno}): program ${r.progId}, link ${r.linkId}, ports ${r.ports}`];
  if (r.programReplaced) lines.push('  program replaced by this version\'s (sockets, ports and entries kept)');
  for (const c of r.routingAdded) lines.push(`  added: ${c}`);
  return lines.join('\n');
}

export function renderDetach(r: DetachResult): string {
  const lines = [r.detached ? `detached (netns inode ${r.netnsIno})` : `not attached (netns inode ${r.netnsIno}); nothing to detach`];
  for (const c of r.routingRemoved) lines.push(`  removed: ${c}`);
  return lines.join('\n');
}

function addr(family: 4 | 6, a: string | null, port: number): string {
  if (a === null) return `${family === 4 ? '0.0.0.0' : '[::]'}:${port}`;
  return family === 4 ? `${a}:${port}` : `[${a}]:${port}`;
}

export function renderStatus(s: SteeringStatus): string {
  const lines: string[] = [];
  lines.push(`steering: ${s.attached ? 'attached' : 'not attached'} (netns inode ${s.netnsIno})`);
  lines.push(`  pins:      ${s.pinDir}`);
  if (s.attached) {
    lines.push(`  program:   id ${s.progId}, link ${s.linkId}`);
    lines.push(`  ports:     ${s.ports}`);
    const socks = (s.sockets ?? []).map((x) => `IPv${x.family} slot ${x.slot}`).join(', ');
    lines.push(`  slots:     ${s.slotCount} in use; sockets: ${socks || 'none (fail open: all traffic goes to the services)'}`);
    const ls = s.listeners ?? [];
    const shown = ls.slice(0, 8).map((l) => addr(l.family, l.addr, l.port)).join(', ');
    lines.push(`  listeners: ${ls.length}${ls.length ? ` (${shown}${ls.length > 8 ? ', …' : ''})` : ''}`);
    lines.push(`  bypass:    ${s.bypassEntries} entries`);
    const c = s.counters;
    if (c) {
      lines.push(`  steered:   ${c.steered} (assign failures ${c.assignFailed})`);
      lines.push(
        `  passed:    not tcp ${c.passNotTcp}, port ${c.passPort}, loopback ${c.passLoopback}, bypass ${c.passBypass}, no listener ${c.passNoListener}, no socket ${c.passNoSocket}`,
      );
    }
  }
  for (const r of s.routing) lines.push(`  routing:   ${r.present ? 'present' : 'missing'}: ${r.change}`);
  return lines.join('\n');
}

export function renderJson(v: unknown): string {
  return JSON.stringify(v, null, 2);
}

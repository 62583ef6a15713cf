// SPDX-License-Identifier: MIT
// The checks of what the host must offer: kernel and sk_lookup support,
// capabilities, bpffs, the routing rule and table, the fwmark sysctls, and
// rp_filter; and of what the agent has set up: steering attached (with this
// build's program), sockets registered in every slot.
import fs from 'node:fs';
import os from 'node:os';
import { isBpffs } from '../bpf/bpffs';
import { effectiveCaps } from '../bpf/privileges';
import { closeNetns, openNetns, runInNetns } from '../bpf/netns';
import { attachedProgramIsThisBuilds, status } from '../bpf/steering';
import { native } from '../native';
import type { Check } from './check';

const SK_LOOKUP_SINCE: [number, number] = [5, 9];

export const kernelCheck: Check = {
  name: 'kernel and sk_lookup',
  run() {
    const release = os.release();
    const [major = 0, minor = 0] = release.split('.').map((x) => parseInt(x, 10));
    const [wantMaj, wantMin] = SK_LOOKUP_SINCE;
    if (major < wantMaj || (major === wantMaj && minor < wantMin)) {
      return { name: this.name, ok: false, detail: `Linux ${release}: sk_lookup programs need ${wantMaj}.${wantMin} or later`, fix: `upgrade the kernel to Linux ${wantMaj}.${wantMin}+ (with CONFIG_BPF_SYSCALL and CONFIG_NET)` };
    }
    // The truest probe: the verifier accepts jfe's own program on this kernel.
    try {
      const fds = native().loadProgram();
      for (const fd of Object.values(fds)) fs.closeSync(fd);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const fix = e.code === 'EPERM' ? 'run as root (CAP_BPF and CAP_NET_ADMIN)' : 'use a kernel built with CONFIG_BPF_SYSCALL; see the error for the verifier log';
      return { name: this.name, ok: false, detail: `Linux ${release}; loading the sk_lookup program failed: ${e.code ?? ''} ${e.message}`, fix };
    }
    return { name: this.name, ok: true, detail: `Linux ${release}; the sk_lookup program loads` };
  },
};

const CAPS = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_BPF: 39 } as const;

export const capabilitiesCheck: Check = {
  name: 'capabilities',
  run() {
    const caps = effectiveCaps(fs.readFileSync('/proc/self/status', 'utf8'));
    const has = (c: number): boolean => ((caps >> BigInt(c)) & 1n) === 1n;
    const missing = [...(has(CAPS.CAP_NET_ADMIN) ? [] : ['CAP_NET_ADMIN']), ...(has(CAPS.CAP_BPF) || has(CAPS.CAP_SYS_ADMIN) ? [] : ['CAP_BPF'])];
    if (missing.length > 0) {
      return { name: this.name, ok: false, detail: `missing ${missing.join(', ')}`, fix: 'run as root, or grant CAP_BPF CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_BPF CAP_NET_ADMIN)' };
    }
    return { name: this.name, ok: true, detail: 'CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN) effective' };
  },
};

export const bpffsCheck: Check = {
  name: 'bpffs',
  run(opts) {
    if (isBpffs(opts.pinDir)) return { name: this.name, ok: true, detail: `${opts.pinDir} is on bpffs` };
    return {
      name: this.name,
      ok: false,
      detail: `${opts.pinDir} is not on a bpffs: pins cannot be kept there`,
      fix: `mount -t bpf bpf /sys/fs/bpf (jfe run mounts it when missing; a container needs /sys/fs/bpf mounted from the host)`,
    };
  },
};

/** `ip -4 rule fwmark …` (as status describes it) → the command that adds it. */
export function addCommand(change: string): string {
  if (change.startsWith('sysctl ')) return change.replace(/^sysctl /, 'sysctl -w ');
  return change.replace(/^ip (-[46]) (rule|route) /, 'ip $1 $2 add ');
}

function netnsFlag(opts: { netnsPath?: string | undefined }): string {
  return opts.netnsPath ? ` (in ${opts.netnsPath}: nsenter --net=${opts.netnsPath} …)` : '';
}

export const routingCheck: Check = {
  name: 'routing rule and table',
  run(opts) {
    const missing = status(opts).routing.filter((r) => !r.change.startsWith('sysctl') && !r.present);
    if (missing.length === 0) return { name: this.name, ok: true, detail: `fwmark 0x${opts.mark.toString(16)} → table ${opts.table} (local) present` };
    return {
      name: this.name,
      ok: false,
      detail: `missing: ${missing.map((m) => m.change).join('; ')}. Without them the services' replies to a client's address go out to the network instead of back to jfe, and every upstream connection hangs`,
      fix: `${missing.map((m) => addCommand(m.change)).join(' && ')}${netnsFlag(opts)}; or restart jfe run, which adds them`,
    };
  },
};

export const fwmarkSysctlCheck: Check = {
  name: 'tcp_fwmark_accept, fwmark_reflect and tcp_tw_reuse',
  run(opts) {
    const missing = status(opts).routing.filter((r) => r.change.startsWith('sysctl') && !r.present);
    if (missing.length === 0) return { name: this.name, ok: true, detail: 'net.ipv4.tcp_fwmark_accept=1, ip*.fwmark_reflect=1, net.ipv4.tcp_tw_reuse=1' };
    return {
      name: this.name,
      ok: false,
      detail: `not set: ${missing.map((m) => m.change.replace(/^sysctl /, '')).join(', ')}. tcp_fwmark_accept makes a service's replies carry jfe's mark (else they never reach jfe); fwmark_reflect does the same for the kernel's resets and ICMP errors (else a stopped service makes jfe hang instead of refusing); tcp_tw_reuse lets an upstream source port whose last connection is in TIME_WAIT be used again (else a client that closes first at a high rate runs jfe out of source ports)`,
      fix: `${missing.map((m) => addCommand(m.change)).join(' && ')}${netnsFlag(opts)}; or restart jfe run, which sets them`,
    };
  },
};

/**
 * rp_filter is reported, not failed. Strict mode (1) drops a packet whose
 * source is not routed back out of the interface it arrived on; that applies
 * to clients the same with or without jfe. jfe's own legs (its upstream from
 * the client's address to the service, and the marked replies) are looped
 * through lo with their route already chosen at output, so reverse-path
 * filtering never looks at them: checked here with rp_filter=1 on every
 * interface, lo included, where the self-test still passes
 * (test/integration/doctor.test.ts).
 */
export const rpFilterCheck: Check = {
  name: 'rp_filter',
  run(opts) {
    const ns = openNetns(opts.netnsPath);
    let text: string;
    try {
      text = runInNetns(ns, ['sh', '-c', 'grep -H . /proc/sys/net/ipv4/conf/*/rp_filter']).stdout;
    } finally {
      closeNetns(ns);
    }
    const values = new Map<string, number>();
    for (const line of text.split('\n')) {
      const m = /conf\/([^/]+)\/rp_filter:(\d)/.exec(line);
      if (m?.[1] && m[2]) values.set(m[1], Number(m[2]));
    }
    if (values.size === 0) return { name: this.name, ok: false, detail: 'cannot read /proc/sys/net/ipv4/conf/*/rp_filter', fix: 'run jfe doctor as root, with /proc mounted' };
    const all = values.get('all') ?? 0;
    // The kernel uses the larger of conf/all and conf/<interface>.
    const strict = [...values].filter(([dev, v]) => dev !== 'all' && dev !== 'default' && Math.max(v, all) === 1).map(([dev]) => dev);
    if (strict.length === 0) return { name: this.name, ok: true, detail: `no interface in strict mode (all=${all})` };
    return {
      name: this.name,
      ok: true,
      detail: `strict on ${strict.join(', ')}: fine for jfe (its upstream and reply legs go over lo with their route already set, which reverse-path filtering does not check); clients whose return route leaves by another interface are dropped with or without jfe`,
    };
  },
};

export const attachedCheck: Check = {
  name: 'steering attached',
  run(opts) {
    const s = status(opts);
    if (s.attached) return { name: this.name, ok: true, detail: `program ${s.progId}, link ${s.linkId}, ports ${s.ports}` };
    return { name: this.name, ok: false, detail: `no sk_lookup program attached (pins: ${s.pinDir}): connections go straight to the services in plaintext`, fix: 'start the agent (jfe run, or systemctl start jfe), which attaches it; or jfe-bpf attach' };
  },
};

export const programCheck: Check = {
  name: 'steering program current',
  run(opts) {
    const current = attachedProgramIsThisBuilds(opts);
    if (current === true) return { name: this.name, ok: true, detail: 'the attached program is this build\'s' };
    if (current === null) return { name: this.name, ok: false, detail: 'steering not attached', fix: 'see "steering attached"' };
    return {
      name: this.name,
      ok: false,
      detail: 'the attached program comes from another jfe build (jfe was upgraded while it ran): it steers, without this build\'s changes',
      fix: 'jfe-bpf attach (with jfe run\'s settings, e.g. --config) replaces it in place, maps and sockets kept; so does the next jfe run',
    };
  },
};

export const socketsCheck: Check = {
  name: 'sockets registered',
  run(opts) {
    const s = status(opts);
    const n = s.slotCount ?? 0;
    const held = new Set((s.sockets ?? []).filter((x) => x.family === 4).map((x) => x.slot));
    const empty = Array.from({ length: n }, (_, i) => i).filter((i) => !held.has(i));
    if (s.attached && n > 0 && empty.length === 0) return { name: this.name, ok: true, detail: `${n} slots, each with an agent socket` };
    const detail = !s.attached ? 'steering not attached' : n === 0 ? 'no agent has registered (slot count 0): traffic fails open to the services' : `slots ${empty.join(', ')} of ${n} have no socket (a worker died or is restarting)`;
    return { name: this.name, ok: false, detail, fix: 'start the agent: jfe run (systemctl start jfe); if it runs, see its log for worker errors' };
  },
};

// SPDX-License-Identifier: MIT
// The end-to-end self-test of `jfe doctor`: a TLS connection from a test
// address, arriving on an interface as a real client's does (a temporary
// network namespace joined by a veth pair; loopback is never steered), to a
// plaintext test listener. It passes only when jfe terminated TLS and the
// listener received the client's bytes in plaintext: sk_lookup, the agent,
// the certificate, the upstream and the reply routing all worked.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { type Netns, closeNetns, openNetns, runInNetns } from '../bpf/netns';
import { openSteering } from '../bpf/steering';
import { native } from '../native';
import type { Check, CheckResult } from './check';

const TIMEOUT_MS = 8000;

function ipOrThrow(args: string[], ns?: Netns): void {
  const r = ns ? runInNetns(ns, ['ip', ...args]) : (() => {
    const x = spawnSync('ip', args, { encoding: 'utf8' });
    return { status: x.status ?? 1, stderr: x.stderr ?? '' };
  })();
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

interface Seen {
  source?: string;
  plaintext: boolean;
  clientHello: boolean;
}

export const selfTestCheck: Check = {
  name: 'end-to-end self-test',
  async run(opts): Promise<CheckResult> {
    const name = this.name;
    const fail = (detail: string, fix: string): CheckResult => ({ name, ok: false, detail, fix });
    const target = openNetns(opts.netnsPath);
    const maps = (() => {
      try {
        return openSteering(opts);
      } catch {
        return null;
      }
    })();
    if (!maps) {
      closeNetns(target);
      return fail('steering not attached: nothing to test', 'start the agent: jfe run');
    }
    const tag = (process.pid % 100_000).toString(36);
    const nsName = `jfe-doctor-${process.pid}`;
    const [hostIf, peerIf] = [`jfd${tag}h`, `jfd${tag}p`];
    const subnet = `198.18.${process.pid % 250}`;
    const [hostAddr, peerAddr] = [`${subnet}.1`, `${subnet}.2`];
    const nonce = crypto.randomBytes(8).toString('hex');
    const cleanups: (() => void)[] = [() => closeNetns(target), () => maps.close()];
    try {
      // The test client's namespace, joined to the checked one by a veth pair.
      ipOrThrow(['netns', 'add', nsName]);
      cleanups.push(() => void spawnSync('ip', ['netns', 'del', nsName]));
      ipOrThrow(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf, 'netns', nsName], target);
      cleanups.push(() => void runInNetns(target, ['ip', 'link', 'del', hostIf]));
      ipOrThrow(['addr', 'add', `${hostAddr}/30`, 'dev', hostIf], target);
      ipOrThrow(['link', 'set', hostIf, 'up'], target);
      for (const args of [['addr', 'add', `${peerAddr}/30`, 'dev', peerIf], ['link', 'set', peerIf, 'up'], ['link', 'set', 'lo', 'up']]) ipOrThrow(['-n', nsName, ...args]);

      // The plaintext test listener, on a steered port, on the wildcard address.
      const ports = maps.ports();
      let listenFd = -1;
      let port = 0;
      for (let i = 0; i < 200 && listenFd < 0; i++) {
        const p = 20000 + crypto.randomInt(40000);
        if (!ports.has(p)) continue;
        try {
          listenFd = native().listenSocket(4, '0.0.0.0', p, 16, target.fd);
          port = p;
        } catch {
          /* in use: try another */
        }
      }
      if (listenFd < 0) return fail(`no free port in the steered set (${ports.toString()}) among those tried`, 'steer at least one port in 20000-59999, or free one');
      const seen: Seen = { plaintext: false, clientHello: false };
      const server = net.createServer((s) => {
        seen.source = s.remoteAddress?.replace(/^::ffff:/, '');
        s.on('error', () => undefined);
        let buf = '';
        s.on('data', (d: Buffer) => {
          if (d[0] === 0x16) seen.clientHello = true;
          buf += d.toString('latin1');
          if (buf.includes(nonce)) {
            seen.plaintext = true;
            s.end('ok\n');
          }
        });
      });
      await new Promise<void>((resolve) => server.listen({ fd: listenFd }, resolve));
      cleanups.push(() => server.close());

      // Wait until the agent's listener sync has seen it: before that the port is not steered.
      const deadline = Date.now() + 5000;
      while (!maps.listeners().some((e) => e.port === port && e.family === 4)) {
        if (Date.now() > deadline) {
          return fail(`the test listener on port ${port} never appeared in the listeners map: no running agent keeps it current`, 'start the agent: jfe run');
        }
        await new Promise((r) => setTimeout(r, 50));
      }

      const peerNs = fs.openSync(`/run/netns/${nsName}`, 'r');
      cleanups.push(() => fs.closeSync(peerNs));
      const raw = new net.Socket({ fd: native().tcpSocket(4, peerNs), readable: true, writable: true });
      cleanups.push(() => raw.destroy());
      const outcome = await new Promise<{ ok: boolean; why: string }>((resolve) => {
        const timer = setTimeout(() => resolve({ ok: false, why: 'timed out' }), TIMEOUT_MS);
        raw.once('error', (err) => resolve({ ok: false, why: `connect: ${err.message}` }));
        raw.connect(port, hostAddr, () => {
          const t = tls.connect({ socket: raw, rejectUnauthorized: false }, () => t.write(`jfe-doctor ${nonce}\n`));
          let reply = '';
          t.on('data', (d: Buffer) => {
            reply += d.toString('latin1');
            if (reply.includes('ok\n')) {
              clearTimeout(timer);
              resolve({ ok: true, why: '' });
            }
          });
          t.once('error', (err) => {
            clearTimeout(timer);
            resolve({ ok: false, why: `TLS: ${err.message}` });
          });
        });
      });
      if (outcome.ok && seen.plaintext) {
        const from = seen.source === peerAddr ? `from the client's own address ${peerAddr}` : `from ${seen.source} (upstream source: host)`;
        return { name, ok: true, detail: `TLS from ${peerAddr} to ${hostAddr}:${port} was terminated by jfe; the listener got the plaintext ${from}` };
      }
      if (seen.clientHello) return fail(`the connection from ${peerAddr} reached the test listener directly (it got the TLS ClientHello): not steered`, 'check "steering attached" and "sockets registered" above; the port must be in --ports');
      return fail(
        `TLS from ${peerAddr} to ${hostAddr}:${port} failed (${outcome.why}); the listener ${seen.source ? `was reached from ${seen.source} but got no plaintext` : 'was never reached'}`,
        'jfe accepted but could not reach the service from the client\'s address: fix the routing and fwmark checks above (or run with --upstream-source host)',
      );
    } finally {
      for (const c of cleanups.reverse()) {
        try {
          c();
        } catch {
          /* best effort: the namespace delete removes the rest */
        }
      }
    }
  },
};

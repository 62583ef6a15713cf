// SPDX-License-Identifier: MIT
// A world with the steering attached by the real jfe-bpf, tagged services on
// the server's wildcard addresses, and test-held "agent" sockets registered in
// slot 0 of each family.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { openSteering } from '../../src/bpf/steering';
import type { SteeringMaps } from '../../src/bpf/maps';
import type { Family } from '../../src/native';
import { type World, createWorld } from './netns';
import { type TaggedServer, taggedServer } from './sockets';
import { BIN, runSync } from './spawn';

export interface SteeredWorld {
  w: World;
  steering: SteeringMaps;
  agents: Map<Family, TaggedServer>;
  /** Client and server addresses per family. */
  addrs: { family: Family; cli: string; srv: string }[];
}

/**
 * `servicePorts` get a tagged service each and, but for those in `unlisted`, an
 * entry in the listeners map (what the agent would have learnt of them).
 */
export async function steeredWorld(t: TestContext, opts: { attachArgs?: string[]; servicePorts: number[]; unlisted?: number[] }): Promise<SteeredWorld> {
  const w = createWorld(t);
  const r = runSync(BIN.jfeBpf, ['attach', ...w.steeringArgs, ...(opts.attachArgs ?? [])]);
  assert.equal(r.status, 0, `jfe-bpf attach: ${r.stderr}`);
  w.cleanup.add('detach', () => runSync(BIN.jfeBpf, ['detach', ...w.steeringArgs]));
  const steering = openSteering({ netnsPath: w.srv.path, pinDir: w.pinDir });
  w.cleanup.add('close maps', () => steering.close());

  for (const port of opts.servicePorts) {
    for (const [family, addr] of [[4, '0.0.0.0'], [6, '::']] as const) {
      const s = await taggedServer(w.srv, family, addr, port, `service:${port}`);
      w.cleanup.add(`close service ${port}`, () => s.close());
      if (!opts.unlisted?.includes(port)) steering.addListener({ family, addr: null, port });
    }
  }
  const agents = new Map<Family, TaggedServer>();
  for (const [family, addr] of [[4, '127.0.0.1'], [6, '::1']] as const) {
    const a = await taggedServer(w.srv, family, addr, 0, 'agent');
    w.cleanup.add(`close agent ${family}`, () => a.close());
    steering.setSocket(family, 0, a.fd);
    agents.set(family, a);
  }
  steering.setSlotCount(1);
  return {
    w,
    steering,
    agents,
    addrs: [
      { family: 4, cli: w.cli4, srv: w.srv4 },
      { family: 6, cli: w.cli6, srv: w.srv6 },
    ],
  };
}

// SPDX-License-Identifier: MIT
// Makes the program spread connections over exactly `n` slots, once the
// workers of those slots are registered, and empties the slots beyond n: a
// predecessor with more workers must not keep any of them once it is gone
// (the kernel drops a closed socket from the sockmap, but an old worker that
// is still draining keeps its listener open until its linger ends).
import type { SteeringMaps } from '../bpf/maps';
import { native } from '../native';

export function applySlotCount(maps: SteeringMaps, n: number): number {
  maps.setSlotCount(n);
  let cleared = 0;
  for (const family of [4, 6] as const) {
    for (let slot = n; slot < native().layout.maxSlots; slot++) {
      if (maps.socketCookie(family, slot) !== null && maps.deleteSocket(family, slot)) cleared++;
    }
  }
  return cleared;
}

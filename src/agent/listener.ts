// SPDX-License-Identifier: MIT
// The agent's listening sockets, one per family per worker, bound to loopback
// on an ephemeral port: the sk_lookup program assigns connections to them
// whatever address and port the client dialled (DESIGN.md, "Kernel facts").
// The native data plane accepts on them (data-plane.ts).
import { type Family, native } from '../native';

export interface AgentListener {
  family: Family;
  fd: number;
}

/** A listening, non-blocking socket: its fd, for the data plane to take. */
export function openListener(family: Family, backlog: number): AgentListener {
  const fd = native().listenSocket(family, family === 4 ? '127.0.0.1' : '::1', 0, backlog);
  return { family, fd };
}

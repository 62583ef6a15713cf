// SPDX-License-Identifier: MIT
// The agent's listening sockets, one per family per worker, bound to loopback
// on an ephemeral port: the sk_lookup program assigns connections to them
// whatever address and port the client dialled (DESIGN.md, "Kernel facts").
import fs from 'node:fs';
import net from 'node:net';
import { type Family, native } from '../native';
import { adoptWithReusedReads } from './reused-reads';

export interface AgentListener {
  family: Family;
  fd: number;
  server: net.Server;
}

export function openListener(family: Family, backlog: number, onConnection: (socket: net.Socket) => void): Promise<AgentListener> {
  const fd = native().listenSocket(family, family === 4 ? '127.0.0.1' : '::1', 0, backlog);
  // allowHalfOpen: a client that shuts its write side still gets the whole response.
  // pauseOnConnect: nothing is read before the socket is adopted (reused-reads.ts).
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (accepted) => {
    onConnection(adoptWithReusedReads(accepted));
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => {
      fs.closeSync(fd);
      reject(err);
    });
    // exclusive: in a cluster worker, listen on our own fd instead of asking the primary for a handle.
    server.listen({ fd, backlog, exclusive: true }, () => resolve({ family, fd, server }));
  });
}

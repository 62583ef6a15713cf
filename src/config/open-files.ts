// SPDX-License-Identifier: MIT
// What --max-connections asks of the open-files limit (RLIMIT_NOFILE), for
// jfe run (which warns at start) and jfe doctor (which reports it). Each
// connection holds two fds, the client's and the upstream's, and the host's
// cap may all land on one worker (each process has its own limit).

/** Fds a worker holds besides its connections: listening sockets (per port range and family), certificate and state files, epoll, pipes, the IPC channel, stdio. */
export const OPEN_FILES_MARGIN = 1024;

export function openFilesNeeded(maxConnections: number): number {
  return 2 * maxConnections + OPEN_FILES_MARGIN;
}

// SPDX-License-Identifier: MIT
// Socket steps shared by the exported functions (sockets.cc, diag.cc) and the
// data plane (plane/dial.cc): no N-API here, errors come back as -errno so the
// plane can report them as data and the exports can throw them.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

namespace jfe {

struct SockAddr {
	sockaddr_storage ss;
	socklen_t len;
};

// family AF_INET|AF_INET6; addr: 4 or 16 bytes in network order.
SockAddr MakeSockAddr(int family, const uint8_t *addr, uint16_t port);
// The bytes (4 or 16) and the port of an address.
const uint8_t *AddrBytes(const sockaddr_storage &ss);
uint16_t AddrPort(const sockaddr_storage &ss);

// A non-blocking, close-on-exec TCP socket; -errno on failure.
int NewTcpSocket(int family);

// A non-blocking TCP socket bound to (source, port 0), transparent (a source
// that is not local) and marked when asked: the agent's upstream side. The
// bound port goes to *port. Returns the fd or -errno.
int OpenUpstream(int family, const SockAddr &source, uint32_t mark, bool transparent, uint16_t *port);

// The same, bound to an explicit port: the next free one of [lo, hi] from
// *cursor on (advanced past it), at most `tries` binds. The kernel's own
// choice (port 0) never takes a port held only by a TIME_WAIT, even with
// SO_REUSEADDR (net.ipv4.ip_autobind_reuse is off), so a client that closes
// first at a high rate used every port up; an explicit bind with
// SO_REUSEADDR takes such a port, and going round the range in order leaves
// each TIME_WAIT as old as the range allows before its port comes back.
// -EADDRINUSE when every try found its port taken.
int OpenUpstreamInRange(int family, const uint8_t *source, uint32_t mark, bool transparent, uint16_t lo, uint16_t hi,
			uint32_t *cursor, int tries, uint16_t *port);

// Whether a live TCP connection (not listening, not TIME_WAIT) with exactly
// this 4-tuple exists in the netns, asked over a NETLINK_SOCK_DIAG socket:
// 1 yes, 0 no, -errno when the question failed.
int DiagConnExists(int diag_fd, int family, const uint8_t *local_addr, uint16_t local_port, const uint8_t *remote_addr,
		   uint16_t remote_port);

} // namespace jfe

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

// The source ports an upstream socket may take. {0, 0}: the kernel's
// ephemeral range (bind to port 0). Otherwise lo..hi, both included.
struct PortRange {
	uint16_t lo = 0;
	uint16_t hi = 0;
	bool any() const { return lo == 0; }
};

// A non-blocking TCP socket bound to source, transparent (a source that is
// not local) and marked when asked: the agent's upstream side. Its port is
// one of ports (which any port of source.ss is ignored for), never one of
// ip_local_reserved_ports. The bound port goes to *port. Returns the fd or
// -errno (-EADDRINUSE: no free port in the range after a bounded search).
// Explicit binds go round the range in order (from a random start per
// thread), so a port comes back as late as the range allows. (The kernel's
// own choice inside a range, IP_LOCAL_PORT_RANGE, never takes a port held
// only by a TIME_WAIT of ours, even with SO_REUSEADDR: under clients that
// close first it ran a narrow range dry.)
int OpenUpstream(int family, const SockAddr &source, uint32_t mark, bool transparent, PortRange ports, uint16_t *port);

// The ports of a range in order from a random start; Jump() moves to
// another random place (out of a run of ports someone else holds).
class PortCursor {
      public:
	PortCursor();
	uint16_t Next(PortRange ports);
	void Jump();

      private:
	uint32_t pos_;
};

// Whether the netns's ip_local_reserved_ports holds port (read once per process).
bool PortReserved(uint16_t port);

// An unbound upstream socket: non-blocking, transparent and marked when
// asked. share_time_wait: SO_REUSEADDR, so that a port held only by a
// TIME_WAIT of ours (the client closed first) is bound again instead of
// skipped; it also lets a port another live socket with SO_REUSEADDR holds
// be bound, so the caller must make sure no other leg holds it (the data
// plane's bypass entries, inserted with BPF_NOEXIST, do), and connect() may
// refuse a too-recent TIME_WAIT (EADDRNOTAVAIL: try another). fd or -errno.
int NewUpstreamSocket(int family, uint32_t mark, bool transparent, bool share_time_wait);

// bind() to source at port: 0 or -errno. A failed bind leaves the socket
// unbound, so the caller may try another port on it.
int BindPort(int s, SockAddr source, uint16_t port);

// Whether a live TCP connection (not listening, not TIME_WAIT) with exactly
// this 4-tuple exists in the netns, asked over a NETLINK_SOCK_DIAG socket:
// 1 yes, 0 no, -errno when the question failed.
int DiagConnExists(int diag_fd, int family, const uint8_t *local_addr, uint16_t local_port, const uint8_t *remote_addr,
		   uint16_t remote_port);

} // namespace jfe

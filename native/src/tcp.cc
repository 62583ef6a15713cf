// SPDX-License-Identifier: MIT
#include "tcp.h"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <sys/random.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bitset>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "fd.h"

namespace jfe {

namespace {
constexpr int kTcpTimeWait = 6;
constexpr int kTcpClose = 7;
constexpr int kTcpListen = 10;

// Ports tried by explicit binds before a connection gives up: a range that
// full is an overload, and the dial is on the worker's loop.
constexpr int kMaxBindTries = 64;

// What the netns says about local ports, read once per process: the ports
// an operator reserved, which the kernel keeps out of its own choices and
// explicit binds must skip too.
struct PortSysctls {
	std::bitset<65536> reserved;
};

// The whole of a small /proc file, bounded.
std::string ReadSmallFile(const char *path)
{
	std::string out;
	FILE *f = fopen(path, "re");
	if (f == nullptr)
		return out;
	char buf[4096];
	size_t n;
	while (out.size() < (1u << 20) && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		out.append(buf, n);
	fclose(f);
	return out;
}

const PortSysctls &Sysctls()
{
	static const PortSysctls s = [] {
		PortSysctls t;
		// "8080,9000-9100": ports and ranges, comma-separated.
		std::string res = ReadSmallFile("/proc/sys/net/ipv4/ip_local_reserved_ports");
		const char *p = res.c_str();
		while (*p != '\0') {
			char *end;
			long a = strtol(p, &end, 10);
			if (end == p)
				break;
			long b = a;
			p = end;
			if (*p == '-') {
				b = strtol(p + 1, &end, 10);
				p = end;
			}
			for (long i = a; i <= b && i < 65536; i++)
				if (i >= 0)
					t.reserved.set(static_cast<size_t>(i));
			while (*p == ',' || *p == '\n' || *p == ' ')
				p++;
		}
		return t;
	}();
	return s;
}

uint32_t RandomU32()
{
	thread_local uint64_t state = [] {
		uint64_t seed = 0;
		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
			seed = static_cast<uint64_t>(getpid()) * 0x9e3779b97f4a7c15ull;
		return seed | 1;
	}();
	// xorshift64*: a start port, not a secret.
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return static_cast<uint32_t>((state * 0x2545f4914f6cdd1dull) >> 32);
}

void SetPort(SockAddr *a, uint16_t port)
{
	if (a->ss.ss_family == AF_INET)
		reinterpret_cast<sockaddr_in *>(&a->ss)->sin_port = htons(port);
	else
		reinterpret_cast<sockaddr_in6 *>(&a->ss)->sin6_port = htons(port);
}

// bind(source, 0) and the port the kernel chose; -errno.
int BindAny(int s, SockAddr source, uint16_t *port)
{
	SetPort(&source, 0);
	if (bind(s, reinterpret_cast<const sockaddr *>(&source.ss), source.len) < 0)
		return -errno;
	sockaddr_storage bound = {};
	socklen_t len = sizeof(bound);
	if (getsockname(s, reinterpret_cast<sockaddr *>(&bound), &len) < 0)
		return -errno;
	*port = AddrPort(bound);
	return 0;
}

// Port by port from the cursor: one bind per try, no getsockname.
int BindExplicit(int s, const SockAddr &source, PortRange ports, PortCursor *cursor, uint16_t *port)
{
	uint32_t n = static_cast<uint32_t>(ports.hi) - ports.lo + 1;
	int tries = 0;
	for (uint32_t i = 0; i < n && tries < kMaxBindTries; i++) {
		uint16_t p = cursor->Next(ports);
		if (PortReserved(p))
			continue;
		tries++;
		int r = BindPort(s, source, p);
		if (r == 0) {
			*port = p;
			return 0;
		}
		// Taken on this address or the wildcard (a listener, another
		// socket): the kernel's bind rules, as for any port.
		if (r != -EADDRINUSE)
			return r;
	}
	return -EADDRINUSE;
}
} // namespace

SockAddr MakeSockAddr(int family, const uint8_t *addr, uint16_t port)
{
	SockAddr a = {};
	if (family == AF_INET) {
		auto *in = reinterpret_cast<sockaddr_in *>(&a.ss);
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, addr, 4);
		a.len = sizeof(*in);
	} else {
		auto *in6 = reinterpret_cast<sockaddr_in6 *>(&a.ss);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		memcpy(&in6->sin6_addr, addr, 16);
		a.len = sizeof(*in6);
	}
	return a;
}

const uint8_t *AddrBytes(const sockaddr_storage &ss)
{
	if (ss.ss_family == AF_INET)
		return reinterpret_cast<const uint8_t *>(&reinterpret_cast<const sockaddr_in *>(&ss)->sin_addr);
	return reinterpret_cast<const uint8_t *>(&reinterpret_cast<const sockaddr_in6 *>(&ss)->sin6_addr);
}

uint16_t AddrPort(const sockaddr_storage &ss)
{
	if (ss.ss_family == AF_INET)
		return ntohs(reinterpret_cast<const sockaddr_in *>(&ss)->sin_port);
	return ntohs(reinterpret_cast<const sockaddr_in6 *>(&ss)->sin6_port);
}

int NewTcpSocket(int family)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

PortCursor::PortCursor() : pos_(RandomU32()) {}

uint16_t PortCursor::Next(PortRange ports)
{
	uint32_t n = static_cast<uint32_t>(ports.hi) - ports.lo + 1;
	return static_cast<uint16_t>(ports.lo + pos_++ % n);
}

void PortCursor::Jump()
{
	pos_ = RandomU32();
}

bool PortReserved(uint16_t port)
{
	return Sysctls().reserved.test(port);
}

int NewUpstreamSocket(int family, uint32_t mark, bool transparent, bool share_time_wait)
{
	int s = NewTcpSocket(family);
	if (s < 0)
		return s;
	Fd fd(s);
	int one = 1;
	if (transparent) {
		int r = family == AF_INET ? setsockopt(s, SOL_IP, IP_TRANSPARENT, &one, sizeof(one))
					  : setsockopt(s, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
		if (r < 0)
			return -errno;
	}
	if (mark != 0) {
		int m = static_cast<int>(mark);
		if (setsockopt(s, SOL_SOCKET, SO_MARK, &m, sizeof(m)) < 0)
			return -errno;
	}
	if (share_time_wait && setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	return fd.release();
}

int BindPort(int s, SockAddr source, uint16_t port)
{
	SetPort(&source, port);
	return bind(s, reinterpret_cast<const sockaddr *>(&source.ss), source.len) == 0 ? 0 : -errno;
}

int OpenUpstream(int family, const SockAddr &source, uint32_t mark, bool transparent, PortRange ports, uint16_t *port)
{
	int s = NewUpstreamSocket(family, mark, transparent, false);
	if (s < 0)
		return s;
	Fd fd(s);
	// Round the range in order: a port (and its TIME_WAIT) comes back as late as it can.
	thread_local PortCursor cursor;
	int r = ports.any() ? BindAny(s, source, port) : BindExplicit(s, source, ports, &cursor, port);
	return r < 0 ? r : fd.release();
}

int DiagConnExists(int diag_fd, int family, const uint8_t *local_addr, uint16_t local_port, const uint8_t *remote_addr,
		   uint16_t remote_port)
{
	struct {
		nlmsghdr nlh;
		inet_diag_req_v2 req;
	} r = {};
	r.nlh.nlmsg_len = sizeof(r);
	r.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	r.nlh.nlmsg_flags = NLM_F_REQUEST;
	r.req.sdiag_family = family;
	r.req.sdiag_protocol = IPPROTO_TCP;
	r.req.idiag_states = ~0u;
	size_t alen = family == AF_INET ? 4 : 16;
	memcpy(r.req.id.idiag_src, local_addr, alen);
	r.req.id.idiag_sport = htons(local_port);
	memcpy(r.req.id.idiag_dst, remote_addr, alen);
	r.req.id.idiag_dport = htons(remote_port);
	r.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	r.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	sockaddr_nl nl = {};
	nl.nl_family = AF_NETLINK;
	if (sendto(diag_fd, &r, sizeof(r), 0, reinterpret_cast<sockaddr *>(&nl), sizeof(nl)) < 0)
		return -errno;

	alignas(nlmsghdr) char buf[8192];
	for (;;) {
		ssize_t len = recv(diag_fd, buf, sizeof(buf), 0);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		auto *h = reinterpret_cast<nlmsghdr *>(buf);
		if (!NLMSG_OK(h, static_cast<uint32_t>(len)))
			return -EBADMSG;
		if (h->nlmsg_type == NLMSG_ERROR) {
			int err = -static_cast<nlmsgerr *>(NLMSG_DATA(h))->error;
			return err == ENOENT ? 0 : -err;
		}
		if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
			// The kernel looks the tuple up as it would an incoming
			// packet, so a listener on the local port also matches.
			// TIME_WAIT is not a live connection: a new SYN reopens it.
			auto *m = static_cast<inet_diag_msg *>(NLMSG_DATA(h));
			bool live = m->idiag_state != kTcpListen && m->idiag_state != kTcpTimeWait &&
				    m->idiag_state != kTcpClose;
			return live && m->id.idiag_dport == r.req.id.idiag_dport ? 1 : 0;
		}
	}
}

} // namespace jfe

// SPDX-License-Identifier: MIT
#include "tcp.h"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fd.h"

namespace jfe {

namespace {
constexpr int kTcpTimeWait = 6;
constexpr int kTcpClose = 7;
constexpr int kTcpListen = 10;
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

namespace {

// Socket, transparent and mark: the steps every upstream socket takes before bind.
int PrepareUpstream(int family, uint32_t mark, bool transparent)
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
	// A source port whose last connection is in TIME_WAIT on our side (the
	// client closed first) may be bound again; connect() then takes it only
	// where tcp_tw_reuse allows (routing.ts sets it), else the dial tries
	// another port.
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	return fd.release();
}

} // namespace

int OpenUpstream(int family, const SockAddr &source, uint32_t mark, bool transparent, uint16_t *port)
{
	int s = PrepareUpstream(family, mark, transparent);
	if (s < 0)
		return s;
	Fd fd(s);
	if (bind(s, reinterpret_cast<const sockaddr *>(&source.ss), source.len) < 0)
		return -errno;
	sockaddr_storage bound = {};
	socklen_t len = sizeof(bound);
	if (getsockname(s, reinterpret_cast<sockaddr *>(&bound), &len) < 0)
		return -errno;
	*port = AddrPort(bound);
	return fd.release();
}

int OpenUpstreamInRange(int family, const uint8_t *source, uint32_t mark, bool transparent, uint16_t lo, uint16_t hi,
			uint32_t *cursor, int tries, uint16_t *port)
{
	int s = PrepareUpstream(family, mark, transparent);
	if (s < 0)
		return s;
	Fd fd(s);
	uint32_t span = static_cast<uint32_t>(hi) - lo + 1;
	for (int i = 0; i < tries; i++) {
		uint16_t p = static_cast<uint16_t>(lo + (*cursor)++ % span);
		SockAddr a = MakeSockAddr(family, source, p);
		if (bind(s, reinterpret_cast<const sockaddr *>(&a.ss), a.len) == 0) {
			*port = p;
			return fd.release();
		}
		if (errno != EADDRINUSE)
			return -errno;
	}
	return -EADDRINUSE;
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

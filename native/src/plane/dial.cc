// SPDX-License-Identifier: MIT
#include "dial.h"

#include <bpf/bpf.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "../tcp.h"

namespace jfe::plane {

namespace {
// Client connections met (sock_diag) before a dial gives up, as before the ranges.
constexpr int kMaxTries = 8;
// Ports looked at per dial in a range: a range that full is an overload, and
// the dial is on the worker's loop (each look is a map update, ~1 us).
constexpr uint32_t kMaxProbes = 512;
} // namespace

int BypassEntry::Insert(int map_fd, int family, const uint8_t *addr, uint16_t port)
{
	Delete();
	key_ = {};
	key_.family = family;
	key_.port = port;
	memcpy(key_.addr, addr, family == AF_INET ? 4 : 16);
	// The owner is this process: a worker that dies leaves entries its
	// successor removes by pid (src/bpf/maps.ts removeBypassOf).
	static const uint32_t owner = static_cast<uint32_t>(getpid()); // workers are exec'd, never forked

	if (bpf_map_update_elem(map_fd, &key_, &owner, BPF_NOEXIST) < 0)
		return errno;
	map_fd_ = map_fd;
	return 0;
}

void BypassEntry::Delete()
{
	if (map_fd_ < 0)
		return;
	bpf_map_delete_elem(map_fd_, &key_);
	map_fd_ = -1;
}

Dialer::Dialer(const DialConfig &config)
    : config_(config), diag_(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG))
{
	if (diag_.get() < 0)
		throw std::system_error(errno, std::generic_category(), "socket NETLINK_SOCK_DIAG");
}

// (src, port) -> (dst, P) must not be a connection the host holds from a
// client: the SYN would land on that socket instead of the service.
int Dialer::ClientHolds(int family, const uint8_t *src, uint16_t port, const uint8_t *dst_addr, uint16_t dst_port,
			int *collisions)
{
	int exists = DiagConnExists(diag_.get(), family, dst_addr, dst_port, src, port);
	if (exists == 1)
		++*collisions;
	return exists;
}

int Dialer::Open(int family, const uint8_t *client_addr, const uint8_t *dst_addr, uint16_t dst_port, BypassEntry *bypass,
		 const uint8_t **source, uint16_t *source_port, int *collisions)
{
	const uint8_t *src = config_.transparent ? client_addr : dst_addr;
	*source = src;
	if (config_.transparent && !config_.ports.any())
		return OpenInRange(family, src, dst_addr, dst_port, bypass, source_port, collisions);
	SockAddr bind_to = MakeSockAddr(family, src, 0);
	uint32_t mark = config_.transparent ? config_.mark : 0;
	// The kernel's ephemeral choice: it never hands out a port another
	// socket holds on this address, so only a client's tuple can collide.
	for (int i = 0; i < kMaxTries; i++) {
		uint16_t port = 0;
		int s = OpenUpstream(family, bind_to, mark, config_.transparent, PortRange{}, &port);
		if (s < 0)
			return s;
		Fd fd(s);
		int held = ClientHolds(family, src, port, dst_addr, dst_port, collisions);
		if (held < 0)
			return held;
		if (held == 1)
			continue;
		int err = bypass->Insert(config_.bypass_fd, family, src, port);
		if (err == EEXIST)
			continue;
		if (err != 0)
			return -err;
		*source_port = port;
		return fd.release();
	}
	return -EADDRINUSE;
}

// The port is claimed in the bypass map first (BPF_NOEXIST): the map is
// the host's record of the ports live legs of every worker hold, and a
// claim is one map update. The bind shares a port held only by a TIME_WAIT
// (SO_REUSEADDR), so it cannot tell a live leg's port from a free one; and
// sock_diag, asked first, would find a live leg's service-side socket and
// count it as a client's. A claimed port held by another leg sends the
// cursor elsewhere: each worker's legs lie in runs, and walking through
// another worker's run port by port ran past every bound.
int Dialer::OpenInRange(int family, const uint8_t *src, const uint8_t *dst_addr, uint16_t dst_port, BypassEntry *bypass,
			uint16_t *source_port, int *collisions)
{
	const PortRange ports = config_.ports;
	const uint32_t n = static_cast<uint32_t>(ports.hi) - ports.lo + 1;
	// A range no longer than the bound is walked whole, in order: every free port is found.
	const bool walk = n <= kMaxProbes;
	int s = NewUpstreamSocket(family, config_.mark, true, true);
	if (s < 0)
		return s;
	Fd fd(s);
	SockAddr bind_to = MakeSockAddr(family, src, 0);
	int met = 0;
	for (uint32_t probe = 0; probe < std::min(n, kMaxProbes) && met < kMaxTries; probe++) {
		uint16_t port = cursor_.Next(ports);
		if (PortReserved(port))
			continue;
		int err = bypass->Insert(config_.bypass_fd, family, src, port);
		if (err == EEXIST) {
			if (!walk)
				cursor_.Jump();
			continue;
		}
		if (err != 0)
			return -err;
		int held = ClientHolds(family, src, port, dst_addr, dst_port, collisions);
		if (held != 0)
			bypass->Delete();
		if (held < 0)
			return held;
		if (held == 1) {
			met++;
			continue;
		}
		int r = BindPort(fd.get(), bind_to, port);
		if (r == 0) {
			*source_port = port;
			return fd.release();
		}
		bypass->Delete();
		// A listener on the port or the wildcard, or a socket without SO_REUSEADDR.
		if (r != -EADDRINUSE)
			return r;
	}
	return -EADDRINUSE;
}

} // namespace jfe::plane

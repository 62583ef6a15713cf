// SPDX-License-Identifier: MIT
#include "dial.h"

#include <bpf/bpf.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "../tcp.h"

namespace jfe::plane {

namespace {
// How many source ports to try before giving up (each collision is counted).
constexpr int kMaxTries = 8;
// Ports held by other live legs passed over per dial (a range that full is an overload).
constexpr int kMaxTaken = 64;
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
	uint32_t owner = static_cast<uint32_t>(getpid());
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

int Dialer::Open(int family, const uint8_t *client_addr, const uint8_t *dst_addr, uint16_t dst_port, BypassEntry *bypass,
		 const uint8_t **source, uint16_t *source_port, int *collisions)
{
	const uint8_t *src = config_.transparent ? client_addr : dst_addr;
	*source = src;
	SockAddr bind_to = MakeSockAddr(family, src, 0);
	uint32_t mark = config_.transparent ? config_.mark : 0;
	// Ports another live leg holds (EEXIST below) are passed over without
	// counting as tries, up to kMaxTaken: the explicit binds share them
	// (SO_REUSEADDR), so they find them one by one where a bind used to skip them.
	int taken = 0;
	for (int i = 0; i < kMaxTries && taken < kMaxTaken;) {
		uint16_t port = 0;
		int s = OpenUpstream(family, bind_to, mark, config_.transparent,
				     config_.transparent ? config_.ports : PortRange{}, &port, config_.transparent);
		if (s < 0)
			return s;
		Fd fd(s);
		// (source, port') -> (dst, P) must not be a connection the host holds
		// from a client: the SYN would land on that socket instead of the service.
		int exists = DiagConnExists(diag_.get(), family, dst_addr, dst_port, src, port);
		if (exists < 0)
			return exists;
		if (exists == 1) {
			++*collisions;
			i++;
			continue;
		}
		// NOEXIST: the bind may share a port another live leg of any worker
		// holds (share_time_wait); its bypass entry says so, and one entry
		// must belong to one leg.
		int err = bypass->Insert(config_.bypass_fd, family, src, port);
		if (err == EEXIST) {
			taken++;
			continue;
		}
		if (err != 0)
			return -err;
		*source_port = port;
		return fd.release();
	}
	return -EADDRINUSE;
}

} // namespace jfe::plane

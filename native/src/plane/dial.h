// SPDX-License-Identifier: MIT
// The transparent dial, as src/agent/upstream.ts did it: a socket bound to
// the client's address (or the host's, in 'host' mode), a source port that
// does not collide with a client connection the host holds (sock_diag), and
// the bypass entry in place before the SYN leaves.
#pragma once

#include <cstdint>

#include "../fd.h"
#include "../tcp.h"
#include "jfe.h"

namespace jfe::plane {

// One bypass map entry, deleted when this goes (after the upstream fd closed).
class BypassEntry {
      public:
	BypassEntry() = default;
	~BypassEntry() { Delete(); }
	BypassEntry(const BypassEntry &) = delete;
	BypassEntry &operator=(const BypassEntry &) = delete;
	// Returns 0 or an errno.
	int Insert(int map_fd, int family, const uint8_t *addr, uint16_t port);
	void Delete();
	// Someone else (TypeScript) deletes it now.
	void Release() { map_fd_ = -1; }

      private:
	int map_fd_ = -1;
	jfe_addr_key key_{};
};

struct DialConfig {
	int bypass_fd = -1;
	uint32_t mark = 0;
	bool transparent = true; // 'original' mode; false: 'host' mode
	// Source ports of 'original' mode (--upstream-ports): out of the range
	// clients draw their own from, so a client never finds its tuple taken.
	// 'host' mode binds the host's address, whose ports the kernel already
	// shares out among all local sockets: there the kernel picks as before.
	PortRange ports;
};

class Dialer {
      public:
	// Throws std::system_error when the sock_diag socket cannot be opened.
	explicit Dialer(const DialConfig &config);
	Dialer(const Dialer &) = delete;
	Dialer &operator=(const Dialer &) = delete;

	// A bound upstream socket for (client -> dst), its bypass entry in place,
	// not yet connected. Returns the fd or -errno (-EADDRINUSE: no free source
	// port after the tries). *source: the address bound (client's or dst's).
	int Open(int family, const uint8_t *client_addr, const uint8_t *dst_addr, uint16_t dst_port, BypassEntry *bypass,
		 const uint8_t **source, uint16_t *source_port, int *collisions);
	bool transparent() const { return config_.transparent; }

      private:
	// 1 when a client's connection holds (src, port) -> (dst, dst_port), counted in
	// *collisions; 0 when none does; -errno when sock_diag could not say.
	int ClientHolds(int family, const uint8_t *src, uint16_t port, const uint8_t *dst_addr, uint16_t dst_port,
			int *collisions);
	int OpenInRange(int family, const uint8_t *src, const uint8_t *dst_addr, uint16_t dst_port, BypassEntry *bypass,
			uint16_t *source_port, int *collisions);

	DialConfig config_;
	Fd diag_;
	// Where this worker's next leg looks for a port in config_.ports.
	PortCursor cursor_;
};

} // namespace jfe::plane

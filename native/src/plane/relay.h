// SPDX-License-Identifier: MIT
// The plaintext relay between a client and its upstream, both fds connected
// and non-blocking: small reused buffers for ordinary traffic, splice()
// through pooled pipes once a flow moves bulk, half-close each way, resets
// carried across (SO_LINGER 0), bounded buffering with backpressure. It never
// decides anything: the idle timeout is checked by its owner (LastActivityMs),
// and every threshold comes in RelayConfig, from TypeScript.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "../fd.h"
#include "poller.h"

namespace jfe::plane {

// The RelayReason values of src/agent/relay.ts, in this order.
enum class RelayReason : uint8_t {
	kDone = 0,	// EOF each way and every byte flushed
	kIdle,		// the owner called Close(kIdle): a plain close both ways
	kClientReset,	// ECONNRESET/EPIPE on the client side
	kUpstreamReset,
	kClientError,	// any other error on the client side
	kUpstreamError,
	kAborted,	// the owner called Close(kAborted): resets both ways
};

struct RelayConfig {
	// Bytes a direction may hold in user space before it stops reading.
	size_t buffer_bytes = 16 * 1024;
	// A direction switches to splice() once this many bytes moved and a read
	// filled its buffer (HAProxy's rule); 0 disables splice.
	size_t splice_after_bytes = 4 * 1024;
	// Bytes a pooled pipe may hold (F_SETPIPE_SZ).
	size_t pipe_bytes = 64 * 1024;
	// Pipes open at most per worker, in use or pooled (two fds each); past it
	// a direction stays on buffers. Empty pipes kept for reuse, at most.
	size_t pipes_max = 1024;
	size_t pipes_pooled = 64;
};

// Shared by every relay of a worker (one per worker): reused read buffers
// and the pipe pool. Not thread safe: one loop. Outlives its relays.
class RelayShared {
      public:
	explicit RelayShared(const RelayConfig &config);
	~RelayShared();
	RelayShared(const RelayShared &) = delete;
	RelayShared &operator=(const RelayShared &) = delete;
	const RelayConfig &config() const { return config_; }
	// Pipes open now, in use or pooled.
	size_t PipesOpen() const;

      private:
	friend class Relay;
	RelayConfig config_;
	struct Impl;
	std::unique_ptr<Impl> impl_;
};

class Relay;

class RelaySink {
      public:
	// Both fds are closed (and removed from the poller) when this runs; the
	// relay may be retired from inside the call.
	virtual void OnRelayClosed(Relay *relay, RelayReason reason, uint64_t bytes_in, uint64_t bytes_out) = 0;

      protected:
	~RelaySink() = default;
};

class Relay : public Retirable {
      public:
	// Takes both fds. pending_up: client bytes already read, to write upstream
	// first; pending_down: service bytes already read, to write to the client
	// first (copied). Counts them in bytes_in/bytes_out like relayed bytes.
	// client_eof/upstream_eof: that side already sent its FIN.
	Relay(Poller &poller, RelayShared &shared, Fd client, Fd upstream, const uint8_t *pending_up, size_t pending_up_len,
	      const uint8_t *pending_down, size_t pending_down_len, bool client_eof, bool upstream_eof, RelaySink *sink);
	~Relay() override;

	// Registers both fds and starts moving bytes. Returns 0 or an errno (the
	// relay is then closed and the sink told, reason kAborted). The caller
	// sets TCP_NODELAY (the relay writes what it reads as it reads it: the
	// sender already chose the segments, and Nagle with delayed ACKs would
	// hold a small write).
	int Start();
	// kIdle: closes both with FIN (what the Node relay did on idle);
	// kAborted: resets both. Reports to the sink once, if not already closed.
	void Close(RelayReason reason);
	bool closed() const;
	// Poller time of the last byte read or written either way.
	uint64_t LastActivityMs() const;
	// in = client -> upstream, out = upstream -> client, so far.
	uint64_t BytesIn() const;
	uint64_t BytesOut() const;
	// Of those, bytes written out of a pipe (both ways): the splice path.
	uint64_t SplicedBytes() const;
	// Bytes held now in user space and in pipes, both ways.
	size_t BufferedBytes() const;

      private:
	struct Impl;
	std::unique_ptr<Impl> impl_;
};

} // namespace jfe::plane

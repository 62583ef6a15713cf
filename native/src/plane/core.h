// SPDX-License-Identifier: MIT
// The connection core of one worker, on the worker's own loop: its listeners,
// the live connections, the records for TypeScript and the coarse timer that
// enforces TS's idle timeout. The N-API face is plane.cc; this file knows
// nothing of JS but that records are delivered in one call per batch.
#pragma once

#include <uv.h>

#include <bitset>
#include <cstdint>
#include <memory>
#include <vector>

#include "conn.h"
#include "dial.h"
#include "listener.h"
#include "poller.h"
#include "records.h"
#include "relay.h"

namespace jfe::plane {

struct CoreConfig {
	DialConfig dial;
	RelayConfig relay;
	uint64_t idle_timeout_ms = 3600 * 1000;
};

class Core : public AcceptSink {
      public:
	// records: kCapacity * kWords words; bytes: kByteArea; stats: kStats.
	Core(uv_loop_t *loop, const CoreConfig &config, int32_t *records, uint8_t *bytes, double *stats);
	virtual ~Core();
	Core(const Core &) = delete;
	Core &operator=(const Core &) = delete;

	// Reentrancy: TS runs only inside Deliver(). From there it may admit,
	// decide, CloseLongestIdle/CloseIdle/CloseAll (their records join the
	// batch being delivered), but not StopListening or Shutdown, which free
	// what the running batch still uses (the agent calls them from timers).

	// Takes the listening fd. Returns 0 or an errno.
	int Listen(int fd);
	void StopListening();
	void SetTakeover(const uint8_t *bitmap); // 8192 bytes, bit p = port p (LSB first)
	void SetIdleTimeout(uint64_t ms);
	// Closes the connection silent longest, if silent >= min_idle_ms.
	bool CloseLongestIdle(uint64_t min_idle_ms);
	// Closes every connection silent >= idle_ms; how many.
	size_t CloseIdle(uint64_t idle_ms);
	// Resets every connection (the end of a drain).
	void CloseAll();
	// Everything closed; the loop's handles released (asynchronously). done
	// runs once the last handle is gone.
	void Shutdown(void (*done)(void *), void *arg);
	size_t ActiveConnections() const { return live_.size(); }
	// Writes every byte relayed so far (closed connections and open ones) into
	// stats kTotalBytesIn/kTotalBytesOut: read at scrape time, O(connections).
	void BytesRelayed();
	bool closed() const { return shut_; }

	// For connections.
	Poller &poller() { return *poller_; }
	RelayShared &relay_shared() { return *relay_shared_; }
	Dialer &dialer() { return *dialer_; }
	uint64_t NowMs() const { return uv_now(loop_); }
	// A new record (zeroed), or nullptr when there is no room (never in practice: see Append).
	int32_t *Append(int32_t type, Conn *conn, size_t byte_need = 0);
	// Copies n bytes into the byte area; returns their offset.
	int32_t PutBytes(const uint8_t *p, size_t n);
	double *stats() { return stats_; }
	// A finished connection: freed at the next safe point.
	void Bury(Conn *conn);

	void OnAccepted(Fd client, const sockaddr_storage &peer, const sockaddr_storage &local) override;
	void OnAcceptExhausted(int err) override;
	void OnAcceptError(int err) override;

      protected:
	// One call into TS with records [start, end).
	virtual void Deliver(size_t start, size_t end) = 0;
	// Delivers pending records and applies TS's verdicts; frees the dead when
	// nothing is on the stack.
	void Flush();
	void SafePoint();

      private:
	static void OnAfterBatch(void *arg);
	static void OnTick(uv_timer_t *t);
	static void OnBackoff(uv_timer_t *t);
	static void OnFlushTimer(uv_timer_t *t);
	void Tick();
	size_t CloseSilent(uint64_t ms, bool idle);
	void ArmTick();
	void ScheduleFlush();
	void Apply(size_t i);

	uv_loop_t *loop_;
	CoreConfig config_;
	std::unique_ptr<Poller> poller_;
	std::unique_ptr<RelayShared> relay_shared_;
	std::unique_ptr<Dialer> dialer_;
	std::vector<std::unique_ptr<Listener>> listeners_;
	std::vector<std::unique_ptr<Conn>> live_;
	std::vector<std::unique_ptr<Conn>> dead_;
	std::bitset<65536> takeover_;
	int32_t *records_;
	uint8_t *bytes_;
	double *stats_;
	std::vector<Conn *> rec_conn_; // the connection of each pending record (or null)
	size_t count_ = 0;
	size_t bytes_used_ = 0;
	bool flushing_ = false;
	bool in_batch_ = false;
	bool shut_ = false;
	uv_timer_t *tick_ = nullptr;
	uv_timer_t *backoff_ = nullptr;
	uv_timer_t *flush_timer_ = nullptr;
	uint64_t tick_ms_ = 0;
};

} // namespace jfe::plane

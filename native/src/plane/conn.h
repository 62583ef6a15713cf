// SPDX-License-Identifier: MIT
// One connection of the core, from accept to its verdict: admission (a
// record to TS), the dial, and the sniff: both sides read once, at most
// kSniffBytes each, until the upstream connect resolved and someone spoke
// (or the client sent its FIN). Then TS's verdict: a native Relay, the fds
// handed to TS, or resets. Never decides anything itself.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>

#include "../fd.h"
#include "dial.h"
#include "poller.h"
#include "relay.h"

namespace jfe::plane {

class Core;

class Conn : public Retirable, public RelaySink {
      public:
	enum class State : uint8_t { kAdmission, kSniff, kVerdict, kRelay, kDone };
	// Bytes read from each side while sniffing (one read each).
	static constexpr size_t kSniffBytes = 4096;

	Conn(Core &core, Fd client, const sockaddr_storage &peer, const sockaddr_storage &local);
	~Conn() override;

	// Admitted: dial and sniff.
	void Start(int32_t ticket);
	// Refused at admission, or reset by the owner: RST, no record.
	void Refuse();
	// TS's answer to this connection's first-bytes record.
	void ApplyVerdict(int32_t verdict);
	// The owner closes it (idle, eviction, drain). Sniffing: a record of kind
	// none; relaying: the relay's own close.
	void Close(bool idle);

	void OnRelayClosed(Relay *relay, RelayReason reason, uint64_t bytes_in, uint64_t bytes_out) override;

	State state() const { return state_; }
	// Poller time of the last byte either way (the accept while sniffing).
	uint64_t LastActivityMs() const;
	// Adds the bytes its relay moved so far (none unless relaying).
	void AddBytes(double *in, double *out) const;
	// Writes family, endpoints and ticket into a record.
	void Describe(int32_t *r) const;

	size_t live_index = 0; // the core's index of live connections

      private:
	struct Side : Handler {
		Conn *conn;
		bool upstream;
		void OnEvents(uint32_t events) override { conn->OnSideEvents(upstream, events); }
	};
	void OnSideEvents(bool upstream, uint32_t events);
	void ReadClient();
	void ReadService();
	void MaybeDecide();
	void UpstreamFailed(int err);
	void DialFailed(int err);
	// Sniff over without a verdict: RST both, a closed record of kind none.
	void Fail(int32_t reason);
	// A record of type (kind when >= 0, code), then Teardown.
	void Ended(int32_t type, int32_t kind, int32_t code, bool reset_upstream);
	// The client reset, the upstream reset or closed, the bypass entry gone, buried.
	void Teardown(bool reset_upstream);
	void Unwatch();
	void Finish();

	Core &core_;
	State state_ = State::kAdmission;
	Fd client_;
	BypassEntry bypass_; // after upstream_ in destruction: the fd closes first
	Fd upstream_;
	Side client_side_;
	Side upstream_side_;
	std::unique_ptr<Relay> relay_;
	std::unique_ptr<uint8_t[]> sniff_; // client bytes, then service bytes
	uint32_t client_len_ = 0;
	uint32_t service_len_ = 0;
	int32_t ticket_ = -1;
	uint16_t src_port_ = 0;
	uint16_t dst_port_ = 0;
	uint16_t source_port_ = 0;
	uint8_t family_ = 4;
	bool connected_ = false;
	bool client_eof_ = false;
	bool upstream_eof_ = false;
	bool watching_client_ = false;
	bool watching_upstream_ = false;
	uint8_t src_[16] = {};
	uint8_t dst_[16] = {};
	uint64_t accepted_ms_ = 0;
};

} // namespace jfe::plane

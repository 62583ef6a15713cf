// SPDX-License-Identifier: MIT
// The records the plane hands to TypeScript once per batch: fixed-size rows
// of int32 words in one ArrayBuffer the plane reuses, plus one byte area for
// first bytes. src/agent/data-plane.ts mirrors every constant here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jfe::plane::rec {

constexpr size_t kWords = 32; // per record (128 bytes; the byte counts are float64 at 8-byte offsets)
constexpr size_t kCapacity = 4096;
constexpr size_t kByteArea = 1 << 20;

enum Type : int32_t {
	kAccepted = 1,	       // admission: TS writes kVerdict (kAdmit/kRefuse) and kTicket
	kTakeoverAccepted = 2, // kClientFd is TS's now
	kFirstBytes = 3,       // TS writes kVerdict (kPlain/kTakeOver/kReset)
	kUpstreamFailed = 4,   // kCode = errno; the client was reset
	kDialFailed = 5,       // kCode = errno; no upstream socket (source port, bypass entry)
	kClosed = 6,	       // kKind, kCode = RelayReason, byte counts
};

enum Word : size_t {
	kType = 0,
	kVerdict = 1,
	kTicket = 2,
	kFamily = 3, // 4 | 6
	kSrcPort = 4,
	kDstPort = 5,
	kFlags = 6,
	kSrcAddr = 8,  // 16 bytes, network order (IPv4: the first 4)
	kDstAddr = 12, // 16 bytes
	kClientFd = 16,
	kUpstreamFd = 17,
	kSourcePort = 18, // the upstream socket's own port (its bypass entry)
	kCode = 19,
	kClientOff = 20, // into the byte area
	kClientLen = 21,
	kServiceOff = 22,
	kServiceLen = 23,
	kBytesIn = 24,	// float64 (words 24-25)
	kBytesOut = 26, // float64 (words 26-27)
	kKind = 28,	// closed: 0 none, 1 plain
};

enum Flags : int32_t { kClientEof = 1, kUpstreamEof = 2 };
enum AcceptVerdict : int32_t { kAdmit = 0, kRefuse = 1 };
enum FirstVerdict : int32_t { kPlain = 0, kTakeOver = 1, kReset = 2 };
enum Kind : int32_t { kNone = 0, kPlainKind = 1 };
// kCode of a kClosed record of kind none.
enum NoneReason : int32_t { kIdleNone = 1, kClientGone = 2, kAbortedNone = 6 };

// Shared counters (a Float64Array): totals since the plane began.
enum Stat : size_t {
	kCollisions = 0,
	kAcceptBackoffs = 1,
	kAcceptErrors = 2,
	// Bytes relayed by connections that closed (in = client to service).
	kClosedBytesIn = 4,
	kClosedBytesOut = 5,
	// Written by BytesRelayed(): every byte so far, open connections' included.
	kTotalBytesIn = 6,
	kTotalBytesOut = 7,
	kStats = 8,
};

} // namespace jfe::plane::rec

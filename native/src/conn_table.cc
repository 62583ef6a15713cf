// SPDX-License-Identifier: MIT
// The shared connection counts (see conn_table.h). Layout of the block:
//
//   Header            magic, version, columns, entries per column, hash seed
//   Column[256]       one cache line each: in_use (set by the primary), held
//                     (connections the column's worker holds now)
//   Entry[columns][entries]
//                     per column, an open-addressing table of 64-bit words:
//                     tag (48 bits of a keyed hash of the client key) << 16 |
//                     count (connections of that client this worker holds)
//
// Each column has exactly one writer, the worker it was given to (or the
// primary, after that worker exited, to zero it), so a worker's counts die
// with it: the primary zeroes a dead worker's column before reusing it. A
// worker adds to its own counts first, then reads everyone's (seq_cst both
// ways): of two workers admitting at once, at least one sees the other, so a
// count compared against a limit can only be too high, never too low.
// Every loop is bounded: kWindow probes per column, at most kMaxColumns columns.
#include "conn_table.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>

#include "args.h"
#include "errors.h"
#include "fd.h"

namespace jfe {

namespace {

constexpr uint32_t kMagic = 0x4a464354; // "JFCT"
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxColumns = 256;
constexpr uint32_t kMinEntries = 1u << 10;
constexpr uint32_t kMaxEntries = 1u << 22;
// Slots probed per key: a client key lives within kWindow slots of its hash.
constexpr uint32_t kWindow = 16;
constexpr uint64_t kCountMask = 0xffff;

struct alignas(64) Header {
	uint32_t magic;
	uint32_t version;
	uint32_t columns;
	uint32_t entries;
	uint64_t seed[2];
};

// One cache line per column: a worker's writes do not slow the others' reads.
struct alignas(64) Column {
	std::atomic<uint32_t> in_use;
	std::atomic<uint32_t> held;
};

static_assert(sizeof(Header) == 64, "header is one cache line");
static_assert(sizeof(Column) == 64, "a column is one cache line");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "entries must be lock-free in shared memory");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "counters must be lock-free in shared memory");

constexpr size_t kColumnsOffset = sizeof(Header);
constexpr size_t kEntriesOffset = kColumnsOffset + kMaxColumns * sizeof(Column);

size_t BlockSize(uint32_t columns, uint32_t entries)
{
	return kEntriesOffset + static_cast<size_t>(columns) * entries * sizeof(uint64_t);
}

uint64_t Mix(uint64_t z)
{
	// splitmix64's finaliser.
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

// A mapping of the block; unmapped when it goes out of scope.
class Mapping {
      public:
	Mapping(void *addr, size_t len) : addr_(addr), len_(len) {}
	Mapping(const Mapping &) = delete;
	Mapping &operator=(const Mapping &) = delete;
	~Mapping() { munmap(addr_, len_); }
	uint8_t *bytes() const { return static_cast<uint8_t *>(addr_); }

      private:
	void *addr_;
	size_t len_;
};

std::unique_ptr<Mapping> Map(Napi::Env env, int fd, size_t len)
{
	void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		ThrowErrno(env, errno, "mmap", "connection table");
	return std::make_unique<Mapping>(p, len);
}

bool PowerOfTwo(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

class ConnTable : public Napi::ObjectWrap<ConnTable> {
      public:
	static Napi::Function Class(Napi::Env env)
	{
		return DefineClass(env, "ConnTable",
				   {
					   InstanceMethod("acquire", &ConnTable::Acquire),
					   InstanceMethod("release", &ConnTable::Release),
					   InstanceMethod("hostTotal", &ConnTable::HostTotal),
					   InstanceMethod("setInUse", &ConnTable::SetInUse),
					   InstanceMethod("resetColumn", &ConnTable::ResetColumn),
					   InstanceMethod("close", &ConnTable::Close),
				   });
	}

	// (fd, column | -1, out: Uint32Array(2)): maps the block made by
	// ConnTableCreate. column -1: the primary's view (no counts of its own).
	explicit ConnTable(const Napi::CallbackInfo &info) : Napi::ObjectWrap<ConnTable>(info)
	{
		Napi::Env env = info.Env();
		int fd = ArgInt(info, 0, "fd");
		int column = ArgInt(info, 1, "column");
		if (info.Length() < 3 || !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
			throw Napi::TypeError::New(env, "out must be a Uint32Array");
		Napi::Uint32Array out = info[2].As<Napi::Uint32Array>();
		if (out.ElementLength() < 2)
			throw Napi::TypeError::New(env, "out must hold 2 numbers");
		struct stat st = {};
		if (fstat(fd, &st) < 0)
			ThrowErrno(env, errno, "fstat", "connection table");
		if (static_cast<size_t>(st.st_size) < kEntriesOffset)
			throw Napi::Error::New(env, "connection table: block too small");
		std::unique_ptr<Mapping> map = Map(env, fd, st.st_size);
		auto *h = reinterpret_cast<Header *>(map->bytes());
		if (h->magic != kMagic || h->version != kVersion || h->columns == 0 || h->columns > kMaxColumns ||
		    !PowerOfTwo(h->entries) || h->entries > kMaxEntries ||
		    BlockSize(h->columns, h->entries) != static_cast<size_t>(st.st_size))
			throw Napi::Error::New(env, "connection table: not a block of this jfe build");
		if (column < -1 || column >= static_cast<int>(h->columns))
			throw Napi::RangeError::New(env, "column out of range");
		map_ = std::move(map);
		header_ = h;
		column_ = column;
		out_ = out.Data();
		outRef_ = Napi::Persistent(out.As<Napi::Object>());
	}

      private:
	Column *Col(uint32_t c) const
	{
		return reinterpret_cast<Column *>(map_->bytes() + kColumnsOffset) + c;
	}

	std::atomic<uint64_t> *Entries(uint32_t c) const
	{
		return reinterpret_cast<std::atomic<uint64_t> *>(map_->bytes() + kEntriesOffset) +
		       static_cast<size_t>(c) * header_->entries;
	}

	void Check(Napi::Env env) const
	{
		if (!map_)
			throw Napi::Error::New(env, "connection table closed");
	}

	// Counting calls are a worker's: the primary's view has no column.
	void CheckWorker(Napi::Env env) const
	{
		Check(env);
		if (column_ < 0)
			throw Napi::Error::New(env, "connection table: the primary holds no connections");
	}

	// A column counts once the primary gave it to a worker; this worker's own always.
	bool Counts(uint32_t c) const
	{
		return c == static_cast<uint32_t>(column_) || Col(c)->in_use.load(std::memory_order_seq_cst) != 0;
	}

	// This client's connections in column c: the counts of the slots in its window that bear its tag.
	uint32_t CountIn(uint32_t c, uint64_t index, uint64_t tag) const
	{
		const uint64_t mask = header_->entries - 1;
		std::atomic<uint64_t> *e = Entries(c);
		uint32_t n = 0;
		for (uint32_t i = 0; i < kWindow; i++) {
			uint64_t v = e[(index + i) & mask].load(std::memory_order_seq_cst);
			if ((v & kCountMask) != 0 && (v >> 16) == tag)
				n += static_cast<uint32_t>(v & kCountMask);
		}
		return n;
	}

	// (kind, hi, lo) -> slot in this worker's column, or -1 when the client is not
	// counted (its window is full or its count saturated). Adds one connection to
	// this worker's counts, then writes [this client's connections, all connections]
	// (the new one included) into out.
	Napi::Value Acquire(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		CheckWorker(env);
		uint64_t kind = ArgUint(info, 0, "kind");
		uint64_t key = (static_cast<uint64_t>(ArgUint(info, 1, "hi")) << 32) | ArgUint(info, 2, "lo");
		uint64_t h = Mix(Mix(key ^ header_->seed[0]) ^ header_->seed[1] ^ kind);
		uint64_t tag = h >> 16;
		uint64_t index = h & (header_->entries - 1);
		const uint64_t mask = header_->entries - 1;
		std::atomic<uint64_t> *own = Entries(column_);

		int64_t slot = -1;
		int64_t free = -1;
		for (uint32_t i = 0; i < kWindow; i++) {
			uint64_t j = (index + i) & mask;
			uint64_t v = own[j].load(std::memory_order_relaxed);
			if ((v & kCountMask) != 0 && (v >> 16) == tag) {
				slot = static_cast<int64_t>(j);
				break;
			}
			if ((v & kCountMask) == 0 && free < 0)
				free = static_cast<int64_t>(j);
		}
		if (slot < 0)
			slot = free;
		if (slot >= 0) {
			uint64_t v = own[slot].load(std::memory_order_relaxed);
			uint64_t count = v & kCountMask;
			if (count == kCountMask)
				slot = -1;
			else
				own[slot].store((tag << 16) | (count + 1), std::memory_order_seq_cst);
		}
		Column *mine = Col(column_);
		mine->held.store(mine->held.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);

		uint32_t client = 0;
		uint32_t host = 0;
		for (uint32_t c = 0; c < header_->columns; c++) {
			if (!Counts(c))
				continue;
			host += Col(c)->held.load(std::memory_order_seq_cst);
			if (slot >= 0)
				client += CountIn(c, index, tag);
		}
		out_[0] = client;
		out_[1] = host;
		return Napi::Number::New(env, static_cast<double>(slot));
	}

	// (slot from acquire, -1 included): one connection fewer in this worker's counts.
	Napi::Value Release(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		CheckWorker(env);
		int slot = ArgInt(info, 0, "slot");
		if (slot >= static_cast<int>(header_->entries))
			throw Napi::RangeError::New(env, "slot out of range");
		if (slot >= 0) {
			std::atomic<uint64_t> &e = Entries(column_)[slot];
			uint64_t v = e.load(std::memory_order_relaxed);
			if ((v & kCountMask) != 0)
				e.store(v - 1, std::memory_order_seq_cst);
		}
		Column *mine = Col(column_);
		uint32_t held = mine->held.load(std::memory_order_relaxed);
		if (held > 0)
			mine->held.store(held - 1, std::memory_order_seq_cst);
		return env.Undefined();
	}

	// () -> connections held by every worker in use.
	Napi::Value HostTotal(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Check(env);
		uint32_t host = 0;
		for (uint32_t c = 0; c < header_->columns; c++)
			if (Counts(c))
				host += Col(c)->held.load(std::memory_order_seq_cst);
		return Napi::Number::New(env, host);
	}

	uint32_t ColumnArg(const Napi::CallbackInfo &info) const
	{
		uint32_t c = ArgUint(info, 0, "column");
		if (c >= header_->columns)
			throw Napi::RangeError::New(info.Env(), "column out of range");
		return c;
	}

	// (column, on): the primary marks a column given to a worker (read by the others) or free.
	Napi::Value SetInUse(const Napi::CallbackInfo &info)
	{
		Check(info.Env());
		uint32_t c = ColumnArg(info);
		if (info.Length() < 2 || !info[1].IsBoolean())
			throw Napi::TypeError::New(info.Env(), "on must be a boolean");
		Col(c)->in_use.store(info[1].As<Napi::Boolean>().Value() ? 1 : 0, std::memory_order_seq_cst);
		return info.Env().Undefined();
	}

	// (column): zeroes a column whose worker has exited, so its counts do not outlive it.
	// Only for a column no live process writes.
	Napi::Value ResetColumn(const Napi::CallbackInfo &info)
	{
		Check(info.Env());
		uint32_t c = ColumnArg(info);
		Column *col = Col(c);
		col->in_use.store(0, std::memory_order_seq_cst);
		std::atomic<uint64_t> *e = Entries(c);
		for (uint32_t i = 0; i < header_->entries; i++)
			e[i].store(0, std::memory_order_relaxed);
		col->held.store(0, std::memory_order_seq_cst);
		return info.Env().Undefined();
	}

	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		map_.reset();
		outRef_.Reset();
		out_ = nullptr;
		return info.Env().Undefined();
	}

	std::unique_ptr<Mapping> map_;
	Header *header_ = nullptr;
	int column_ = -1;
	uint32_t *out_ = nullptr;
	Napi::ObjectReference outRef_;
};

} // namespace

// (columns, entries per column: a power of two) -> fd of a new block (memfd,
// close-on-exec: it reaches a worker only as the fd its fork is handed).
Napi::Value ConnTableCreate(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	uint32_t columns = ArgUint(info, 0, "columns");
	uint32_t entries = ArgUint(info, 1, "entries");
	if (columns == 0 || columns > kMaxColumns)
		throw Napi::RangeError::New(env, "columns must be from 1 to 256");
	if (!PowerOfTwo(entries) || entries < kMinEntries || entries > kMaxEntries)
		throw Napi::RangeError::New(env, "entries must be a power of two from 1024 to 4194304");
	Fd fd(memfd_create("jfe-conn-table", MFD_CLOEXEC));
	if (fd.get() < 0)
		ThrowErrno(env, errno, "memfd_create", "connection table");
	size_t size = BlockSize(columns, entries);
	if (ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
		ThrowErrno(env, errno, "ftruncate", "connection table");
	Header h = {};
	h.magic = kMagic;
	h.version = kVersion;
	h.columns = columns;
	h.entries = entries;
	// A keyed hash: a client cannot choose addresses that crowd one window.
	if (getrandom(h.seed, sizeof(h.seed), 0) != static_cast<ssize_t>(sizeof(h.seed)))
		ThrowErrno(env, errno, "getrandom", "connection table seed");
	{
		std::unique_ptr<Mapping> map = Map(env, fd.get(), sizeof(Header));
		*reinterpret_cast<Header *>(map->bytes()) = h;
	}
	return Napi::Number::New(env, fd.release());
}

Napi::Function ConnTableClass(Napi::Env env)
{
	return ConnTable::Class(env);
}

} // namespace jfe

// SPDX-License-Identifier: MIT
#include "core.h"

#include <cstring>

#include "../tcp.h"

namespace jfe::plane {

namespace {
// Out of fds on accept: how long the listeners rest before trying again.
constexpr uint64_t kBackoffMs = 100;
// The idle timer ticks idle/kTicks (a connection closes between idle and
// 1.25 x idle after its last byte, as the Node relay did), within these bounds.
constexpr uint64_t kTicks = 4;
constexpr uint64_t kMinTickMs = 10;
constexpr uint64_t kMaxTickMs = 1000;

uv_timer_t *NewTimer(uv_loop_t *loop, void *data)
{
	auto *t = new uv_timer_t;
	uv_timer_init(loop, t);
	t->data = data;
	// The worker lives for its loop's other handles; these never hold it.
	uv_unref(reinterpret_cast<uv_handle_t *>(t));
	return t;
}

void CloseTimer(uv_timer_t *&t, uv_close_cb cb = nullptr)
{
	if (t == nullptr)
		return;
	uv_timer_stop(t);
	t->data = nullptr;
	uv_close(reinterpret_cast<uv_handle_t *>(t),
		 cb ? cb : [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
	t = nullptr;
}

} // namespace

Core::Core(uv_loop_t *loop, const CoreConfig &config, int32_t *records, uint8_t *bytes, double *stats)
    : loop_(loop), config_(config), records_(records), bytes_(bytes), stats_(stats), rec_conn_(rec::kCapacity)
{
	poller_ = std::make_unique<Poller>(loop, OnAfterBatch, this);
	relay_shared_ = std::make_unique<RelayShared>(config.relay);
	dialer_ = std::make_unique<Dialer>(config.dial);
	tick_ = NewTimer(loop, this);
	backoff_ = NewTimer(loop, this);
	flush_timer_ = NewTimer(loop, this);
	ArmTick();
}

Core::~Core()
{
	// Shutdown() normally ran; if not, release what we hold now.
	if (!shut_)
		Shutdown(nullptr, nullptr);
}

int Core::Listen(int fd)
{
	auto l = std::make_unique<Listener>(*poller_, Fd(fd), this);
	int err = l->Start();
	if (err != 0)
		return err;
	listeners_.push_back(std::move(l));
	return 0;
}

void Core::StopListening()
{
	listeners_.clear();
	uv_timer_stop(backoff_);
}

void Core::SetTakeover(const uint8_t *bitmap)
{
	for (size_t p = 0; p < 65536; p++)
		takeover_[p] = (bitmap[p >> 3] >> (p & 7)) & 1;
}

void Core::SetIdleTimeout(uint64_t ms)
{
	config_.idle_timeout_ms = ms;
	ArmTick();
}

void Core::ArmTick()
{
	uint64_t t = config_.idle_timeout_ms / kTicks;
	t = t < kMinTickMs ? kMinTickMs : t > kMaxTickMs ? kMaxTickMs : t;
	if (t == tick_ms_ && uv_is_active(reinterpret_cast<uv_handle_t *>(tick_)))
		return;
	tick_ms_ = t;
	uv_timer_start(tick_, OnTick, t, t);
}

bool Core::CloseLongestIdle(uint64_t min_idle_ms)
{
	uint64_t now = NowMs();
	Conn *victim = nullptr;
	uint64_t longest = 0;
	for (auto &c : live_) {
		if (c->state() != Conn::State::kSniff && c->state() != Conn::State::kRelay)
			continue;
		uint64_t last = c->LastActivityMs();
		uint64_t silent = now > last ? now - last : 0;
		if (silent >= min_idle_ms && (victim == nullptr || silent > longest)) {
			victim = c.get();
			longest = silent;
		}
	}
	if (victim == nullptr)
		return false;
	victim->Close(false);
	ScheduleFlush();
	return true;
}

size_t Core::CloseIdle(uint64_t idle_ms)
{
	return CloseSilent(idle_ms, false);
}

size_t Core::CloseSilent(uint64_t idle_ms, bool idle)
{
	uint64_t now = NowMs();
	std::vector<Conn *> victims;
	for (auto &c : live_) {
		if (c->state() != Conn::State::kSniff && c->state() != Conn::State::kRelay)
			continue;
		uint64_t last = c->LastActivityMs();
		if (now >= last && now - last >= idle_ms)
			victims.push_back(c.get());
	}
	// Buried connections stay allocated until a safe point: the pointers hold.
	for (Conn *c : victims)
		c->Close(idle);
	if (!victims.empty())
		ScheduleFlush();
	return victims.size();
}

void Core::BytesRelayed()
{
	double in = stats_[rec::kClosedBytesIn], out = stats_[rec::kClosedBytesOut];
	for (auto &c : live_)
		c->AddBytes(&in, &out);
	stats_[rec::kTotalBytesIn] = in;
	stats_[rec::kTotalBytesOut] = out;
}

void Core::CloseAll()
{
	std::vector<Conn *> all;
	for (auto &c : live_)
		all.push_back(c.get());
	for (Conn *c : all)
		c->Close(false);
	if (!all.empty())
		ScheduleFlush();
}

void Core::Shutdown(void (*done)(void *), void *arg)
{
	if (shut_)
		return;
	shut_ = true; // from now on, no record reaches TS
	listeners_.clear();
	CloseAll();
	live_.clear();
	dead_.clear();
	count_ = 0;
	dialer_.reset();
	relay_shared_.reset();
	poller_.reset(); // its uv_poll_t closes asynchronously
	CloseTimer(tick_);
	CloseTimer(backoff_);
	if (done == nullptr) {
		CloseTimer(flush_timer_);
		return;
	}
	// Closed last: libuv runs close callbacks in one pass, so when this one
	// runs the others were handed to the loop before it.
	struct Done {
		void (*fn)(void *);
		void *arg;
	};
	flush_timer_->data = new Done{done, arg};
	uv_timer_stop(flush_timer_);
	uv_close(reinterpret_cast<uv_handle_t *>(flush_timer_), [](uv_handle_t *h) {
		auto *d = static_cast<Done *>(h->data);
		delete reinterpret_cast<uv_timer_t *>(h);
		d->fn(d->arg);
		delete d;
	});
	flush_timer_ = nullptr;
}

int32_t *Core::Append(int32_t type, Conn *conn, size_t byte_need)
{
	if (shut_)
		return nullptr;
	// Room is kept for what applying the pending verdicts adds (at most one
	// record each): past half, records go to TS at once.
	if (!flushing_ && (count_ >= rec::kCapacity / 2 || bytes_used_ + byte_need > rec::kByteArea / 2))
		Flush();
	if (count_ >= rec::kCapacity || bytes_used_ + byte_need > rec::kByteArea)
		return nullptr;
	int32_t *r = records_ + count_ * rec::kWords;
	memset(r, 0, rec::kWords * sizeof(int32_t));
	r[rec::kType] = type;
	// What applies if TS writes no verdict (its callback threw): nothing held.
	if (type == rec::kAccepted)
		r[rec::kVerdict] = rec::kRefuse;
	else if (type == rec::kFirstBytes)
		r[rec::kVerdict] = rec::kReset;
	rec_conn_[count_] = conn;
	count_++;
	if (!flushing_)
		ScheduleFlush();
	return r;
}

int32_t Core::PutBytes(const uint8_t *p, size_t n)
{
	int32_t off = static_cast<int32_t>(bytes_used_);
	if (n > 0)
		memcpy(bytes_ + bytes_used_, p, n);
	bytes_used_ += n;
	return off;
}

void Core::Bury(Conn *conn)
{
	size_t i = conn->live_index;
	if (i >= live_.size() || live_[i].get() != conn)
		return;
	std::unique_ptr<Conn> owned = std::move(live_[i]);
	if (i + 1 != live_.size()) {
		live_[i] = std::move(live_.back());
		live_[i]->live_index = i;
	}
	live_.pop_back();
	dead_.push_back(std::move(owned));
}

void Core::OnAccepted(Fd client, const sockaddr_storage &peer, const sockaddr_storage &local)
{
	if (shut_)
		return;
	uint16_t port = AddrPort(local);
	if (takeover_[port]) {
		int32_t *r = Append(rec::kTakeoverAccepted, nullptr);
		if (r == nullptr)
			return;
		size_t alen = peer.ss_family == AF_INET ? 4 : 16;
		r[rec::kFamily] = peer.ss_family == AF_INET ? 4 : 6;
		r[rec::kSrcPort] = AddrPort(peer);
		r[rec::kDstPort] = port;
		memcpy(r + rec::kSrcAddr, AddrBytes(peer), alen);
		memcpy(r + rec::kDstAddr, AddrBytes(local), alen);
		r[rec::kClientFd] = client.release();
		return;
	}
	auto c = std::make_unique<Conn>(*this, std::move(client), peer, local);
	Conn *conn = c.get();
	conn->live_index = live_.size();
	live_.push_back(std::move(c));
	int32_t *r = Append(rec::kAccepted, conn);
	if (r == nullptr) {
		conn->Refuse();
		return;
	}
	conn->Describe(r);
}

void Core::OnAcceptExhausted(int /*err*/)
{
	stats_[rec::kAcceptBackoffs] += 1;
	if (!uv_is_active(reinterpret_cast<uv_handle_t *>(backoff_)))
		uv_timer_start(backoff_, OnBackoff, kBackoffMs, 0);
}

void Core::OnAcceptError(int /*err*/)
{
	stats_[rec::kAcceptErrors] += 1;
}

void Core::Flush()
{
	if (flushing_ || count_ == 0)
		return;
	flushing_ = true;
	size_t head = 0;
	while (head < count_ && !shut_) {
		size_t end = count_;
		Deliver(head, end);
		for (size_t i = head; i < end && !shut_; i++)
			Apply(i);
		head = end;
	}
	count_ = 0;
	bytes_used_ = 0;
	flushing_ = false;
}

void Core::Apply(size_t i)
{
	const int32_t *r = records_ + i * rec::kWords;
	Conn *conn = rec_conn_[i];
	rec_conn_[i] = nullptr;
	if (conn == nullptr)
		return;
	if (r[rec::kType] == rec::kAccepted && conn->state() == Conn::State::kAdmission) {
		if (r[rec::kVerdict] == rec::kAdmit)
			conn->Start(r[rec::kTicket]);
		else
			conn->Refuse();
	} else if (r[rec::kType] == rec::kFirstBytes) {
		conn->ApplyVerdict(r[rec::kVerdict]);
	}
}

void Core::SafePoint()
{
	if (!flushing_)
		dead_.clear();
}

void Core::ScheduleFlush()
{
	if (flush_timer_ != nullptr && !uv_is_active(reinterpret_cast<uv_handle_t *>(flush_timer_)))
		uv_timer_start(flush_timer_, OnFlushTimer, 0, 0);
}

void Core::OnAfterBatch(void *arg)
{
	auto *self = static_cast<Core *>(arg);
	self->Flush();
	self->SafePoint();
}

void Core::OnFlushTimer(uv_timer_t *t)
{
	auto *self = static_cast<Core *>(t->data);
	if (self == nullptr)
		return;
	self->Flush();
	self->SafePoint();
}

void Core::OnTick(uv_timer_t *t)
{
	auto *self = static_cast<Core *>(t->data);
	if (self != nullptr)
		self->Tick();
}

void Core::Tick()
{
	CloseSilent(config_.idle_timeout_ms, true);
	Flush();
	SafePoint();
}

void Core::OnBackoff(uv_timer_t *t)
{
	auto *self = static_cast<Core *>(t->data);
	if (self == nullptr)
		return;
	for (auto &l : self->listeners_)
		l->Resume();
	self->Flush();
	self->SafePoint();
}

} // namespace jfe::plane

// SPDX-License-Identifier: MIT
// The data plane's readiness source: one epoll set, edge-triggered, watched
// by a single uv_poll_t on the worker's own libuv loop. One uv_poll_t per fd
// would cost an epoll_ctl each time libuv re-arms a handle; with one
// edge-triggered set an fd is added once and removed once in its life.
#pragma once

#include <sys/epoll.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace jfe::plane {

// Something with an fd in the set. Handlers are never deleted while a batch
// of events is being dispatched: they are Retire()d and freed after it, so an
// event already fetched for a closed connection reaches a live object that
// knows it is closed (and ignores it).
class Handler {
      public:
	virtual ~Handler() = default;
	// events: EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR, as epoll gave them.
	virtual void OnEvents(uint32_t events) = 0;
};

// Owns an object until the end of the current dispatch batch.
class Retirable {
      public:
	virtual ~Retirable() = default;
};

class Poller {
      public:
	// Called once after every dispatched batch (records to TS, deferred frees).
	using AfterBatch = void (*)(void *arg);

	// Throws std::system_error when epoll or uv_poll cannot be set up.
	Poller(uv_loop_t *loop, AfterBatch after, void *arg);
	~Poller(); // closes the uv_poll_t (asynchronously) and the epoll fd
	Poller(const Poller &) = delete;
	Poller &operator=(const Poller &) = delete;

	// Edge-triggered: `events` gets EPOLLET added. Returns 0 or an errno.
	int Add(int fd, uint32_t events, Handler *h);
	int Modify(int fd, uint32_t events, Handler *h);
	// Call before closing fd.
	void Remove(int fd);
	// Freed after the current batch (at once when no batch runs).
	void Retire(std::unique_ptr<Retirable> obj);
	// The loop's clock (uv_now), milliseconds.
	uint64_t NowMs() const;
	uv_loop_t *loop() const { return loop_; }

      private:
	static void OnPoll(uv_poll_t *h, int status, int events);
	void Dispatch();

	uv_loop_t *loop_;
	int epfd_ = -1;
	uv_poll_t *poll_ = nullptr; // freed in its close callback
	AfterBatch after_;
	void *arg_;
	bool dispatching_ = false;
	std::vector<std::unique_ptr<Retirable>> retired_;
	std::vector<epoll_event> events_;
};

} // namespace jfe::plane

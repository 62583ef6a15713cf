// SPDX-License-Identifier: MIT
#include "poller.h"

#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace jfe::plane {

namespace {
// Events fetched per epoll_wait; more stay queued for the next round of the loop.
constexpr int kBatch = 256;
} // namespace

Poller::Poller(uv_loop_t *loop, AfterBatch after, void *arg) : loop_(loop), after_(after), arg_(arg), events_(kBatch)
{
	epfd_ = epoll_create1(EPOLL_CLOEXEC);
	if (epfd_ < 0)
		throw std::system_error(errno, std::generic_category(), "epoll_create1");
	poll_ = new uv_poll_t;
	int r = uv_poll_init(loop_, poll_, epfd_);
	if (r != 0) {
		delete poll_; // refused by the loop: plain memory
		poll_ = nullptr;
	} else {
		poll_->data = this;
		r = uv_poll_start(poll_, UV_READABLE, OnPoll);
	}
	if (r != 0) {
		if (poll_) { // in the loop's list: only the loop may free it
			poll_->data = nullptr;
			uv_close(reinterpret_cast<uv_handle_t *>(poll_), [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
			poll_ = nullptr;
		}
		close(epfd_);
		epfd_ = -1;
		throw std::system_error(-r, std::generic_category(), "uv_poll on the epoll set");
	}
}

Poller::~Poller()
{
	if (poll_) {
		uv_poll_stop(poll_);
		poll_->data = nullptr;
		uv_close(reinterpret_cast<uv_handle_t *>(poll_), [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
		poll_ = nullptr;
	}
	retired_.clear();
	if (epfd_ >= 0)
		close(epfd_);
}

int Poller::Add(int fd, uint32_t events, Handler *h)
{
	epoll_event ev{};
	ev.events = events | EPOLLET;
	ev.data.ptr = h;
	return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

int Poller::Modify(int fd, uint32_t events, Handler *h)
{
	epoll_event ev{};
	ev.events = events | EPOLLET;
	ev.data.ptr = h;
	return epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0 : errno;
}

void Poller::Remove(int fd)
{
	epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Poller::Retire(std::unique_ptr<Retirable> obj)
{
	if (dispatching_)
		retired_.push_back(std::move(obj));
	// else: obj goes out of scope here, freed at once
}

uint64_t Poller::NowMs() const
{
	return uv_now(loop_);
}

void Poller::OnPoll(uv_poll_t *h, int status, int /*events*/)
{
	auto *self = static_cast<Poller *>(h->data);
	if (self == nullptr || status < 0)
		return;
	self->Dispatch();
}

void Poller::Dispatch()
{
	dispatching_ = true;
	int n;
	do {
		n = epoll_wait(epfd_, events_.data(), kBatch, 0);
	} while (n < 0 && errno == EINTR);
	for (int i = 0; i < n; i++)
		static_cast<Handler *>(events_[i].data.ptr)->OnEvents(events_[i].events);
	if (after_)
		after_(arg_);
	dispatching_ = false;
	retired_.clear();
}

} // namespace jfe::plane

// SPDX-License-Identifier: MIT
#include "listener.h"

#include <sys/epoll.h>

#include <cerrno>

namespace jfe::plane {

namespace {
// Accepts per readiness: the rest waits for the next round of the loop, so one
// flood of SYNs cannot starve the connections already held.
constexpr int kAcceptBatch = 64;
} // namespace

Listener::Listener(Poller &poller, Fd fd, AcceptSink *sink) : poller_(poller), fd_(fd.release()), sink_(sink) {}

Listener::~Listener()
{
	if (fd_.get() >= 0)
		poller_.Remove(fd_.get());
}

int Listener::Start()
{
	return poller_.Add(fd_.get(), EPOLLIN, this);
}

void Listener::OnEvents(uint32_t /*events*/)
{
	if (!paused_)
		AcceptBatch();
}

void Listener::Resume()
{
	paused_ = false;
	AcceptBatch();
}

void Listener::AcceptBatch()
{
	for (int i = 0; i < kAcceptBatch; i++) {
		sockaddr_storage peer{};
		socklen_t plen = sizeof(peer);
		int c = accept4(fd_.get(), reinterpret_cast<sockaddr *>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			int err = errno;
			if (err == EAGAIN || err == EWOULDBLOCK)
				return;
			if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM)
				continue;
			if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
				paused_ = true;
				sink_->OnAcceptExhausted(err);
				return;
			}
			sink_->OnAcceptError(err);
			return;
		}
		Fd client(c);
		sockaddr_storage local{};
		socklen_t llen = sizeof(local);
		if (getsockname(c, reinterpret_cast<sockaddr *>(&local), &llen) < 0)
			continue; // already gone: closed by Fd
		sink_->OnAccepted(Fd(client.release()), peer, local);
	}
	// More may wait: re-arm, so epoll reports the listener again next round
	// (edge-triggered, it would not by itself).
	poller_.Modify(fd_.get(), EPOLLIN, this);
}

} // namespace jfe::plane

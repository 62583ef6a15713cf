// SPDX-License-Identifier: MIT
// A listening socket of the worker: accepts in bounded batches and hands each
// client to its owner. Out of fds (EMFILE/ENFILE/ENOBUFS/ENOMEM) it stops for
// a back-off instead of spinning on a queue it cannot empty.
#pragma once

#include <sys/socket.h>

#include "../fd.h"
#include "poller.h"

namespace jfe::plane {

class AcceptSink {
      public:
	// client: non-blocking, close-on-exec. local: the original destination.
	virtual void OnAccepted(Fd client, const sockaddr_storage &peer, const sockaddr_storage &local) = 0;
	// Accept failed for lack of resources: resume this listener later (Resume()).
	virtual void OnAcceptExhausted(int err) = 0;
	virtual void OnAcceptError(int err) = 0;

      protected:
	~AcceptSink() = default;
};

class Listener : public Handler {
      public:
	Listener(Poller &poller, Fd fd, AcceptSink *sink);
	~Listener() override;
	Listener(const Listener &) = delete;
	Listener &operator=(const Listener &) = delete;
	// Returns 0 or an errno.
	int Start();
	void OnEvents(uint32_t events) override;
	// After a back-off: accept what waits (the edge may be long gone).
	void Resume();
	int fd() const { return fd_.get(); }

      private:
	void AcceptBatch();

	Poller &poller_;
	Fd fd_;
	AcceptSink *sink_;
	bool paused_ = false;
};

} // namespace jfe::plane

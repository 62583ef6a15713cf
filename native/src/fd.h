// SPDX-License-Identifier: MIT
// An owned file descriptor: closed when it goes out of scope unless released.
#pragma once

#include <unistd.h>

namespace jfe {

class Fd {
      public:
	explicit Fd(int fd) : fd_(fd) {}
	Fd(const Fd &) = delete;
	Fd &operator=(const Fd &) = delete;
	~Fd()
	{
		if (fd_ >= 0)
			close(fd_);
	}
	int get() const { return fd_; }
	int release()
	{
		int fd = fd_;
		fd_ = -1;
		return fd;
	}

      private:
	int fd_;
};

} // namespace jfe

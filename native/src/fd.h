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
	Fd(Fd &&other) noexcept : fd_(other.release()) {}
	Fd &operator=(Fd &&other) noexcept
	{
		if (this != &other)
			reset(other.release());
		return *this;
	}
	~Fd()
	{
		if (fd_ >= 0)
			close(fd_);
	}
	int get() const { return fd_; }
	// Closes the fd held (if any) and holds `fd` instead.
	void reset(int fd = -1)
	{
		if (fd_ >= 0)
			close(fd_);
		fd_ = fd;
	}
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

// SPDX-License-Identifier: MIT
// The relay's two directions share one shape: flush what is pending, then
// read, until the source has nothing (EAGAIN) or the destination is full.
// Each fd is added to the edge-triggered set once with IN|OUT|RDHUP and
// never modified (except to re-arm a source cut short by the budget), so
// readiness is kept here, in two flags per side, cleared at EAGAIN.
#include "relay.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace jfe::plane {

namespace {

constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
// Reads one direction may make per event before it yields to the other
// connections of the batch (its source is re-armed, not forgotten): 256 KiB
// through 16 KiB buffers, 1 MiB through 64 KiB pipes.
constexpr int kReadsPerEvent = 16;

bool IsReset(int err)
{
	return err == ECONNRESET || err == EPIPE;
}

void CloseNow(Fd &fd)
{
	int raw = fd.release();
	if (raw >= 0)
		close(raw);
}

// RST instead of FIN: the peer must not take a cut stream for a whole one.
void ResetNow(Fd &fd)
{
	if (fd.get() >= 0) {
		linger l{1, 0};
		setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	CloseNow(fd);
}

struct Pipe {
	Pipe(int rd, int wr) : r(rd), w(wr) {}
	Fd r;
	Fd w;
};

} // namespace

struct RelayShared::Impl {
	std::unique_ptr<uint8_t[]> buf; // every relay's reads land here first
	std::vector<std::unique_ptr<Pipe>> pool;
	size_t open = 0;

	std::unique_ptr<Pipe> Get(const RelayConfig &c)
	{
		if (!pool.empty()) {
			auto p = std::move(pool.back());
			pool.pop_back();
			return p;
		}
		if (open >= c.pipes_max)
			return nullptr;
		int fds[2];
		if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
			return nullptr;
		auto p = std::make_unique<Pipe>(fds[0], fds[1]);
		// The default (64 KiB) stays when the size is refused (pipe-max-size).
		fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(c.pipe_bytes));
		open++;
		return p;
	}

	// A pipe that still holds bytes is closed: they belong to a dead stream
	// and would be spliced into the next one.
	void Put(std::unique_ptr<Pipe> p, bool empty, const RelayConfig &c)
	{
		if (!p)
			return;
		if (empty && pool.size() < c.pipes_pooled) {
			pool.push_back(std::move(p));
			return;
		}
		p.reset();
		open--;
	}
};

RelayShared::RelayShared(const RelayConfig &config) : config_(config), impl_(std::make_unique<Impl>())
{
	config_.buffer_bytes = std::max<size_t>(config_.buffer_bytes, 1);
	config_.pipe_bytes = std::max<size_t>(config_.pipe_bytes, 4096);
	impl_->buf = std::make_unique<uint8_t[]>(config_.buffer_bytes);
}

RelayShared::~RelayShared() = default;

size_t RelayShared::PipesOpen() const
{
	return impl_->open;
}

struct Relay::Impl {
	struct Side final : Handler {
		Side(Impl *owner, int raw, bool is_client) : impl(owner), fd(raw), client(is_client) {}
		void OnEvents(uint32_t events) override { impl->OnEvents(*this, events); }
		Impl *impl;
		Fd fd;
		bool client;
		// Readiness as last learnt: set by epoll's events, cleared at
		// EAGAIN. A fresh socket is writable; bytes already queued raise an
		// event when the fd is added, so readable starts false.
		bool readable = false;
		bool writable = true;
		// epoll said the peer's FIN (or an error) is queued: read on to
		// the end, since no new edge will come for it.
		bool hup = false;
	};

	struct Dir {
		Side *src;
		Side *dst;
		// Bytes read but not yet written, owned only while there are some:
		// an idle relay holds no buffer.
		std::unique_ptr<uint8_t[]> buf;
		size_t off = 0;
		size_t len = 0;
		// Held while spliced bytes flow; back to the pool once the source is
		// drained and the pipe empty.
		std::unique_ptr<Pipe> pipe;
		size_t piped = 0;
		uint64_t read = 0;	// from src, for the splice threshold
		uint64_t written = 0;	// to dst: the byte count
		uint64_t spliced = 0;	// of written, out of a pipe
		bool eof = false;	// src sent its FIN
		bool shut = false;	// ... and dst was shut down after the last byte
		bool splice = false;	// past the threshold: src -> pipe -> dst

		size_t Pending() const { return (len - off) + piped; }
	};

	Impl(Relay *relay, Poller &p, RelayShared &s, int client_fd, int upstream_fd, RelaySink *k)
	    : self(relay), poller(p), shared(s), sink(k), client(this, client_fd, true), upstream(this, upstream_fd, false)
	{
		in.src = &client;
		in.dst = &upstream;
		out.src = &upstream;
		out.dst = &client;
		last_ms = poller.NowMs();
	}

	~Impl()
	{
		if (!closed) {
			poller.Remove(client.fd.get());
			poller.Remove(upstream.fd.get());
		}
		DropPipe(in);
		DropPipe(out);
	}

	static void Keep(Dir &d, const uint8_t *bytes, size_t n)
	{
		if (n == 0)
			return;
		d.buf = std::make_unique<uint8_t[]>(n);
		memcpy(d.buf.get(), bytes, n);
		d.off = 0;
		d.len = n;
	}

	void OnEvents(Side &s, uint32_t events)
	{
		if (closed)
			return; // an event fetched in the batch that closed us
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			s.readable = true;
		if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			s.hup = true;
		if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			s.writable = true;
		// A socket error surfaces from recv()/send() after the bytes that
		// came before it, so those are relayed first, as a reset would find
		// them. Only a side no syscall will touch again (its input ended,
		// nothing to write to it) is asked directly.
		Run();
		if ((events & EPOLLERR) && !closed) {
			Dir &from = s.client ? in : out;
			Dir &to = s.client ? out : in;
			if (from.eof && to.Pending() == 0)
				CheckError(s);
		}
		Report(); // last: the sink may free the relay
	}

	void CheckError(Side &s)
	{
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(s.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
			Fail(s, err);
	}

	void Run()
	{
		if (!Pump(in) || !Pump(out))
			return;
		if (in.shut && out.shut)
			Teardown(RelayReason::kDone, false, false);
	}

	// Moves one direction as far as it goes; false once the relay closed.
	bool Pump(Dir &d)
	{
		int budget = kReadsPerEvent;
		for (;;) {
			if (!Flush(d))
				return false;
			if (d.Pending() > 0)
				return true; // dst is full: EPOLLOUT on it resumes us
			if (d.eof) {
				if (!d.shut) {
					d.shut = true;
					ReleasePipe(d);
					// The other way done too: Run() closes both now,
					// and close() sends this FIN (dst's input is at
					// EOF, nothing unread, so no reset). Otherwise
					// shutdown, which fails only when dst is already
					// dead; its own events report that.
					Dir &other = &d == &in ? out : in;
					if (!other.shut)
						shutdown(d.dst->fd.get(), SHUT_WR);
				}
				return true;
			}
			if (!d.src->readable) {
				ReleasePipe(d);
				return true;
			}
			if (budget == 0) {
				// A new edge for the next batch if bytes are still there.
				poller.Modify(d.src->fd.get(), kEvents, d.src);
				return true;
			}
			budget--;
			if (d.splice && (d.pipe || (d.pipe = shared.impl_->Get(shared.config_)))) {
				if (!SpliceIn(d))
					return false;
			} else if (!ReadIn(d)) {
				return false;
			}
		}
	}

	// Writes the pending bytes of d (the buffer, then the pipe) to its
	// destination; false once the relay closed.
	bool Flush(Dir &d)
	{
		while (d.off < d.len) {
			if (!d.dst->writable)
				return true;
			ssize_t n = send(d.dst->fd.get(), d.buf.get() + d.off, d.len - d.off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					d.dst->writable = false;
					return true;
				}
				Fail(*d.dst, errno);
				return false;
			}
			d.off += static_cast<size_t>(n);
			Moved(d, static_cast<size_t>(n));
		}
		if (d.buf) {
			d.buf.reset();
			d.off = d.len = 0;
		}
		while (d.piped > 0) {
			if (!d.dst->writable)
				return true;
			ssize_t n = splice(d.pipe->r.get(), nullptr, d.dst->fd.get(), nullptr, d.piped,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN) {
					d.dst->writable = false;
					return true;
				}
				Fail(*d.dst, errno);
				return false;
			}
			d.piped -= static_cast<size_t>(n);
			d.spliced += static_cast<size_t>(n);
			Moved(d, static_cast<size_t>(n));
		}
		return true;
	}

	// One read into the shared buffer, written on at once; only what dst
	// did not take is copied into d's own buffer. false once closed.
	bool ReadIn(Dir &d)
	{
		const size_t cap = shared.config_.buffer_bytes;
		uint8_t *buf = shared.impl_->buf.get();
		ssize_t n = recv(d.src->fd.get(), buf, cap, 0);
		if (n < 0) {
			if (errno == EINTR)
				return true;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				d.src->readable = false;
				return true;
			}
			Fail(*d.src, errno);
			return false;
		}
		if (n == 0) {
			d.eof = true;
			return true;
		}
		const size_t got = static_cast<size_t>(n);
		// A short read emptied the socket's queue (HAProxy's rule): bytes
		// that come later raise a new edge, so the recv() that would only
		// say EAGAIN is saved (one per read: a third of a keep-alive
		// request's system calls). Not with a FIN queued: it raises none.
		if (got < cap && !d.src->hup)
			d.src->readable = false;
		d.read += got;
		last_ms = poller.NowMs();
		size_t sent = 0;
		while (sent < got && d.dst->writable) {
			ssize_t w = send(d.dst->fd.get(), buf + sent, got - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					d.dst->writable = false;
					break;
				}
				Fail(*d.dst, errno);
				return false;
			}
			sent += static_cast<size_t>(w);
			Moved(d, static_cast<size_t>(w));
		}
		Keep(d, buf + sent, got - sent);
		// HAProxy's rule: a flow that filled a whole read past the
		// threshold moves bulk; its next reads go through a pipe.
		const size_t after = shared.config_.splice_after_bytes;
		if (after > 0 && got == cap && d.read >= after)
			d.splice = true;
		return true;
	}

	// src -> pipe, only into an empty pipe (Pump flushes first), so EAGAIN
	// means an empty socket. false once closed.
	bool SpliceIn(Dir &d)
	{
		ssize_t n = splice(d.src->fd.get(), nullptr, d.pipe->w.get(), nullptr, shared.config_.pipe_bytes,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			if (errno == EINTR)
				return true;
			if (errno == EAGAIN) {
				d.src->readable = false;
				return true;
			}
			Fail(*d.src, errno);
			return false;
		}
		if (n == 0) { // end of input
			d.eof = true;
			return true;
		}
		d.piped += static_cast<size_t>(n);
		d.read += static_cast<size_t>(n);
		last_ms = poller.NowMs();
		return true;
	}

	void Moved(Dir &d, size_t n)
	{
		d.written += n;
		last_ms = poller.NowMs();
	}

	void ReleasePipe(Dir &d)
	{
		if (d.pipe && d.piped == 0)
			shared.impl_->Put(std::move(d.pipe), true, shared.config_);
	}

	void DropPipe(Dir &d)
	{
		if (d.pipe)
			shared.impl_->Put(std::move(d.pipe), d.piped == 0, shared.config_);
		d.piped = 0;
	}

	// An error on side s: s is closed, the other side reset.
	void Fail(Side &s, int err)
	{
		RelayReason r;
		if (IsReset(err))
			r = s.client ? RelayReason::kClientReset : RelayReason::kUpstreamReset;
		else
			r = s.client ? RelayReason::kClientError : RelayReason::kUpstreamError;
		Teardown(r, !s.client, s.client);
	}

	// Closes both fds (reset_* chooses RST), which takes them out of the
	// epoll set (no fd of ours is ever duplicated), and frees the buffers.
	// An event already fetched for them finds `closed`. The sink is told
	// later, by Report().
	void Teardown(RelayReason r, bool reset_client, bool reset_upstream)
	{
		if (closed)
			return;
		closed = true;
		reason = r;
		if (reset_client)
			ResetNow(client.fd);
		else
			CloseNow(client.fd);
		if (reset_upstream)
			ResetNow(upstream.fd);
		else
			CloseNow(upstream.fd);
		for (Dir *d : {&in, &out}) {
			DropPipe(*d);
			d->buf.reset();
			d->off = d->len = 0;
		}
	}

	// Tells the sink once. Callers make it their last statement: the sink
	// may free the relay.
	void Report()
	{
		if (!closed || told)
			return;
		told = true;
		sink->OnRelayClosed(self, reason, in.written, out.written);
	}

	Relay *self;
	Poller &poller;
	RelayShared &shared;
	RelaySink *sink;
	Side client;
	Side upstream;
	Dir in;
	Dir out;
	uint64_t last_ms = 0;
	bool started = false;
	bool closed = false;
	bool told = false;
	RelayReason reason = RelayReason::kDone;
};

Relay::Relay(Poller &poller, RelayShared &shared, Fd client, Fd upstream, const uint8_t *pending_up, size_t pending_up_len,
	     const uint8_t *pending_down, size_t pending_down_len, bool client_eof, bool upstream_eof, RelaySink *sink)
    : impl_(std::make_unique<Impl>(this, poller, shared, client.release(), upstream.release(), sink))
{
	Impl::Keep(impl_->in, pending_up, pending_up_len);
	Impl::Keep(impl_->out, pending_down, pending_down_len);
	impl_->in.read = pending_up_len;
	impl_->out.read = pending_down_len;
	impl_->in.eof = client_eof;
	impl_->out.eof = upstream_eof;
}

Relay::~Relay() = default;

int Relay::Start()
{
	Impl &m = *impl_;
	if (m.closed || m.started)
		return 0;
	m.started = true;
	int err = m.poller.Add(m.client.fd.get(), kEvents, &m.client);
	if (err == 0)
		err = m.poller.Add(m.upstream.fd.get(), kEvents, &m.upstream);
	if (err != 0) {
		m.Teardown(RelayReason::kAborted, true, true);
		m.Report();
		return err;
	}
	m.Run();
	m.Report();
	return 0;
}

void Relay::Close(RelayReason reason)
{
	Impl &m = *impl_;
	if (m.closed)
		return;
	// A plain close still sends what the kernel holds, then FIN.
	bool reset = reason != RelayReason::kIdle && reason != RelayReason::kDone;
	m.Teardown(reason, reset, reset);
	m.Report();
}

bool Relay::closed() const
{
	return impl_->closed;
}

uint64_t Relay::LastActivityMs() const
{
	return impl_->last_ms;
}

uint64_t Relay::BytesIn() const
{
	return impl_->in.written;
}

uint64_t Relay::BytesOut() const
{
	return impl_->out.written;
}

uint64_t Relay::SplicedBytes() const
{
	return impl_->in.spliced + impl_->out.spliced;
}

size_t Relay::BufferedBytes() const
{
	return impl_->in.Pending() + impl_->out.Pending();
}

} // namespace jfe::plane

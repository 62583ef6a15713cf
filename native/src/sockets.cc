// SPDX-License-Identifier: MIT
// Sockets handed to TypeScript as fds: listening sockets (optionally created
// inside another netns), plain TCP sockets in a netns, and transparent
// upstream sockets bound to the client's address.
#include "sockets.h"

#include <arpa/inet.h>
#include <cerrno>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "args.h"
#include "errors.h"
#include "fd.h"
#include "tcp.h"

namespace jfe {

namespace {

struct Addr {
	sockaddr_storage ss;
	socklen_t len;
};

Addr ParseAddr(Napi::Env env, int family, const std::string &ip, uint16_t port)
{
	Addr a = {};
	if (family == AF_INET) {
		auto *in = reinterpret_cast<sockaddr_in *>(&a.ss);
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		if (inet_pton(AF_INET, ip.c_str(), &in->sin_addr) != 1)
			throw Napi::TypeError::New(env, "not an IPv4 address: " + ip);
		a.len = sizeof(*in);
	} else if (family == AF_INET6) {
		auto *in6 = reinterpret_cast<sockaddr_in6 *>(&a.ss);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr) != 1)
			throw Napi::TypeError::New(env, "not an IPv6 address: " + ip);
		a.len = sizeof(*in6);
	} else {
		throw Napi::TypeError::New(env, "family must be 4 or 6");
	}
	return a;
}

int Family(Napi::Env env, int v)
{
	if (v == 4)
		return AF_INET;
	if (v == 6)
		return AF_INET6;
	throw Napi::TypeError::New(env, "family must be 4 or 6");
}

// A socket belongs to the netns it was created in; only socket() needs to
// run inside the target netns. The calling thread goes back at once.
int SocketIn(Napi::Env env, int family, int netnsFd)
{
	int flags = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
	if (netnsFd < 0) {
		int fd = socket(family, flags, 0);
		if (fd < 0)
			ThrowErrno(env, errno, "socket");
		return fd;
	}
	Fd self(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
	if (self.get() < 0)
		ThrowErrno(env, errno, "open", "/proc/thread-self/ns/net");
	if (setns(netnsFd, CLONE_NEWNET) < 0)
		ThrowErrno(env, errno, "setns", "enter network namespace");
	int fd = socket(family, flags, 0);
	int err = errno;
	if (setns(self.get(), CLONE_NEWNET) < 0)
		Napi::Error::Fatal("jfe native", "cannot return to the original network namespace");
	if (fd < 0)
		ThrowErrno(env, err, "socket");
	return fd;
}

void SetInt(Napi::Env env, int fd, int level, int opt, int value, const char *name)
{
	if (setsockopt(fd, level, opt, &value, sizeof(value)) < 0)
		ThrowErrno(env, errno, "setsockopt", name);
}

} // namespace

// (family 4|6, addr, port, backlog, netnsFd | -1) -> fd of a listening,
// non-blocking socket. IPv6 sockets are v6-only: each family has its own.
Napi::Value ListenSocket(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int family = Family(env, ArgInt(info, 0, "family"));
	Addr a = ParseAddr(env, family, ArgString(info, 1, "addr"), ArgUint(info, 2, "port"));
	int backlog = ArgInt(info, 3, "backlog");
	int netns = info.Length() > 4 ? ArgInt(info, 4, "netnsFd") : -1;

	Fd fd(SocketIn(env, family, netns));
	SetInt(env, fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	if (family == AF_INET6)
		SetInt(env, fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
	if (bind(fd.get(), reinterpret_cast<sockaddr *>(&a.ss), a.len) < 0)
		ThrowErrno(env, errno, "bind");
	if (listen(fd.get(), backlog) < 0)
		ThrowErrno(env, errno, "listen");
	return Napi::Number::New(env, fd.release());
}

// (family 4|6, netnsFd | -1) -> fd of a fresh non-blocking TCP socket that
// belongs to that netns; Node connects it (new net.Socket({ fd })).
Napi::Value TcpSocket(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int family = Family(env, ArgInt(info, 0, "family"));
	int netns = info.Length() > 1 ? ArgInt(info, 1, "netnsFd") : -1;
	return Napi::Number::New(env, SocketIn(env, family, netns));
}

// (family 4|6, sourceAddr, mark, transparent, portLo?, portHi?) -> { fd, port }:
// bound, not yet connected, so the caller can register the source port
// before the SYN leaves. transparent allows a source address that is not
// local. Without portLo/portHi the kernel picks an ephemeral port.
Napi::Value UpstreamSocket(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int family = Family(env, ArgInt(info, 0, "family"));
	Addr a = ParseAddr(env, family, ArgString(info, 1, "sourceAddr"), 0);
	uint32_t mark = ArgUint(info, 2, "mark");
	bool transparent = info.Length() > 3 && info[3].ToBoolean().Value();
	PortRange ports;
	if (info.Length() > 5) {
		uint32_t lo = ArgUint(info, 4, "portLo"), hi = ArgUint(info, 5, "portHi");
		if (lo < 1 || lo > hi || hi > 65535)
			throw Napi::RangeError::New(env, "portLo..portHi must be a port range");
		ports = {static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
	}

	SockAddr source = {a.ss, a.len};
	uint16_t port = 0;
	int fd = OpenUpstream(family, source, mark, transparent, ports, &port);
	if (fd < 0)
		ThrowErrno(env, -fd, "upstream socket", "bind to the upstream source");
	Napi::Object out = Napi::Object::New(env);
	out.Set("port", port);
	out.Set("fd", fd);
	return out;
}

// (fd) -> true when an exclusive lock was taken, false when another process
// holds it. Never blocks.
Napi::Value Flock(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (flock(ArgInt(info, 0, "fd"), LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return Napi::Boolean::New(env, false);
		ThrowErrno(env, errno, "flock");
	}
	return Napi::Boolean::New(env, true);
}

} // namespace jfe

// SPDX-License-Identifier: MIT
// sock_diag over NETLINK_SOCK_DIAG: dump listening TCP sockets (the listeners
// map is kept from it), and look up one TCP 4-tuple (the agent checks that
// an upstream source port does not collide with a live client connection).
#include "diag.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "args.h"
#include "errors.h"
#include "tcp.h"

namespace jfe {

namespace {

constexpr int kTcpListen = 10;

struct DiagRequest {
	nlmsghdr nlh;
	inet_diag_req_v2 req;
};

void Send(Napi::Env env, int fd, DiagRequest &r)
{
	sockaddr_nl nl = {};
	nl.nl_family = AF_NETLINK;
	if (sendto(fd, &r, sizeof(r), 0, reinterpret_cast<sockaddr *>(&nl), sizeof(nl)) < 0)
		ThrowErrno(env, errno, "sendto", "sock_diag");
}

int FamilyArg(Napi::Env env, int v)
{
	if (v == 4)
		return AF_INET;
	if (v == 6)
		return AF_INET6;
	throw Napi::TypeError::New(env, "family must be 4 or 6");
}

void PutAddr(Napi::Env env, int family, const std::string &text, __be32 out[4])
{
	if (inet_pton(family, text.c_str(), out) != 1)
		throw Napi::TypeError::New(env, "not an address of that family: " + text);
}

} // namespace

// () -> fd of a NETLINK_SOCK_DIAG socket in the caller's netns.
Napi::Value DiagOpen(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		ThrowErrno(env, errno, "socket", "NETLINK_SOCK_DIAG");
	return Napi::Number::New(env, fd);
}

// (fd, family 4|6) -> [{ addr, port, v6only }] for every listening TCP socket.
Napi::Value DiagListeners(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = ArgInt(info, 0, "fd");
	int family = FamilyArg(env, ArgInt(info, 1, "family"));

	DiagRequest r = {};
	r.nlh.nlmsg_len = sizeof(r);
	r.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	r.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	r.req.sdiag_family = family;
	r.req.sdiag_protocol = IPPROTO_TCP;
	r.req.idiag_states = 1u << kTcpListen;
	Send(env, fd, r);

	Napi::Array out = Napi::Array::New(env);
	uint32_t n = 0;
	alignas(nlmsghdr) char buf[32768];
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			ThrowErrno(env, errno, "recv", "sock_diag");
		}
		for (auto *h = reinterpret_cast<nlmsghdr *>(buf); NLMSG_OK(h, static_cast<uint32_t>(len));
		     h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return out;
			if (h->nlmsg_type == NLMSG_ERROR) {
				auto *e = static_cast<nlmsgerr *>(NLMSG_DATA(h));
				ThrowErrno(env, -e->error, "sock_diag", "dump listeners");
			}
			auto *m = static_cast<inet_diag_msg *>(NLMSG_DATA(h));
			char addr[INET6_ADDRSTRLEN] = {};
			inet_ntop(m->idiag_family, m->id.idiag_src, addr, sizeof(addr));
			bool v6only = false;
			int alen = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (auto *a = reinterpret_cast<rtattr *>(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				if (a->rta_type == INET_DIAG_SKV6ONLY)
					v6only = *static_cast<uint8_t *>(RTA_DATA(a)) != 0;
			}
			Napi::Object o = Napi::Object::New(env);
			o.Set("addr", addr);
			o.Set("port", ntohs(m->id.idiag_sport));
			o.Set("v6only", v6only);
			out.Set(n++, o);
		}
	}
}

// (fd, family, localAddr, localPort, remoteAddr, remotePort) -> whether a
// live TCP connection (not listening, not TIME_WAIT) with exactly this
// 4-tuple exists in the netns.
Napi::Value DiagExists(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = ArgInt(info, 0, "fd");
	int family = FamilyArg(env, ArgInt(info, 1, "family"));
	__be32 local[4] = {}, remote[4] = {};
	PutAddr(env, family, ArgString(info, 2, "localAddr"), local);
	uint16_t localPort = ArgUint(info, 3, "localPort");
	PutAddr(env, family, ArgString(info, 4, "remoteAddr"), remote);
	uint16_t remotePort = ArgUint(info, 5, "remotePort");
	int r = DiagConnExists(fd, family, reinterpret_cast<uint8_t *>(local), localPort, reinterpret_cast<uint8_t *>(remote),
			       remotePort);
	if (r < 0)
		ThrowErrno(env, -r, "sock_diag", "look up connection");
	return Napi::Boolean::New(env, r == 1);
}

} // namespace jfe

// SPDX-License-Identifier: MIT
#include "relay_testing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <string>

#include "../args.h"
#include "../errors.h"
#include "../fd.h"
#include "relay.h"

namespace jfe::plane {

namespace {

const char *const kReasons[] = {"done", "idle", "client-reset", "upstream-reset", "client-error", "upstream-error", "aborted"};

// One relay with its own poller and pipe pool. Freed from a timer after
// the relay closed: the poller cannot be destroyed inside its own dispatch.
struct Rig final : RelaySink {
	Napi::Env env;
	Napi::FunctionReference on_closed;
	std::unique_ptr<Poller> poller;
	std::unique_ptr<RelayShared> shared;
	std::unique_ptr<Relay> relay;
	uv_timer_t *timer = nullptr;
	// What the getters answer once the relay is gone.
	uint64_t in = 0, out = 0, spliced = 0;
	size_t pipes = 0;
	uint64_t last_ms = 0;
	int told = 0;

	explicit Rig(Napi::Env e) : env(e) {}
	~Rig()
	{
		if (timer != nullptr) { // gone before its timer fired
			timer->data = nullptr;
			uv_close(reinterpret_cast<uv_handle_t *>(timer), [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
		}
		Free();
	}

	void Snapshot()
	{
		if (!relay)
			return;
		in = relay->BytesIn();
		out = relay->BytesOut();
		spliced = relay->SplicedBytes();
		last_ms = relay->LastActivityMs();
		pipes = shared->PipesOpen();
	}

	void Free()
	{
		Snapshot(); // pipesOpen() keeps answering the count when it closed
		relay.reset();
		poller.reset(); // frees what it still holds retired, before the pool goes
		shared.reset();
	}

	void OnRelayClosed(Relay *closed, RelayReason reason, uint64_t bytes_in, uint64_t bytes_out) override
	{
		told++;
		Snapshot();
		// As the core does: retired from inside the call, freed at the end
		// of the batch, or at once when no batch runs (Close() from JS).
		if (relay.get() == closed)
			poller->Retire(std::unique_ptr<Retirable>(relay.release()));
		if (timer == nullptr) {
			timer = new uv_timer_t;
			uv_timer_init(poller->loop(), timer);
			timer->data = this;
			uv_timer_start(
			    timer,
			    [](uv_timer_t *t) {
				    auto *rig = static_cast<Rig *>(t->data);
				    if (rig != nullptr) {
					    rig->Free();
					    rig->timer = nullptr;
				    }
				    uv_close(reinterpret_cast<uv_handle_t *>(t), [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
			    },
			    0, 0);
		}
		Napi::HandleScope scope(env);
		auto fn = on_closed.Value();
		if (fn.IsEmpty())
			return;
		napi_value args[] = {Napi::String::New(env, kReasons[static_cast<int>(reason)]),
				     Napi::Number::New(env, static_cast<double>(bytes_in)),
				     Napi::Number::New(env, static_cast<double>(bytes_out))};
		napi_value result;
		if (napi_make_callback(env, nullptr, env.Global(), fn, 3, args, &result) != napi_ok) {
			napi_value err;
			if (napi_get_and_clear_last_exception(env, &err) == napi_ok)
				napi_fatal_exception(env, err);
		}
	}
};

size_t OptSize(Napi::Object o, const char *key, size_t dflt)
{
	Napi::Value v = o.Get(key);
	if (v.IsUndefined())
		return dflt;
	if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0)
		throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number >= 0");
	return static_cast<size_t>(v.As<Napi::Number>().DoubleValue());
}

} // namespace

// (clientFd, upstreamFd, options, onClosed(reason, bytesIn, bytesOut)) ->
// { close, bytesIn, bytesOut, splicedBytes, bufferedBytes, pipesOpen,
// lastActivityMs, closed, toldCount }. Takes both fds.
Napi::Value RelayForTests(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int client_fd = ArgInt(info, 0, "clientFd");
	int upstream_fd = ArgInt(info, 1, "upstreamFd");
	if (info.Length() < 4 || !info[2].IsObject() || !info[3].IsFunction())
		throw Napi::TypeError::New(env, "relayForTests(clientFd, upstreamFd, options, onClosed)");
	Napi::Object o = info[2].As<Napi::Object>();
	RelayConfig c;
	c.buffer_bytes = OptSize(o, "bufferBytes", c.buffer_bytes);
	c.splice_after_bytes = OptSize(o, "spliceAfterBytes", c.splice_after_bytes);
	c.pipe_bytes = OptSize(o, "pipeBytes", c.pipe_bytes);
	c.pipes_max = OptSize(o, "pipesMax", c.pipes_max);
	c.pipes_pooled = OptSize(o, "pipesPooled", c.pipes_pooled);
	Napi::Value up = o.Get("pendingUp");
	Napi::Value down = o.Get("pendingDown");
	if ((!up.IsUndefined() && !up.IsBuffer()) || (!down.IsUndefined() && !down.IsBuffer()))
		throw Napi::TypeError::New(env, "pendingUp and pendingDown must be Buffers");
	auto upb = up.IsBuffer() ? up.As<Napi::Buffer<uint8_t>>() : Napi::Buffer<uint8_t>();
	auto downb = down.IsBuffer() ? down.As<Napi::Buffer<uint8_t>>() : Napi::Buffer<uint8_t>();
	bool client_eof = o.Get("clientEof").ToBoolean().Value();
	bool upstream_eof = o.Get("upstreamEof").ToBoolean().Value();

	Fd client(client_fd);
	Fd upstream(upstream_fd);
	uv_loop_t *loop = nullptr;
	if (napi_get_uv_event_loop(env, &loop) != napi_ok)
		throw Napi::Error::New(env, "no event loop");
	auto rig = std::make_shared<Rig>(env);
	rig->on_closed = Napi::Persistent(info[3].As<Napi::Function>());
	rig->poller = std::make_unique<Poller>(loop, nullptr, nullptr);
	rig->shared = std::make_unique<RelayShared>(c);
	// Fd cannot move, so make_unique cannot forward it: built in place.
	rig->relay.reset(new Relay(*rig->poller, *rig->shared, Fd(client.release()), Fd(upstream.release()),
				   upb.IsEmpty() ? nullptr : upb.Data(), upb.IsEmpty() ? 0 : upb.Length(),
				   downb.IsEmpty() ? nullptr : downb.Data(), downb.IsEmpty() ? 0 : downb.Length(), client_eof,
				   upstream_eof, rig.get()));

	Napi::Object h = Napi::Object::New(env);
	h.Set("close", Napi::Function::New(env, [rig](const Napi::CallbackInfo &ci) {
		      std::string r = ArgString(ci, 0, "reason");
		      if (r != "idle" && r != "aborted")
			      throw Napi::TypeError::New(ci.Env(), "reason must be idle or aborted");
		      if (rig->relay)
			      rig->relay->Close(r == "idle" ? RelayReason::kIdle : RelayReason::kAborted);
	      }));
	auto num = [&](const char *name, double (*get)(Rig &)) {
		h.Set(name, Napi::Function::New(env, [rig, get](const Napi::CallbackInfo &ci) {
			      return Napi::Number::New(ci.Env(), get(*rig));
		      }));
	};
	num("bytesIn", [](Rig &r) { return static_cast<double>(r.relay ? r.relay->BytesIn() : r.in); });
	num("bytesOut", [](Rig &r) { return static_cast<double>(r.relay ? r.relay->BytesOut() : r.out); });
	num("splicedBytes", [](Rig &r) { return static_cast<double>(r.relay ? r.relay->SplicedBytes() : r.spliced); });
	num("bufferedBytes", [](Rig &r) { return static_cast<double>(r.relay ? r.relay->BufferedBytes() : 0); });
	num("pipesOpen", [](Rig &r) { return static_cast<double>(r.shared ? r.shared->PipesOpen() : r.pipes); });
	num("lastActivityMs", [](Rig &r) { return static_cast<double>(r.relay ? r.relay->LastActivityMs() : r.last_ms); });
	num("nowMs", [](Rig &r) { return static_cast<double>(r.poller ? r.poller->NowMs() : 0); });
	num("toldCount", [](Rig &r) { return static_cast<double>(r.told); });
	h.Set("closed", Napi::Function::New(env, [rig](const Napi::CallbackInfo &ci) {
		      return Napi::Boolean::New(ci.Env(), !rig->relay || rig->relay->closed());
	      }));

	// As the core does before a relay starts.
	int one = 1;
	setsockopt(client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(upstream_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int err = rig->relay->Start();
	if (err != 0)
		ThrowErrno(env, err, "epoll_ctl", "relay start");
	return h;
}

// () -> [a, b]: the two ends of a TCP connection over 127.0.0.1, both
// non-blocking and close-on-exec.
Napi::Value TcpPairForTests(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	Fd lst(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (lst.get() < 0)
		ThrowErrno(env, errno, "socket");
	sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (bind(lst.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)) < 0 || listen(lst.get(), 1) < 0 ||
	    getsockname(lst.get(), reinterpret_cast<sockaddr *>(&a), &len) < 0)
		ThrowErrno(env, errno, "bind/listen");
	Fd c(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (c.get() < 0)
		ThrowErrno(env, errno, "socket");
	if (connect(c.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)) < 0)
		ThrowErrno(env, errno, "connect");
	Fd s(accept4(lst.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
	if (s.get() < 0)
		ThrowErrno(env, errno, "accept4");
	if (fcntl(c.get(), F_SETFL, fcntl(c.get(), F_GETFL) | O_NONBLOCK) < 0)
		ThrowErrno(env, errno, "fcntl");
	Napi::Array out = Napi::Array::New(env, 2);
	out.Set(0u, Napi::Number::New(env, c.release()));
	out.Set(1u, Napi::Number::New(env, s.release()));
	return out;
}

} // namespace jfe::plane

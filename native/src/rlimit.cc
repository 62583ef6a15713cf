// SPDX-License-Identifier: MIT
// RLIMIT_NOFILE: every connection holds two fds (client and upstream), so a
// soft limit left at a login shell's 1024 caps an agent at ~500 connections
// while the hard limit allows far more. Node happens to raise it at start
// (PlatformInit), but that is not a documented promise: the agent raises it
// itself and reports the result. Whether to raise is TypeScript's decision.
#include "rlimit.h"

#include <sys/resource.h>

#include <cerrno>
#include <cmath>

#include "errors.h"

namespace jfe {

namespace {

double Value(rlim_t v)
{
	// The kernel caps RLIMIT_NOFILE at fs.nr_open, but a caller may still see infinity.
	return v == RLIM_INFINITY ? INFINITY : static_cast<double>(v);
}

Napi::Value Limits(Napi::Env env, const struct rlimit &l)
{
	Napi::Object out = Napi::Object::New(env);
	out.Set("soft", Napi::Number::New(env, Value(l.rlim_cur)));
	out.Set("hard", Napi::Number::New(env, Value(l.rlim_max)));
	return out;
}

} // namespace

Napi::Value NofileLimit(const Napi::CallbackInfo &info)
{
	struct rlimit l {};
	if (getrlimit(RLIMIT_NOFILE, &l) != 0)
		ThrowErrno(info.Env(), errno, "getrlimit");
	return Limits(info.Env(), l);
}

Napi::Value RaiseNofileLimit(const Napi::CallbackInfo &info)
{
	struct rlimit l {};
	if (getrlimit(RLIMIT_NOFILE, &l) != 0)
		ThrowErrno(info.Env(), errno, "getrlimit");
	if (l.rlim_cur != l.rlim_max) {
		l.rlim_cur = l.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &l) != 0)
			ThrowErrno(info.Env(), errno, "setrlimit", "raising the soft RLIMIT_NOFILE to the hard limit");
	}
	return Limits(info.Env(), l);
}

} // namespace jfe

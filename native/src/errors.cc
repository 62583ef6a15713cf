// SPDX-License-Identifier: MIT
// Native errors as data, and the libbpf print capture.
#include "errors.h"

#include <bpf/libbpf.h>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace jfe {

namespace {

// Last part of libbpf's output since StartCapture(); bounded so a huge
// verifier log cannot grow without limit.
constexpr size_t kMaxLog = 16 * 1024;
std::string captured;

int CapturePrint(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	char buf[1024];
	int n = vsnprintf(buf, sizeof(buf), fmt, args);
	if (n > 0)
		captured.append(buf, std::min(static_cast<size_t>(n), sizeof(buf) - 1));
	if (captured.size() > kMaxLog)
		captured.erase(0, captured.size() - kMaxLog);
	return n;
}

} // namespace

void InstallLibbpfPrint()
{
	libbpf_set_print(CapturePrint);
}

void StartCapture()
{
	captured.clear();
}

void ThrowErrno(Napi::Env env, int err, const char *syscall, const std::string &detail)
{
	if (err < 0)
		err = -err;
	const char *name = strerrorname_np(err);
	std::string msg = std::string(syscall) + ": " + (detail.empty() ? "" : detail + ": ") +
			  strerror(err);
	Napi::Error e = Napi::Error::New(env, msg);
	Napi::Object o = e.Value();
	o.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
	o.Set("errno", Napi::Number::New(env, err));
	o.Set("syscall", Napi::String::New(env, syscall));
	if (!captured.empty()) {
		o.Set("log", Napi::String::New(env, captured));
		captured.clear();
	}
	throw e;
}

} // namespace jfe

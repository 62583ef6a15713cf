// SPDX-License-Identifier: MIT
// Native errors as data: Error{code: errno name, errno, syscall, log}, and the
// capture of libbpf's output so that verifier logs travel with the error.
#pragma once

#include <napi.h>
#include <string>

namespace jfe {

// Throws a JS Error for errno `err` raised by `syscall`; detail is prepended
// to the message when not empty. Attaches the captured libbpf log, if any.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char *syscall,
			     const std::string &detail = "");

// libbpf prints through this capture from module init on; StartCapture()
// clears it before a call whose failure should carry the log.
void InstallLibbpfPrint();
void StartCapture();

} // namespace jfe

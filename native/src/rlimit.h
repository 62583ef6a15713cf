// SPDX-License-Identifier: MIT
// The process's open-files limit (RLIMIT_NOFILE): read it, raise it.
#pragma once

#include <napi.h>

namespace jfe {

// () → { soft, hard }
Napi::Value NofileLimit(const Napi::CallbackInfo &info);
// () → { soft, hard }, after setting the soft limit to the hard one.
Napi::Value RaiseNofileLimit(const Napi::CallbackInfo &info);

} // namespace jfe

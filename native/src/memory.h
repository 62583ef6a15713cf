// SPDX-License-Identifier: MIT
// The process's heap: hand memory freed by the allocator back to the kernel.
#pragma once

#include <napi.h>

namespace jfe {

Napi::Value MallocTrim(const Napi::CallbackInfo &info);

} // namespace jfe

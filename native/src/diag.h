// SPDX-License-Identifier: MIT
// sock_diag queries: the listening TCP sockets of the netns, and whether one
// exact TCP connection exists. One request per call; no state kept.
#pragma once

#include <napi.h>

namespace jfe {

Napi::Value DiagOpen(const Napi::CallbackInfo &info);
Napi::Value DiagListeners(const Napi::CallbackInfo &info);
Napi::Value DiagExists(const Napi::CallbackInfo &info);

} // namespace jfe

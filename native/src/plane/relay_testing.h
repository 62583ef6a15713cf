// SPDX-License-Identifier: MIT
// Test-only exports: a Relay on the calling thread's loop, with a Poller and
// a RelayShared of its own, driven by tests over real loopback connections.
#pragma once

#include <napi.h>

namespace jfe::plane {

Napi::Value RelayForTests(const Napi::CallbackInfo &info);
Napi::Value TcpPairForTests(const Napi::CallbackInfo &info);

} // namespace jfe::plane

// SPDX-License-Identifier: MIT
// Sockets that Node cannot make itself: created in another network namespace,
// or transparent (bound to a non-local address) with a firewall mark.
#pragma once

#include <napi.h>

namespace jfe {

Napi::Value ListenSocket(const Napi::CallbackInfo &info);
Napi::Value TcpSocket(const Napi::CallbackInfo &info);
Napi::Value UpstreamSocket(const Napi::CallbackInfo &info);
Napi::Value Flock(const Napi::CallbackInfo &info);

} // namespace jfe

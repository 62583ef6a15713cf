// SPDX-License-Identifier: MIT
// The connection counts every worker of one jfe shares: a memory block
// (memfd) made by the primary and mapped by each worker, with the connections
// each worker holds and, per client key, how many of them are that client's.
// Counting only: what the counts allow is decided in TypeScript.
#pragma once

#include <napi.h>

namespace jfe {

Napi::Value ConnTableCreate(const Napi::CallbackInfo &info);
Napi::Function ConnTableClass(Napi::Env env);

} // namespace jfe

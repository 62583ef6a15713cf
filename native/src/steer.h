// SPDX-License-Identifier: MIT
// libbpf operations on the sk_lookup program and its maps. Synchronous only.
#pragma once

#include <napi.h>

namespace jfe {

Napi::Value LoadProgram(const Napi::CallbackInfo &info);
Napi::Value AttachNetns(const Napi::CallbackInfo &info);
Napi::Value LinkDetach(const Napi::CallbackInfo &info);
Napi::Value LinkUpdate(const Napi::CallbackInfo &info);
Napi::Value ObjPin(const Napi::CallbackInfo &info);
Napi::Value ObjGet(const Napi::CallbackInfo &info);
Napi::Value LinkInfo(const Napi::CallbackInfo &info);
Napi::Value ProgInfo(const Napi::CallbackInfo &info);
Napi::Value MapInfo(const Napi::CallbackInfo &info);
Napi::Value MapLookup(const Napi::CallbackInfo &info);
Napi::Value MapUpdate(const Napi::CallbackInfo &info);
Napi::Value MapDelete(const Napi::CallbackInfo &info);
Napi::Value MapNextKey(const Napi::CallbackInfo &info);
Napi::Value NumPossibleCpus(const Napi::CallbackInfo &info);
Napi::Object Layout(Napi::Env env);

} // namespace jfe

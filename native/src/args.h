// SPDX-License-Identifier: MIT
// Argument checks shared by the exported functions: a wrong JS type is a
// programming error in src/native.ts, reported as a TypeError.
#pragma once

#include <napi.h>
#include <string>

namespace jfe {

inline int ArgInt(const Napi::CallbackInfo &info, size_t i, const char *what)
{
	if (info.Length() <= i || !info[i].IsNumber())
		throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
	return info[i].As<Napi::Number>().Int32Value();
}

inline uint32_t ArgUint(const Napi::CallbackInfo &info, size_t i, const char *what)
{
	if (info.Length() <= i || !info[i].IsNumber())
		throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
	return info[i].As<Napi::Number>().Uint32Value();
}

inline std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *what)
{
	if (info.Length() <= i || !info[i].IsString())
		throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
	return info[i].As<Napi::String>().Utf8Value();
}

inline Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo &info, size_t i, const char *what)
{
	if (info.Length() <= i || !info[i].IsBuffer())
		throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer");
	return info[i].As<Napi::Buffer<uint8_t>>();
}

} // namespace jfe

// SPDX-License-Identifier: MIT
#include "plane.h"

#include <uv.h>

#include <memory>
#include <system_error>

#include "../errors.h"
#include "core.h"

namespace jfe::plane {

namespace {

class Plane;

// The core, delivering its records to the Plane's JS callback.
class JsCore : public Core {
      public:
	JsCore(Plane *owner, uv_loop_t *loop, const CoreConfig &config, int32_t *records, uint8_t *bytes, double *stats)
	    : Core(loop, config, records, bytes, stats), owner_(owner)
	{
	}
	void Deliver(size_t start, size_t end) override;
	void Safe() { SafePoint(); }

      private:
	Plane *owner_;
};

class Plane : public Napi::ObjectWrap<Plane> {
      public:
	static Napi::Function Class(Napi::Env env)
	{
		return DefineClass(env, "Plane",
				   {
					   InstanceMethod("listen", &Plane::Listen),
					   InstanceMethod("stopListening", &Plane::StopListening),
					   InstanceMethod("setTakeover", &Plane::SetTakeover),
					   InstanceMethod("setIdleTimeout", &Plane::SetIdleTimeout),
					   InstanceMethod("closeLongestIdle", &Plane::CloseLongestIdle),
					   InstanceMethod("closeIdle", &Plane::CloseIdle),
					   InstanceMethod("closeAll", &Plane::CloseAll),
					   InstanceMethod("bytesRelayed", &Plane::BytesRelayed),
					   InstanceMethod("close", &Plane::Close),
					   InstanceAccessor("activeConnections", &Plane::Active, nullptr),
				   });
	}

	// (options { bypassFd, mark, transparent, portLo?, portHi?, idleTimeoutMs, takeover: Uint8Array(8192) }, onRecords)
	explicit Plane(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Plane>(info), env_(info.Env())
	{
		Napi::Env env = info.Env();
		if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction())
			throw Napi::TypeError::New(env, "Plane(options, onRecords)");
		Napi::Object o = info[0].As<Napi::Object>();
		auto num = [&](const char *k) -> double {
			Napi::Value v = o.Get(k);
			if (!v.IsNumber())
				throw Napi::TypeError::New(env, std::string("options.") + k + " must be a number");
			return v.As<Napi::Number>().DoubleValue();
		};
		CoreConfig config;
		config.dial.bypass_fd = static_cast<int>(num("bypassFd"));
		config.dial.mark = static_cast<uint32_t>(num("mark"));
		config.dial.transparent = o.Get("transparent").ToBoolean().Value();
		if (o.Has("portLo")) {
			double lo = num("portLo"), hi = num("portHi");
			if (!(lo >= 1 && lo <= hi && hi <= 65535))
				throw Napi::RangeError::New(env, "options.portLo..portHi must be a port range");
			config.dial.ports = {static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
		}
		config.idle_timeout_ms = static_cast<uint64_t>(num("idleTimeoutMs"));
		Napi::Value takeover = o.Get("takeover");
		if (!takeover.IsTypedArray() || takeover.As<Napi::TypedArray>().ByteLength() != 8192)
			throw Napi::TypeError::New(env, "options.takeover must be a Uint8Array of 8192 bytes");

		auto records = Napi::ArrayBuffer::New(env, rec::kCapacity * rec::kWords * sizeof(int32_t));
		auto bytes = Napi::ArrayBuffer::New(env, rec::kByteArea);
		auto stats = Napi::ArrayBuffer::New(env, rec::kStats * sizeof(double));
		Napi::Object self = info.This().As<Napi::Object>();
		self.Set("records", Napi::Int32Array::New(env, rec::kCapacity * rec::kWords, records, 0));
		self.Set("bytes", Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t *>(bytes.Data()), bytes.ByteLength(),
							     [](Napi::Env, uint8_t *) {}));
		self.Set("stats", Napi::Float64Array::New(env, rec::kStats, stats, 0));
		// The plane writes into these for its whole life.
		buffers_ = Napi::Persistent(Napi::Object::New(env));
		buffers_.Value().Set("records", records);
		buffers_.Value().Set("bytes", bytes);
		buffers_.Value().Set("stats", stats);
		on_records_ = Napi::Persistent(info[1].As<Napi::Function>());

		uv_loop_t *loop = nullptr;
		if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
			throw Napi::Error::New(env, "no event loop");
		try {
			core_ = std::make_unique<JsCore>(this, loop, config, static_cast<int32_t *>(records.Data()),
							 static_cast<uint8_t *>(bytes.Data()), static_cast<double *>(stats.Data()));
		} catch (const std::system_error &e) {
			ThrowErrno(env, e.code().value(), "plane", e.what());
		}
		core_->SetTakeover(static_cast<const uint8_t *>(takeover.As<Napi::Uint8Array>().Data()));
		if (napi_add_async_cleanup_hook(env, OnCleanup, this, &hook_) != napi_ok)
			hook_ = nullptr;
	}

	~Plane() override { Shut(); }

	void Deliver(size_t start, size_t end)
	{
		Napi::HandleScope scope(env_);
		try {
			on_records_.MakeCallback(env_.Global(), {Napi::Number::New(env_, static_cast<double>(start)),
								  Napi::Number::New(env_, static_cast<double>(end))});
		} catch (const Napi::Error &e) {
			// As an exception thrown by any other callback of the loop would be.
			napi_fatal_exception(env_, e.Value());
		}
	}

      private:
	static void OnCleanup(napi_async_cleanup_hook_handle handle, void *arg)
	{
		auto *self = static_cast<Plane *>(arg);
		self->hook_ = nullptr;
		if (!self->core_) {
			napi_remove_async_cleanup_hook(handle);
			return;
		}
		self->core_->Shutdown([](void *h) { napi_remove_async_cleanup_hook(static_cast<napi_async_cleanup_hook_handle>(h)); },
				      handle);
	}

	void Shut()
	{
		if (hook_ != nullptr) {
			napi_remove_async_cleanup_hook(hook_);
			hook_ = nullptr;
		}
		if (core_)
			core_->Shutdown(nullptr, nullptr);
	}

	JsCore &Live(const Napi::CallbackInfo &info)
	{
		if (!core_ || core_->closed())
			throw Napi::Error::New(info.Env(), "the plane is closed");
		return *core_;
	}

	Napi::Value Listen(const Napi::CallbackInfo &info)
	{
		if (info.Length() < 1 || !info[0].IsNumber())
			throw Napi::TypeError::New(info.Env(), "fd must be a number");
		int err = Live(info).Listen(info[0].As<Napi::Number>().Int32Value());
		if (err != 0)
			ThrowErrno(info.Env(), err, "epoll_ctl", "watch a listening socket");
		return info.Env().Undefined();
	}

	Napi::Value StopListening(const Napi::CallbackInfo &info)
	{
		if (core_ && !core_->closed())
			core_->StopListening();
		return info.Env().Undefined();
	}

	Napi::Value SetTakeover(const Napi::CallbackInfo &info)
	{
		if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().ByteLength() != 8192)
			throw Napi::TypeError::New(info.Env(), "takeover must be a Uint8Array of 8192 bytes");
		Live(info).SetTakeover(static_cast<const uint8_t *>(info[0].As<Napi::Uint8Array>().Data()));
		return info.Env().Undefined();
	}

	uint64_t Ms(const Napi::CallbackInfo &info)
	{
		if (info.Length() < 1 || !info[0].IsNumber())
			throw Napi::TypeError::New(info.Env(), "ms must be a number");
		double v = info[0].As<Napi::Number>().DoubleValue();
		return v > 0 ? static_cast<uint64_t>(v) : 0;
	}

	Napi::Value SetIdleTimeout(const Napi::CallbackInfo &info)
	{
		Live(info).SetIdleTimeout(Ms(info));
		return info.Env().Undefined();
	}

	Napi::Value CloseLongestIdle(const Napi::CallbackInfo &info)
	{
		bool closed = Live(info).CloseLongestIdle(Ms(info));
		core_->Safe();
		return Napi::Boolean::New(info.Env(), closed);
	}

	Napi::Value CloseIdle(const Napi::CallbackInfo &info)
	{
		size_t n = Live(info).CloseIdle(Ms(info));
		core_->Safe();
		return Napi::Number::New(info.Env(), static_cast<double>(n));
	}

	Napi::Value CloseAll(const Napi::CallbackInfo &info)
	{
		if (core_ && !core_->closed()) {
			core_->CloseAll();
			core_->Safe();
		}
		return info.Env().Undefined();
	}

	Napi::Value BytesRelayed(const Napi::CallbackInfo &info)
	{
		if (core_ && !core_->closed())
			core_->BytesRelayed();
		return info.Env().Undefined();
	}

	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		Shut();
		return info.Env().Undefined();
	}

	Napi::Value Active(const Napi::CallbackInfo &info)
	{
		double n = core_ && !core_->closed() ? static_cast<double>(core_->ActiveConnections()) : 0;
		return Napi::Number::New(info.Env(), n);
	}

	Napi::Env env_;
	std::unique_ptr<JsCore> core_;
	Napi::ObjectReference buffers_;
	Napi::FunctionReference on_records_;
	napi_async_cleanup_hook_handle hook_ = nullptr;
};

void JsCore::Deliver(size_t start, size_t end)
{
	owner_->Deliver(start, end);
}

} // namespace

Napi::Function PlaneClass(Napi::Env env)
{
	return Plane::Class(env);
}

} // namespace jfe::plane

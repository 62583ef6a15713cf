// SPDX-License-Identifier: MIT
// malloc_trim(3): glibc keeps memory freed by OpenSSL and Node in its arenas
// (fragmented, below the top of the heap), so the resident size of a process
// stays at its peak after a burst. Trimming returns the free pages (madvise
// MADV_DONTNEED). When to call it is TypeScript's decision.
#include "memory.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace jfe {

Napi::Value MallocTrim(const Napi::CallbackInfo &info)
{
#if defined(__GLIBC__)
	// Returns 1 if memory was released to the system.
	return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
#else
	return Napi::Boolean::New(info.Env(), false);
#endif
}

} // namespace jfe

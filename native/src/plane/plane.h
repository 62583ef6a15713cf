// SPDX-License-Identifier: MIT
// The N-API face of the connection core: `new Plane(options, onRecords)`,
// one per worker, on the worker's loop. Records reach TS through memory the
// plane reuses (records: Int32Array, bytes: Buffer, stats: Float64Array) and
// one call of onRecords(start, end) per batch.
#pragma once

#include <napi.h>

namespace jfe::plane {

Napi::Function PlaneClass(Napi::Env env);

} // namespace jfe::plane

// SPDX-License-Identifier: MIT
// Module init and the export table of jfe_native. Nothing else.
#include <napi.h>

#include "conn_table.h"
#include "diag.h"
#include "errors.h"
#include "memory.h"
#include "plane/plane.h"
#include "plane/relay_testing.h"
#include "rlimit.h"
#include "sockets.h"
#include "steer.h"

namespace jfe {

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	InstallLibbpfPrint();
	exports.Set("loadProgram", Napi::Function::New(env, LoadProgram));
	exports.Set("attachNetns", Napi::Function::New(env, AttachNetns));
	exports.Set("linkDetach", Napi::Function::New(env, LinkDetach));
	exports.Set("linkUpdate", Napi::Function::New(env, LinkUpdate));
	exports.Set("objPin", Napi::Function::New(env, ObjPin));
	exports.Set("objGet", Napi::Function::New(env, ObjGet));
	exports.Set("linkInfo", Napi::Function::New(env, LinkInfo));
	exports.Set("progInfo", Napi::Function::New(env, ProgInfo));
	exports.Set("mapInfo", Napi::Function::New(env, MapInfo));
	exports.Set("mapLookup", Napi::Function::New(env, MapLookup));
	exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate));
	exports.Set("mapDelete", Napi::Function::New(env, MapDelete));
	exports.Set("mapNextKey", Napi::Function::New(env, MapNextKey));
	exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus));
	exports.Set("listenSocket", Napi::Function::New(env, ListenSocket));
	exports.Set("tcpSocket", Napi::Function::New(env, TcpSocket));
	exports.Set("upstreamSocket", Napi::Function::New(env, UpstreamSocket));
	exports.Set("flock", Napi::Function::New(env, Flock));
	exports.Set("diagOpen", Napi::Function::New(env, DiagOpen));
	exports.Set("diagListeners", Napi::Function::New(env, DiagListeners));
	exports.Set("diagExists", Napi::Function::New(env, DiagExists));
	exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim));
	exports.Set("nofileLimit", Napi::Function::New(env, NofileLimit));
	exports.Set("raiseNofileLimit", Napi::Function::New(env, RaiseNofileLimit));
	exports.Set("connTableCreate", Napi::Function::New(env, ConnTableCreate));
	exports.Set("ConnTable", ConnTableClass(env));
	exports.Set("Plane", plane::PlaneClass(env));
	exports.Set("layout", Layout(env));
	exports.Set("relayForTests", Napi::Function::New(env, plane::RelayForTests));
	exports.Set("tcpPairForTests", Napi::Function::New(env, plane::TcpPairForTests));
	return exports;
}

} // namespace jfe

static Napi::Object InitModule(Napi::Env env, Napi::Object exports)
{
	return jfe::Init(env, exports);
}

NODE_API_MODULE(jfe_native, InitModule)

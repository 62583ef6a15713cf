// SPDX-License-Identifier: MIT
// libbpf operations on the sk_lookup program and its maps: load from the
// skeleton, attach to a netns, pin, inspect, and raw map access. Key and
// value layouts come from jfe.h and are exported by Layout().
#include "steer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "jfe.h"
#include "jfe.skel.h"

namespace jfe {

namespace {

int DupFd(Napi::Env env, int fd)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0)
		ThrowErrno(env, errno, "fcntl");
	return copy;
}

// Points map at an existing map (an attached program's), which must have
// the definition this build expects: libbpf's reuse takes the existing
// map's definition as it is, so a mismatch would go unnoticed.
void ReuseMap(Napi::Env env, struct jfe_bpf *skel, struct bpf_map *map, const Napi::Object &fds)
{
	const char *name = bpf_map__name(map);
	int fd = fds.Get(name).ToNumber().Int32Value();
	struct bpf_map_info mi = {};
	__u32 len = sizeof(mi);
	int err = 0;
	if (bpf_obj_get_info_by_fd(fd, &mi, &len) < 0)
		err = errno;
	else if (mi.type != bpf_map__type(map) || mi.key_size != bpf_map__key_size(map) ||
		 mi.value_size != bpf_map__value_size(map) || mi.max_entries != bpf_map__max_entries(map))
		err = EINVAL;
	else if (bpf_map__reuse_fd(map, fd) < 0)
		err = errno;
	if (err != 0) {
		jfe_bpf__destroy(skel);
		ThrowErrno(env, err, "bpf_map__reuse_fd", std::string("map ") + name + " differs from this build's");
	}
}

} // namespace

// ([maps]) -> fds of the program and its maps. With maps ({ ports, config,
// ... } fds of existing maps), the program is loaded on those instead of new
// ones, so it can replace an attached program with the state kept. The
// skeleton is destroyed at once: the caller owns the fds and pins what must
// live on.
Napi::Value LoadProgram(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	StartCapture();
	struct jfe_bpf *skel = jfe_bpf__open();
	if (!skel)
		ThrowErrno(env, errno, "bpf_object__open", "open sk_lookup program");
	if (info.Length() > 0 && info[0].IsObject()) {
		Napi::Object fds = info[0].As<Napi::Object>();
		struct bpf_map *maps[] = {skel->maps.ports, skel->maps.config, skel->maps.sockets,
					  skel->maps.bypass, skel->maps.listeners, skel->maps.counters};
		for (struct bpf_map *map : maps)
			ReuseMap(env, skel, map, fds);
	}
	if (jfe_bpf__load(skel) != 0) {
		int err = errno;
		jfe_bpf__destroy(skel);
		ThrowErrno(env, err, "bpf_prog_load", "load sk_lookup program");
	}

	Napi::Object out = Napi::Object::New(env);
	try {
		out.Set("prog", DupFd(env, bpf_program__fd(skel->progs.jfe_steer)));
		out.Set("ports", DupFd(env, bpf_map__fd(skel->maps.ports)));
		out.Set("config", DupFd(env, bpf_map__fd(skel->maps.config)));
		out.Set("sockets", DupFd(env, bpf_map__fd(skel->maps.sockets)));
		out.Set("bypass", DupFd(env, bpf_map__fd(skel->maps.bypass)));
		out.Set("listeners", DupFd(env, bpf_map__fd(skel->maps.listeners)));
		out.Set("counters", DupFd(env, bpf_map__fd(skel->maps.counters)));
	} catch (...) {
		// Fds already dup'ed leak until exit here; this only happens when
		// the process is out of descriptors.
		jfe_bpf__destroy(skel);
		throw;
	}
	jfe_bpf__destroy(skel);
	return out;
}

// (progFd, netnsFd) -> linkFd
Napi::Value AttachNetns(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int prog = ArgInt(info, 0, "progFd");
	int netns = ArgInt(info, 1, "netnsFd");
	StartCapture();
	int link = bpf_link_create(prog, netns, BPF_SK_LOOKUP, nullptr);
	if (link < 0)
		ThrowErrno(env, errno, "bpf_link_create", "attach to network namespace");
	return Napi::Number::New(env, link);
}

// (linkFd, progFd): the link runs progFd from now on, atomically: no lookup
// goes without a program.
Napi::Value LinkUpdate(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (bpf_link_update(ArgInt(info, 0, "linkFd"), ArgInt(info, 1, "progFd"), nullptr) < 0)
		ThrowErrno(env, errno, "bpf_link_update");
	return env.Undefined();
}

// Detaches a link even when other processes hold it open.
Napi::Value LinkDetach(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (bpf_link_detach(ArgInt(info, 0, "linkFd")) < 0)
		ThrowErrno(env, errno, "bpf_link_detach");
	return env.Undefined();
}

Napi::Value ObjPin(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = ArgInt(info, 0, "fd");
	std::string path = ArgString(info, 1, "path");
	if (bpf_obj_pin(fd, path.c_str()) < 0)
		ThrowErrno(env, errno, "bpf_obj_pin", path);
	return env.Undefined();
}

Napi::Value ObjGet(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string path = ArgString(info, 0, "path");
	int fd = bpf_obj_get(path.c_str());
	if (fd < 0)
		ThrowErrno(env, errno, "bpf_obj_get", path);
	return Napi::Number::New(env, fd);
}

Napi::Value LinkInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	struct bpf_link_info li = {};
	__u32 len = sizeof(li);
	if (bpf_obj_get_info_by_fd(ArgInt(info, 0, "linkFd"), &li, &len) < 0)
		ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "link");
	Napi::Object out = Napi::Object::New(env);
	out.Set("id", li.id);
	out.Set("progId", li.prog_id);
	out.Set("type", static_cast<uint32_t>(li.type));
	bool netns = li.type == BPF_LINK_TYPE_NETNS;
	out.Set("netnsIno", netns ? li.netns.netns_ino : 0);
	out.Set("attachType", netns ? static_cast<uint32_t>(li.netns.attach_type) : 0u);
	return out;
}

Napi::Value ProgInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi);
	if (bpf_obj_get_info_by_fd(ArgInt(info, 0, "progFd"), &pi, &len) < 0)
		ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "program");
	Napi::Object out = Napi::Object::New(env);
	out.Set("id", pi.id);
	out.Set("type", static_cast<uint32_t>(pi.type));
	out.Set("name", std::string(pi.name));
	// The kernel's hash of the instructions: equal tags, same program.
	char tag[2 * BPF_TAG_SIZE + 1];
	for (int i = 0; i < BPF_TAG_SIZE; i++)
		snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
	out.Set("tag", std::string(tag));
	return out;
}

Napi::Value MapInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	struct bpf_map_info mi = {};
	__u32 len = sizeof(mi);
	if (bpf_obj_get_info_by_fd(ArgInt(info, 0, "mapFd"), &mi, &len) < 0)
		ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "map");
	Napi::Object out = Napi::Object::New(env);
	out.Set("id", mi.id);
	out.Set("type", static_cast<uint32_t>(mi.type));
	out.Set("name", std::string(mi.name));
	out.Set("keySize", mi.key_size);
	out.Set("valueSize", mi.value_size);
	out.Set("maxEntries", mi.max_entries);
	return out;
}

// (fd, key, value) -> true, or false when there is no such key. value is
// filled in place; per-CPU maps need value_size * possible CPUs bytes.
Napi::Value MapLookup(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = ArgInt(info, 0, "mapFd");
	auto key = ArgBuffer(info, 1, "key");
	auto value = ArgBuffer(info, 2, "value");
	if (bpf_map_lookup_elem(fd, key.Data(), value.Data()) < 0) {
		if (errno == ENOENT)
			return Napi::Boolean::New(env, false);
		ThrowErrno(env, errno, "bpf_map_lookup_elem");
	}
	return Napi::Boolean::New(env, true);
}

Napi::Value MapUpdate(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = ArgInt(info, 0, "mapFd");
	auto key = ArgBuffer(info, 1, "key");
	auto value = ArgBuffer(info, 2, "value");
	uint32_t flags = info.Length() > 3 ? ArgUint(info, 3, "flags") : static_cast<uint32_t>(BPF_ANY);
	if (bpf_map_update_elem(fd, key.Data(), value.Data(), flags) < 0)
		ThrowErrno(env, errno, "bpf_map_update_elem");
	return env.Undefined();
}

// (fd, key) -> true if deleted, false if absent.
Napi::Value MapDelete(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = ArgInt(info, 0, "mapFd");
	auto key = ArgBuffer(info, 1, "key");
	if (bpf_map_delete_elem(fd, key.Data()) < 0) {
		if (errno == ENOENT)
			return Napi::Boolean::New(env, false);
		ThrowErrno(env, errno, "bpf_map_delete_elem");
	}
	return Napi::Boolean::New(env, true);
}

// (fd, key | null, next) -> true with next filled, false at the end.
Napi::Value MapNextKey(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = ArgInt(info, 0, "mapFd");
	const void *key = nullptr;
	if (info.Length() > 1 && info[1].IsBuffer())
		key = info[1].As<Napi::Buffer<uint8_t>>().Data();
	auto next = ArgBuffer(info, 2, "next");
	if (bpf_map_get_next_key(fd, key, next.Data()) < 0) {
		if (errno == ENOENT)
			return Napi::Boolean::New(env, false);
		ThrowErrno(env, errno, "bpf_map_get_next_key");
	}
	return Napi::Boolean::New(env, true);
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int n = libbpf_num_possible_cpus();
	if (n < 0)
		ThrowErrno(env, n, "libbpf_num_possible_cpus");
	return Napi::Number::New(env, n);
}

// Sizes, offsets and indexes from jfe.h, so TypeScript encodes keys from
// the same definitions the program was compiled with.
Napi::Object Layout(Napi::Env env)
{
	Napi::Object o = Napi::Object::New(env);
	o.Set("maxSlots", JFE_MAX_SLOTS);
	o.Set("sockmapEntries", JFE_SOCKMAP_ENTRIES);
	o.Set("portWords", JFE_PORT_WORDS);
	o.Set("portsSize", sizeof(struct jfe_ports));
	o.Set("configSize", sizeof(struct jfe_config));
	o.Set("configNslotsOffset", offsetof(struct jfe_config, nslots));
	o.Set("addrKeySize", sizeof(struct jfe_addr_key));
	o.Set("addrKeyFamilyOffset", offsetof(struct jfe_addr_key, family));
	o.Set("addrKeyPortOffset", offsetof(struct jfe_addr_key, port));
	o.Set("addrKeyAddrOffset", offsetof(struct jfe_addr_key, addr));
	o.Set("maxBypass", JFE_MAX_BYPASS);
	o.Set("maxListeners", JFE_MAX_LISTENERS);

	Napi::Object c = Napi::Object::New(env);
	c.Set("steered", static_cast<int>(JFE_CNT_STEERED));
	c.Set("passNotTcp", static_cast<int>(JFE_CNT_PASS_NOT_TCP));
	c.Set("passPort", static_cast<int>(JFE_CNT_PASS_PORT));
	c.Set("passLoopback", static_cast<int>(JFE_CNT_PASS_LOOPBACK));
	c.Set("passBypass", static_cast<int>(JFE_CNT_PASS_BYPASS));
	c.Set("passNoListener", static_cast<int>(JFE_CNT_PASS_NO_LISTENER));
	c.Set("passNoSocket", static_cast<int>(JFE_CNT_PASS_NO_SOCKET));
	c.Set("assignFailed", static_cast<int>(JFE_CNT_ASSIGN_FAILED));
	static_assert(JFE_CNT_MAX == 8, "a new counter needs a name in Layout()");
	o.Set("counterMax", static_cast<int>(JFE_CNT_MAX));
	o.Set("counters", c);

	Napi::Object f = Napi::Object::New(env);
	f.Set("any", static_cast<int>(BPF_ANY));
	f.Set("noexist", static_cast<int>(BPF_NOEXIST));
	f.Set("exist", static_cast<int>(BPF_EXIST));
	o.Set("updateFlags", f);
	o.Set("attachTypeSkLookup", static_cast<int>(BPF_SK_LOOKUP));
	return o;
}

} // namespace jfe

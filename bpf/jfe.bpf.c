// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * jfe_steer: the sk_lookup verdict. Steers inbound TCP connections to one of
 * the agent's sockets, or passes them to the kernel's ordinary lookup. All
 * policy is in maps written by userspace; every verdict is counted.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/socket.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "jfe.h"

#ifndef AF_INET
#define AF_INET (2)
#endif
#ifndef AF_INET6
#define AF_INET6 (10)
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct jfe_ports);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct jfe_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, JFE_SOCKMAP_ENTRIES);
	__type(key, __u32);
	/* 8-byte values: userspace lookups return the socket cookie. */
	__type(value, __u64);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JFE_MAX_BYPASS);
	__type(key, struct jfe_addr_key);
	__type(value, __u32); /* owner pid */
} bypass SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JFE_MAX_LISTENERS);
	__type(key, struct jfe_addr_key);
	__type(value, __u8);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JFE_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int count(__u32 idx, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1;
	return verdict;
}

static __always_inline int port_selected(__u32 port)
{
	__u32 zero = 0;
	struct jfe_ports *p = bpf_map_lookup_elem(&ports, &zero);
	__u32 word = port >> 6;

	if (!p || word >= JFE_PORT_WORDS)
		return 0;
	return (p->bits[word] >> (port & 63)) & 1;
}

static __always_inline int is_loopback(struct bpf_sk_lookup *ctx)
{
	if (ctx->family == AF_INET)
		return (bpf_ntohl(ctx->remote_ip4) >> 24) == 127;
	return ctx->remote_ip6[0] == 0 && ctx->remote_ip6[1] == 0 &&
	       ctx->remote_ip6[2] == 0 && ctx->remote_ip6[3] == bpf_htonl(1);
}

/* Copies the remote (which = 0) or local (which = 1) address into key. */
static __always_inline void fill_key(struct jfe_addr_key *key,
				     struct bpf_sk_lookup *ctx, int local)
{
	__u32 *a = (__u32 *)key->addr;

	key->family = ctx->family;
	if (ctx->family == AF_INET) {
		a[0] = local ? ctx->local_ip4 : ctx->remote_ip4;
		return;
	}
	a[0] = local ? ctx->local_ip6[0] : ctx->remote_ip6[0];
	a[1] = local ? ctx->local_ip6[1] : ctx->remote_ip6[1];
	a[2] = local ? ctx->local_ip6[2] : ctx->remote_ip6[2];
	a[3] = local ? ctx->local_ip6[3] : ctx->remote_ip6[3];
}

static __always_inline __u32 mix(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x9e3779b1;
	return h ^ (h >> 16);
}

static __always_inline __u32 flow_hash(struct bpf_sk_lookup *ctx)
{
	__u32 h = mix(0x6a6665, ctx->local_port);

	h = mix(h, ctx->remote_port);
	if (ctx->family == AF_INET)
		return mix(h, ctx->remote_ip4);
	h = mix(h, ctx->remote_ip6[0]);
	h = mix(h, ctx->remote_ip6[1]);
	h = mix(h, ctx->remote_ip6[2]);
	return mix(h, ctx->remote_ip6[3]);
}

SEC("sk_lookup")
int jfe_steer(struct bpf_sk_lookup *ctx)
{
	struct jfe_addr_key key = {};
	struct jfe_config *cfg;
	__u32 zero = 0, base, nslots, start, i;

	/* No packet: a socket lookup made by sock_diag (the agent's own
	 * upstream collision check runs one per connection) reaches the
	 * listener lookup, and so this program, with no ingress device.
	 * Steering it would count a connection twice; the check only looks
	 * for established sockets, which this verdict cannot change. */
	if (ctx->ingress_ifindex == 0)
		return SK_PASS;

	/* UDP and anything else: not ours. */
	if (ctx->protocol != IPPROTO_TCP)
		return count(JFE_CNT_PASS_NOT_TCP, SK_PASS);
	if (ctx->family != AF_INET && ctx->family != AF_INET6)
		return count(JFE_CNT_PASS_NOT_TCP, SK_PASS);

	/* Port outside the configured set (and excluded ports). */
	if (!port_selected(ctx->local_port))
		return count(JFE_CNT_PASS_PORT, SK_PASS);

	/* Loopback clients reach services as before, and 127.0.0.1-only
	 * services stay private to the host. */
	if (is_loopback(ctx))
		return count(JFE_CNT_PASS_LOOPBACK, SK_PASS);

	/* The agent's own upstream connection, from the client's address:
	 * it must reach the real service, not come back to the agent. */
	fill_key(&key, ctx, 0);
	key.port = bpf_ntohs(ctx->remote_port);
	if (bpf_map_lookup_elem(&bypass, &key))
		return count(JFE_CNT_PASS_BYPASS, SK_PASS);

	/* No service would accept this connection: let the kernel refuse it
	 * with its own reset, so that a port scan sees what it would see
	 * without jfe. Exact address first, then the wildcard. */
	__builtin_memset(&key, 0, sizeof(key));
	fill_key(&key, ctx, 1);
	key.port = ctx->local_port;
	if (!bpf_map_lookup_elem(&listeners, &key)) {
		__builtin_memset(key.addr, 0, sizeof(key.addr));
		if (!bpf_map_lookup_elem(&listeners, &key))
			return count(JFE_CNT_PASS_NO_LISTENER, SK_PASS);
	}

	cfg = bpf_map_lookup_elem(&config, &zero);
	nslots = cfg ? cfg->nslots : 0;
	if (nslots > JFE_MAX_SLOTS)
		nslots = JFE_MAX_SLOTS;
	/* No agent registered: fail open. */
	if (nslots == 0)
		return count(JFE_CNT_PASS_NO_SOCKET, SK_PASS);

	base = ctx->family == AF_INET ? 0 : JFE_MAX_SLOTS;
	start = flow_hash(ctx) % nslots;
	for (i = 0; i < JFE_MAX_SLOTS; i++) {
		__u32 slot = base + (start + i) % nslots;
		struct bpf_sock *sk;
		long err;

		if (i >= nslots)
			break;
		/* An empty slot (its worker died: the kernel removes a closed
		 * socket from the sockmap) hands over to the next one. */
		sk = bpf_map_lookup_elem(&sockets, &slot);
		if (!sk)
			continue;
		err = bpf_sk_assign(ctx, sk, 0);
		bpf_sk_release(sk);
		/* Not a listening socket, wrong family or netns: fail open. */
		if (err)
			return count(JFE_CNT_ASSIGN_FAILED, SK_PASS);
		return count(JFE_CNT_STEERED, SK_PASS);
	}
	/* Every registered slot is empty: fail open. */
	return count(JFE_CNT_PASS_NO_SOCKET, SK_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

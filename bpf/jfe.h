/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel <-> userspace contract of the sk_lookup program: map value and
 * key layouts and counter indexes. Included by jfe.bpf.c and the addon in native/;
 * the addon exports sizes and offsets from here so TypeScript checks them.
 */
#ifndef JFE_H
#define JFE_H

#include <linux/types.h>

/* Agent sockets per address family. Slot s of family f lives at sockmap
 * index f * JFE_MAX_SLOTS + s (f: 0 = IPv4, 1 = IPv6). */
#define JFE_MAX_SLOTS (64)
#define JFE_SOCKMAP_ENTRIES (2 * JFE_MAX_SLOTS)

/* One bit per TCP port, in a single array entry, so a new port set is
 * swapped in by one map update: the program never sees half of it. */
#define JFE_PORT_WORDS (65536 / 64)

/* Bypass and listener entries: the first element of a key is the family.
 * A bypass value is the pid of the worker that owns the entry, so the
 * entries of a worker that died can be found and removed. */
#define JFE_MAX_BYPASS (65536)
#define JFE_MAX_LISTENERS (16384)

struct jfe_ports {
	__u64 bits[JFE_PORT_WORDS];
};

struct jfe_config {
	/* Slots 0..nslots-1 are the ones the hash spreads over. */
	__u32 nslots;
	__u32 reserved;
};

/*
 * Key of the bypass map (addr/port = the agent's upstream source, which is
 * the client's address) and of the listeners map (addr/port = a listening
 * service's local address; all-zero addr = wildcard). addr holds 4 bytes
 * for AF_INET, 16 for AF_INET6, network byte order, rest zero. port is in
 * host byte order.
 */
struct jfe_addr_key {
	__u32 family;
	__u32 port;
	__u8 addr[16];
};

/* Why a connection was (not) steered; one per-CPU counter each. */
enum jfe_counter {
	JFE_CNT_STEERED = 0,
	JFE_CNT_PASS_NOT_TCP,
	JFE_CNT_PASS_PORT,
	JFE_CNT_PASS_LOOPBACK,
	JFE_CNT_PASS_BYPASS,
	JFE_CNT_PASS_NO_LISTENER,
	JFE_CNT_PASS_NO_SOCKET,
	JFE_CNT_ASSIGN_FAILED,
	JFE_CNT_MAX,
};

#endif /* JFE_H */

// SPDX-License-Identifier: MIT
// What each step of the transparent dial costs on its own (README, "Where the time
// goes"): socket, the marks, the bypass map update and delete, the sock_diag query,
// an explicit bind, close. Build and run in an empty netns, as root:
//   gcc -O2 -o /tmp/dial-cost bench/dial-cost.c -lbpf
//   ip netns add dc && ip netns exec dc sh -c "ulimit -n 20000; /tmp/dial-cost"; ip netns del dc
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define N 10000
static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
struct key { unsigned char family, pad[3]; unsigned char addr[16]; unsigned short port, pad2; };

int main(void)
{
	static int fds[N];
	double t0, t[16] = {0};
	int one = 1, mark = 0x10;
	struct sockaddr_in src = { .sin_family = AF_INET };
	inet_pton(AF_INET, "10.1.2.3", &src.sin_addr);
	int map = bpf_map_create(BPF_MAP_TYPE_HASH, "bypass", sizeof(struct key), 4, 65536, NULL);
	if (map < 0) { perror("map"); return 1; }
	int diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	for (int i = 0; i < N; i++) {
		t0 = now_us(); int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); t[0] += now_us() - t0; if (s < 0) { perror("socket"); return 1; }
		t0 = now_us(); setsockopt(s, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)); t[1] += now_us() - t0;
		t0 = now_us(); setsockopt(s, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)); t[2] += now_us() - t0;
		t0 = now_us(); setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); t[3] += now_us() - t0;
		t0 = now_us(); setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); t[4] += now_us() - t0;
		struct key k = { .family = AF_INET, .port = (unsigned short)(1024 + i) };
		memcpy(k.addr, &src.sin_addr, 4);
		unsigned int owner = 1;
		t0 = now_us(); if (bpf_map_update_elem(map, &k, &owner, BPF_NOEXIST)) perror("update"); t[5] += now_us() - t0;
		// sock_diag: is (10.0.0.1:80 <- 10.1.2.3:port) a live connection?
		struct { struct nlmsghdr nlh; struct inet_diag_req_v2 req; } r = {0};
		r.nlh.nlmsg_len = sizeof(r); r.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY; r.nlh.nlmsg_flags = NLM_F_REQUEST;
		r.req.sdiag_family = AF_INET; r.req.sdiag_protocol = IPPROTO_TCP; r.req.idiag_states = ~0u;
		inet_pton(AF_INET, "10.0.0.1", r.req.id.idiag_src); r.req.id.idiag_sport = htons(80);
		memcpy(r.req.id.idiag_dst, &src.sin_addr, 4); r.req.id.idiag_dport = htons(1024 + i);
		r.req.id.idiag_cookie[0] = r.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
		struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
		char buf[8192];
		t0 = now_us();
		sendto(diag, &r, sizeof(r), 0, (struct sockaddr *)&nl, sizeof(nl));
		recv(diag, buf, sizeof(buf), 0);
		t[6] += now_us() - t0;
		src.sin_port = htons(1024 + i);
		t0 = now_us(); if (bind(s, (struct sockaddr *)&src, sizeof(src))) perror("bind"); t[7] += now_us() - t0;
		fds[i] = s;
		t0 = now_us(); bpf_map_delete_elem(map, &k); t[8] += now_us() - t0;
		t0 = now_us(); getpid(); t[9] += now_us() - t0;
	}
	for (int i = 0; i < N; i++) { t0 = now_us(); close(fds[i]); t[10] += now_us() - t0; }
	const char *names[] = {"socket", "setsockopt IP_TRANSPARENT", "setsockopt SO_MARK", "setsockopt SO_REUSEADDR", "setsockopt TCP_NODELAY", "bpf map update (NOEXIST)", "sock_diag query (sendto+recv)", "bind (explicit port)", "bpf map delete", "getpid (a bare syscall)", "close (unconnected)"};
	for (int i = 0; i < 11; i++) printf("%-32s %.2f us\n", names[i], t[i] / N);
	return 0;
}

#!/bin/sh
# A fresh machine, checked: the README's two Quick start commands, exactly as
# written, as root, from /root/jfe, on a Debian 12 made just now.
#
# Builds a minimal Debian 12 root with debootstrap from the mirror this
# machine's apt uses, copies in the checkout (its git-tracked files, as a clone
# has them) as /root/jfe and the Node that runs here (as a user would have put
# it on the PATH), and runs the commands in that root, in a network namespace
# of its own that reaches the mirror and the npm registry through a veth pair
# and NAT, and in mount and PID namespaces of its own (its mounts and
# processes end with it). Between the two commands it follows the README's
# demo: `python3 -m http.server 8080` on the new system, then, from "another
# machine" (this host, over the veth pair), curl over HTTP and over HTTPS with
# the CA from `npx jfe ca export`, and the service must log the client's
# address. Then it removes everything it made: namespace, veth, NAT table,
# sysctls (restored), and the root.
#
# As root; debootstrap and nftables are installed when missing. Takes 20-40
# minutes (most of it the second command: the test packages and the suite).
# Not run by CI. Exit 0 when both commands and the demo passed.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "Error: run as root (debootstrap, namespaces, NAT)" >&2
	exit 1
fi
for tool in debootstrap:debootstrap nft:nftables; do
	if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
		apt-get install -y -q --no-install-recommends "${tool#*:}" </dev/null >/dev/null
	fi
done

# The README's commands: the first two sh blocks of its Quick start.
readme_commands=$(awk '/^## /{ in_qs = ($0 == "## Quick start") } in_qs && /^```sh$/{ getline; print; if (++n == 2) exit }' README.md)
cmd1=$(printf '%s\n' "$readme_commands" | sed -n 1p)
cmd2=$(printf '%s\n' "$readme_commands" | sed -n 2p)
if [ -z "$cmd1" ] || [ -z "$cmd2" ]; then
	echo "Error: README.md's Quick start has no two sh blocks" >&2
	exit 1
fi

# The mirror this machine's apt uses for a suite: the first URI of an enabled
# deb entry for it, in deb822 (.sources) or one-line (.list) form.
mirror_for() {
	found=$(
		for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && awk -v s="$1" 'BEGIN { RS = "" } /(^|\n)Types:([^\n]*[ \t])?deb([ \t]|\n|$)/ && $0 ~ "(^|\n)Suites:[^\n]*[ \t]" s "([ \t]|\n|$)" && !/(^|\n)Enabled: *no/ { if (match($0, /(^|\n)URIs: *[^ \t\n]+/)) { u = substr($0, RSTART, RLENGTH); sub(/^\n?URIs: */, "", u); print u } }' "$f"; done
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk -v s="$1" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while (i <= NF && $i !~ /\]$/) i++; if ($2 ~ /^\[/) i++; if ($(i + 1) == s) print $i }'
	)
	printf '%s\n' "$found" | sed -n 1p
}
mirror=$(mirror_for bookworm)
security=$(mirror_for bookworm-security)
mirror=${mirror:-http://deb.debian.org/debian}
security=${security:-http://deb.debian.org/debian-security}

node_path=$(node -p process.execPath)
node_version=$(node --version)

id=$$
ns=jfe-clean-$id
veth=jfec$id
subnet=198.19.$((id % 250))
host_ip=$subnet.1
guest_ip=$subnet.2
nat_table=jfe_clean_$id
uplink=$(ip -4 route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
uplink_forwarding=$(cat "/proc/sys/net/ipv4/conf/$uplink/forwarding")
work=$(mktemp -d /var/tmp/jfe-clean.XXXXXX)
root=$work/root
state=/var/tmp/jfe-check # inside the new root
inner_pid=

cleanup() {
	set +e
	[ -n "$inner_pid" ] && kill -KILL "$inner_pid" 2>/dev/null && wait "$inner_pid" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	ip link del "$veth" 2>/dev/null
	nft delete table ip "$nat_table" 2>/dev/null
	sysctl -qw "net.ipv4.conf.$uplink.forwarding=$uplink_forwarding"
	# Every mount was made in the run's own mount namespace; never delete through one that is left.
	if grep -q " $work/" /proc/self/mounts; then
		echo "Error: mounts left under $work; not removing it" >&2
	else
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n=== %s\n' "$*" >&2; }

step "debootstrap bookworm from $mirror into $root"
if ! debootstrap bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
	tail -n 20 "$work/debootstrap.log" >&2
	echo "Error: debootstrap failed" >&2
	exit 1
fi
# The sources of a fresh Debian 12, on this machine's mirrors.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The network the new system reaches is this machine's: its own trust anchors
# (e.g. the CA of a TLS-inspecting egress proxy) come along, for the system
# store that install.sh's ca-certificates builds, and so does
# NODE_EXTRA_CA_CERTS (below), through which this machine's Node trusts them.
mkdir -p "$root/usr/local/share/ca-certificates"
cp -p /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true

step "copying the checkout to /root/jfe and Node $node_version ($node_path)"
mkdir "$root/root/jfe"
git ls-files -z | tar --null -T - -cf - | tar -xpf - -C "$root/root/jfe"
# The running Node where it is, with the headers and npm beside it if it has them.
prefix=${node_path%/bin/node}
mkdir -p "$root$prefix/bin"
cp -p "$node_path" "$root$prefix/bin/node"
if [ -d "$prefix/include/node" ]; then
	mkdir -p "$root$prefix/include"
	cp -a "$prefix/include/node" "$root$prefix/include/"
fi
if [ -d "$prefix/lib/node_modules/npm" ]; then
	mkdir -p "$root$prefix/lib/node_modules"
	cp -a "$prefix/lib/node_modules/npm" "$root$prefix/lib/node_modules/"
	for bin in npm npx; do [ -e "$prefix/bin/$bin" ] && cp -a "$prefix/bin/$bin" "$root$prefix/bin/"; done
fi
case "$prefix" in
/usr | /usr/local) ;;
*) for bin in node npm npx; do [ -e "$root$prefix/bin/$bin" ] && ln -sfn "$prefix/bin/$bin" "$root/usr/local/bin/$bin"; done ;;
esac

step "network namespace $ns: $guest_ip, NAT through $uplink"
ip netns add "$ns"
ip link add "$veth" type veth peer name eth0 netns "$ns"
ip addr add "$host_ip/24" dev "$veth"
ip link set "$veth" up
ip -n "$ns" link set lo up
ip -n "$ns" addr add "$guest_ip/24" dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" route add default via "$host_ip"
# Forwarding only on the two interfaces the new system's traffic crosses.
sysctl -qw "net.ipv4.conf.$veth.forwarding=1" "net.ipv4.conf.$uplink.forwarding=1"
nft -f - <<EOF
table ip $nat_table {
	chain postrouting {
		type nat hook postrouting priority srcnat;
		ip saddr $subnet.0/24 oifname "$uplink" masquerade
	}
}
EOF

# Runs inside the new system (bash -l: root's login environment), as /root/jfe.
mkdir -p "$root$state"
printf '%s\n' "$cmd1" >"$root$state/cmd1"
printf '%s\n' "$cmd2" >"$root$state/cmd2"
cat >"$root$state/driver.sh" <<'EOF'
state=/var/tmp/jfe-check
cd /root/jfe
cmd1=$(cat $state/cmd1)
cmd2=$(cat $state/cmd2)

echo "=== # $cmd1" >&2
# Its own process group, so that stopping jfe stops npx and the workers too.
setsid sh -c "$cmd1" </dev/null >$state/cmd1.log 2>&1 &
group=$!
tail -n +1 -f --pid=$group $state/cmd1.log >&2 &
until grep -q '"msg":"jfe running"' $state/cmd1.log; do
	if ! kill -0 $group 2>/dev/null; then
		wait $group
		echo "FAILED: exit $? before jfe ran" >$state/cmd1.result
		break
	fi
	sleep 1
done
if [ ! -e $state/cmd1.result ]; then
	echo "=== # python3 -m http.server 8080; npx jfe ca export > jfe-ca.pem" >&2
	python3 -m http.server 8080 </dev/null >$state/http.log 2>&1 &
	service=$!
	npx jfe ca export >$state/jfe-ca.pem
	touch $state/ready
	i=0
	while [ ! -e $state/done ] && [ $i -lt 300 ]; do sleep 1; i=$((i + 1)); done
	# Ctrl-C, as in a terminal: SIGINT to the foreground process group.
	kill -INT -- -$group
	wait $group
	status=$?
	if grep -q '"msg":"stopped; traffic goes straight to the services"' $state/cmd1.log; then
		echo "ok: installed, jfe ran, and stopped on Ctrl-C (exit $status)" >$state/cmd1.result
	else
		echo "FAILED: jfe did not log a clean stop after Ctrl-C (exit $status)" >$state/cmd1.result
	fi
	kill $service
fi
touch $state/ready

echo "=== # $cmd2" >&2
sh -c "$cmd2" </dev/null >$state/cmd2.log 2>&1 &
run=$!
tail -n +1 -f --pid=$run $state/cmd2.log >&2
wait $run
echo $? >$state/cmd2.rc
EOF

step "running the README's commands in the new system"
inner='
r=$1
extra_ca=$2
# The root a mount point of its own, as / is on a machine (ip netns exec and
# unshare change the propagation of /, which a plain directory refuses).
mount --bind "$r" "$r"
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
mount -t tmpfs -o mode=755 tmpfs "$r/run"
mkdir -p "$r/run/lock"
exec chroot "$r" /usr/bin/env -i HOME=/root TERM=dumb ${extra_ca:+NODE_EXTRA_CA_CERTS=$extra_ca} /bin/bash -l /var/tmp/jfe-check/driver.sh
'
ip netns exec "$ns" unshare --mount --propagation private --pid --fork --kill-child sh -c "$inner" sh "$root" "${NODE_EXTRA_CA_CERTS:-}" &
inner_pid=$!

# The demo, from this host: "another machine" to the new system.
until [ -e "$root$state/ready" ] || ! kill -0 "$inner_pid" 2>/dev/null; do sleep 2; done
demo="not run"
if [ -s "$root$state/jfe-ca.pem" ]; then
	step "from another machine: curl http://$guest_ip:8080/ and https://$guest_ip:8080/"
	fetch() { curl -sS -m 10 -o /dev/null -w '%{http_code}' "$@"; }
	i=0
	while [ "$(fetch "http://$guest_ip:8080/" 2>/dev/null)" != 200 ] && [ $i -lt 20 ]; do sleep 1; i=$((i + 1)); done
	http=$(fetch "http://$guest_ip:8080/" || true)
	https=$(fetch --cacert "$root$state/jfe-ca.pem" "https://$guest_ip:8080/" || true)
	seen=$(grep -c "^$host_ip - - .*\"GET / HTTP/1.1\" 200" "$root$state/http.log" || true)
	demo="HTTP $http, HTTPS $https (jfe's CA), the service logged $seen of them from $host_ip (the client)"
	[ "$http" = 200 ] && [ "$https" = 200 ] && [ "$seen" -ge 2 ] && demo="ok: $demo" || demo="FAILED: $demo"
	echo "$demo" >&2
	touch "$root$state/done"
fi
rc=0
wait "$inner_pid" || rc=$?
inner_pid=

cmd1_result=$(cat "$root$state/cmd1.result" 2>/dev/null || echo "no result")
cmd2_rc=$(cat "$root$state/cmd2.rc" 2>/dev/null || echo "none (the run ended with $rc)")
printf '\n=== clean-system check: Debian 12 (debootstrap, %s), as root, /root/jfe; Node on PATH before: %s\n' "$mirror" "$node_version"
printf '1. %s\n   %s\n   demo from another machine: %s\n' "$cmd1" "$cmd1_result" "$demo"
printf '2. %s\n   exit %s\n' "$cmd2" "$cmd2_rc"
sed -n '/^=== summary$/,$p' "$root$state/cmd2.log" 2>/dev/null | sed 's/^/   /'
case "$demo|$cmd1_result|$cmd2_rc" in
ok:*"|ok:"*"|0") exit 0 ;;
*) exit 1 ;;
esac

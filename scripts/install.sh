#!/bin/sh
# Installs everything jfe needs on Debian 12 or Ubuntu (as root), Node.js
# included, then builds it with `npm ci`. With --with-tests, also the real
# clients and servers that the test suite drives. Safe to run again.
set -eu
cd "$(dirname "$0")/.."

with_tests=0
for arg in "$@"; do
	case "$arg" in
	--with-tests) with_tests=1 ;;
	*) echo "usage: $0 [--with-tests]" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "Error: run as root: installs apt packages, and jfe needs CAP_BPF and CAP_NET_ADMIN" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Build: the BPF object (clang, bpftool for the skeleton), the addon (libbpf).
# Run: ip, nsenter and mount for routing, namespaces and bpffs. curl fetches
# Node.js when it is missing. g++ also brings the ASan and UBSan runtimes
# (libasan, libubsan, through libgcc-N-dev) that npm run test:sanitize uses.
pkgs="clang llvm make g++ python3 pkg-config libbpf-dev libelf-dev zlib1g-dev iproute2 util-linux ca-certificates curl"
test_pkgs="openssl procps nginx-light redis-server redis-tools haproxy wrk pebble postgresql postgresql-client mariadb-server mariadb-client exim4-daemon-light dovecot-imapd dovecot-pop3d swaks libnet-ssleay-perl libio-socket-ssl-perl systemd"

apt_install() {
	apt-get install -y -q --no-install-recommends "$@" </dev/null
}

echo "jfe: installing packages" >&2
apt-get update -q </dev/null
apt_install $pkgs
# bpftool: its own package on Debian 12; on Ubuntu it ships in linux-tools.
if ! command -v bpftool >/dev/null 2>&1 && [ ! -x /usr/sbin/bpftool ]; then
	apt_install bpftool || apt_install linux-tools-common "linux-tools-$(uname -r)"
fi

# Node.js 22 or later with npm and its own headers (the addon is built with
# them). Anything less (Debian 12's nodejs is 18) gets the pinned Node 26 LTS
# of install-node.sh, linked into /usr/local/bin.
node_usable() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
		node -e 'const [major] = process.versions.node.split("."); const h = require("node:path").resolve(process.execPath, "../../include/node/node_version.h"); process.exit(Number(major) >= 22 && require("node:fs").existsSync(h) ? 0 : 1)'
}
if ! node_usable; then
	echo "jfe: installing Node.js 26 (found: $(node --version 2>/dev/null || echo none))" >&2
	./scripts/install-node.sh --system 26 >/dev/null
	hash -r
	if ! node_usable; then
		echo "Error: Node.js 26 is in /usr/local/bin, but the node on PATH is $(command -v node || echo missing): put /usr/local/bin first in PATH and run again." >&2
		exit 1
	fi
fi
echo "jfe: using Node.js $(node --version) ($(command -v node))" >&2

if [ "$with_tests" -eq 1 ]; then
	# Test servers are started by the tests themselves, inside namespaces:
	# keep their packages from starting host-wide services on install.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt_install $test_pkgs
fi

echo "jfe: building (npm ci)" >&2
npm ci --no-audit --no-fund

#!/bin/sh
# Installs a pinned Node.js LTS with npm, integrity checked, and prints its bin
# directory. Node is the complete Linux build the npm registry publishes as
# node-linux-<arch>@<version> (headers included, so the addon builds with no
# download); npm is the registry's npm package. Both tarballs are checked
# against the sha512 pinned below (npm's "integrity" form) before anything is
# unpacked, so a mirror set in npm_config_registry is as safe as the registry.
#
#   scripts/install-node.sh [--system] [26|24|22]     (default 26)
#
# Installs into $JFE_NODE_ROOT (default /usr/local/lib/nodejs), as
# node-v<version>-linux-<arch>/{bin,include,lib}, the layout of Node's own
# tarballs. --system also links node, npm and npx into /usr/local/bin, ahead
# of /usr/bin on Debian's PATH. Safe to run again: an installed version is
# neither downloaded nor unpacked again.
set -eu

usage() {
	echo "usage: $0 [--system] [26|24|22]" >&2
	exit 2
}
system=0
line=26
for arg in "$@"; do
	case "$arg" in
	--system) system=1 ;;
	22 | 24 | 26) line=$arg ;;
	*) usage ;;
	esac
done

case "$(uname -m)" in
x86_64) arch=x64 ;;
aarch64) arch=arm64 ;;
*)
	echo "Error: no pinned Node.js build for $(uname -m): install Node.js 22 or later yourself" >&2
	exit 1
	;;
esac

# One line per Node LTS line and architecture: version, then integrity
# (npm view node-linux-<arch>@<version> dist.integrity).
case "$line-$arch" in
26-x64) pin="26.12.1 sha512-jk5LMAmgHlPlPMWpsUrSOqNaEZG+11UNd35hWQ+p5/XGaelWuTqJ69IcAy/5xtPPN4d5ZRBNOGB6gLMCh2kL9A==" ;;
24-x64) pin="24.22.3 sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==" ;;
22-x64) pin="22.23.5 sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==" ;;
26-arm64) pin="26.12.1 sha512-8Oxs6Y7rDcKufVIM/zYRSwytj46WOrZk7yFCLTKDcs17bBjAeD9HMAqo97hMfMyxozIud0S4vZCs5WB/3iavNQ==" ;;
24-arm64) pin="24.22.3 sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==" ;;
22-arm64) pin="22.23.5 sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==" ;;
esac
# npm for every line above (its engines: ^20.17.0 || >=22.9.0).
npm_pin="11.21.2 sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A=="

version=${pin%% *}
node_integrity=${pin#* }
npm_version=${npm_pin%% *}
npm_integrity=${npm_pin#* }
registry=${npm_config_registry:-https://registry.npmjs.org/}
registry=${registry%/}
root=${JFE_NODE_ROOT:-/usr/local/lib/nodejs}
dir="$root/node-v$version-linux-$arch"

# A complete install has this node and npm; anything else is made again.
installed() {
	[ "$("$dir/bin/node" --version 2>/dev/null)" = "v$version" ] &&
		[ "$("$dir/bin/node" "$dir/bin/npm" --version 2>/dev/null)" = "$npm_version" ]
}

# fetch URL FILE INTEGRITY: download, then refuse the file unless its sha512 is the pinned one.
fetch() {
	echo "jfe: downloading $1" >&2
	if ! curl -fsSL --retry 3 -o "$2" "$1"; then
		echo "Error: could not download $1" >&2
		return 1
	fi
	want=$(printf %s "${3#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
	got=$(sha512sum "$2" | cut -d' ' -f1)
	if [ "$got" != "$want" ]; then
		echo "Error: $1 does not match its pinned integrity $3: not installed" >&2
		return 1
	fi
}

if ! installed; then
	command -v curl >/dev/null 2>&1 || {
		echo "Error: installing Node.js needs curl (apt-get install curl)" >&2
		exit 1
	}
	mkdir -p "$root"
	# Unpacked beside its final place and renamed into it, so $dir is never half there.
	tmp=$(mktemp -d "$root/.node-v$version.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	trap 'exit 1' INT TERM
	fetch "$registry/node-linux-$arch/-/node-linux-$arch-$version.tgz" "$tmp/node.tgz" "$node_integrity"
	fetch "$registry/npm/-/npm-$npm_version.tgz" "$tmp/npm.tgz" "$npm_integrity"
	mkdir -p "$tmp/node/lib/node_modules/npm"
	tar -xzf "$tmp/node.tgz" -C "$tmp/node" --strip-components=1 --no-same-owner
	tar -xzf "$tmp/npm.tgz" -C "$tmp/node/lib/node_modules/npm" --strip-components=1 --no-same-owner
	ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/node/bin/npm"
	ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/node/bin/npx"
	chmod -R go-w,a+rX "$tmp/node"
	rm -rf "$dir"
	mv "$tmp/node" "$dir"
	installed || {
		echo "Error: the Node.js $version unpacked in $dir does not run" >&2
		exit 1
	}
	echo "jfe: Node.js $version and npm $npm_version installed in $dir" >&2
fi

if [ "$system" -eq 1 ]; then
	for bin in node npm npx; do
		ln -sfn "$dir/bin/$bin" "/usr/local/bin/$bin"
	done
fi
echo "$dir/bin"

#!/bin/sh
# Builds native/ with node-gyp against the system libbpf and the headers of the
# Node that runs the build: <prefix>/include/node beside <prefix>/bin/node, as
# Node's own tarballs, scripts/install-node.sh and Debian (/usr) lay them out.
# So nothing is downloaded, and the addon matches the Node that will load it
# (libuv and V8 have no stable ABI across Node majors). A nodedir given to npm
# (npm_config_nodedir, from an .npmrc or the environment) is used only when it
# holds this very version's headers.
#
#   build-native.sh            native/build/Release/jfe_native.node (rebuilt whole)
#   build-native.sh sanitize   native/build/Sanitize/jfe_native.node: the ASan +
#                              UBSan build (binding.gyp's "Sanitize"
#                              configuration) of npm run test:sanitize, made
#                              beside Release, which it leaves as it is
set -eu
cd "$(dirname "$0")/../native"
case "${1:-}" in
'' | sanitize) ;;
*) echo "usage: $0 [sanitize]" >&2; exit 2 ;;
esac

# "26.12.1" from a node_version.h, empty when the file is missing.
header_version() {
	[ -f "$1" ] || return 0
	sed -n 's/^#define NODE_\(MAJOR\|MINOR\|PATCH\)_VERSION \([0-9]*\)$/\2/p' "$1" | paste -sd.
}

running=$(node -p process.versions.node)
prefix=$(node -p 'require("node:path").resolve(process.execPath, "..", "..")')

if [ -n "${npm_config_nodedir:-}" ]; then
	nodedir=$npm_config_nodedir
	given=$(header_version "$nodedir/include/node/node_version.h")
	[ -n "$given" ] || given=$(header_version "$nodedir/src/node_version.h")
	if [ "$given" != "$running" ]; then
		echo "Error: npm's nodedir $nodedir holds the headers of Node ${given:-(none found)}, but this build runs Node $running ($(node -p process.execPath)): the addon would not match. Remove nodedir from npm's config (npm config delete nodedir) or set it to $prefix." >&2
		exit 1
	fi
else
	nodedir=$prefix
	if [ "$(header_version "$prefix/include/node/node_version.h")" != "$running" ]; then
		echo "Error: no headers of Node $running in $prefix/include/node (the addon is built with the headers of the Node that runs the build, and downloads none). Use a Node with its headers: scripts/install-node.sh installs one, Debian's libnode-dev has those of its nodejs." >&2
		exit 1
	fi
fi
echo "jfe: building the addon for Node $running with the headers in $nodedir/include/node" >&2
if [ "${1:-}" = sanitize ]; then
	# node-gyp builds only Release or Debug: configure (which rewrites the
	# Makefiles, not Release's objects), then make the other configuration.
	node-gyp configure --loglevel=warn --nodedir="$nodedir"
	exec make -C build BUILDTYPE=Sanitize -j"$(nproc)"
fi
exec node-gyp rebuild --nodedir="$nodedir"

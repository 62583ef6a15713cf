#!/bin/sh
# Builds native/ with node-gyp against the system libbpf. Uses the Node headers
# installed with Node (/usr/include/node) when npm was not told where they are,
# so no header download is needed.
set -e
cd "$(dirname "$0")/../native"
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then
	set -- --nodedir=/usr
fi
exec node-gyp rebuild "$@"

#!/bin/sh
# package.json's install script: npm ci (and npm install) build everything,
# the BPF object, the addon and the TypeScript (npm run build).
#
# `npx jfe …` in the checkout runs it too: npm (10 and later) links the
# checkout into its npx cache to run the package's own bin, and runs the
# install script of that link. The checkout was built by npm ci already, so
# that second build would only cost a minute or two on first use; and if it
# failed, npm would leave its cache entry without a package.json, so that
# every later `npx jfe` fails with ENOENT until ~/.npm/_npx is cleaned. So
# under npx (npm_command=exec) a built checkout is left as it is.
set -e
cd "$(dirname "$0")/.."
if [ "${npm_command:-}" = exec ] && [ -f dist/src/cli/jfe.js ] && [ -f native/build/Release/jfe_native.node ] && [ -f bpf/.output/jfe.bpf.o ]; then
	exit 0
fi
exec npm run build

#!/bin/sh
# npm run test:sanitize: the native code under AddressSanitizer and
# UndefinedBehaviorSanitizer. Builds native/build/Sanitize/jfe_native.node
# (build-native.sh sanitize; build/Release is left as it is), then runs with
# it, through JFE_NATIVE_ADDON (src/native.ts):
#   - the unit tests that load the addon: every *.test.js under
#     dist/test/unit/native/, and those named in UNIT below;
#   - the integration files in INTEGRATION below (npm run test:integration):
#     the agent and its workers inherit the environment, so they load the
#     sanitized addon too.
# Node is not built with ASan: its runtime is preloaded (LD_PRELOAD) into the
# Node processes of the run, and only those (curl hangs with it):
# test/helpers/sanitize-preload.ts, loaded into each (NODE_OPTIONS), passes it
# on to children that run Node. LeakSanitizer is off (detect_leaks=0) for
# the agents, which Node's own allocations would drown; it runs at the exit
# of the unit files' processes, where a leak counts when its allocation stack
# passes through the addon's code. A report makes the
# process abort (abort_on_error, and -fno-sanitize-recover=undefined in
# binding.gyp) and is kept under a temporary directory: a worker that aborts
# is restarted by the primary, and a test may not notice, so any report there
# fails the run, whatever the tests said. ASan's go to files (log_path);
# UBSan's only to stderr (gcc's libubsan beside libasan loses its log_path to
# ASan's), so the output of the runs and the agents' stderr (which
# test/helpers/jfe.ts writes there) are kept and searched too.
#
#   sh scripts/test-sanitize.sh [INTEGRATION-FILE-PREFIX...]
set -u
cd "$(dirname "$0")/.."

# Addon-loading unit files outside unit/native/.
UNIT="dist/test/unit/daemon/conn-table.test.js dist/test/unit/metrics/metrics.test.js"
# Integration files that drive the native code: steering (program, maps,
# listeners), data-plane (the connection core: accept, dial, sniff, records,
# relay), hostile (hostile and slow first bytes through the core), bulk (the
# relay under load), concurrency and limits (the shared connection table,
# many sockets at once), fd-baseline (fds back to their count after load).
INTEGRATION="steering data-plane hostile bulk concurrency limits fd-baseline source-ports"
[ "$#" -gt 0 ] && INTEGRATION="$*"

runtime() {
	f=$(gcc -print-file-name="$1")
	# gcc prints the bare name when it has no such file.
	if [ ! -f "$f" ]; then
		echo "Error: no $1 from gcc (Debian's g++ brings it, through libgcc-12-dev: libasan8, libubsan1)" >&2
		exit 1
	fi
	printf '%s' "$f"
}
asan=$(runtime libasan.so) || exit 1
ubsan=$(runtime libubsan.so) || exit 1

start=$(date +%s)
sh scripts/build-native.sh sanitize || exit 1

logs=$(mktemp -d /tmp/jfe-sanitize.XXXXXX)
chmod 755 "$logs" # so that a worker that drops privileges can still write its report
trap 'rm -rf "$logs"' EXIT
trap 'exit 130' INT TERM

JFE_NATIVE_ADDON=$PWD/native/build/Sanitize/jfe_native.node
JFESANITIZE_PRELOAD="$asan:$ubsan"
NODE_OPTIONS="--require $PWD/dist/test/helpers/sanitize-preload.js${NODE_OPTIONS:+ $NODE_OPTIONS}"
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:disable_coredump=1:log_path=$logs/asan"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
JFESANITIZE_LOGS=$logs
export JFE_NATIVE_ADDON JFESANITIZE_PRELOAD JFESANITIZE_LOGS NODE_OPTIONS ASAN_OPTIONS UBSAN_OPTIONS

# Fails here, once, if the sanitized addon cannot be loaded at all.
if ! LD_PRELOAD=$JFESANITIZE_PRELOAD node -e 'require(process.env.JFE_NATIVE_ADDON).numPossibleCpus()'; then
	echo "Error: the sanitized addon does not load (above)" >&2
	exit 1
fi
# run NAME COMMAND...: runs it with the runtime preloaded, its output also
# kept in $logs/NAME.out; adds NAME to $failed when it fails.
failed=""
run() {
	name=$1
	shift
	{
		LD_PRELOAD=$JFESANITIZE_PRELOAD "$@"
		echo $? >"$logs/$name.rc"
	} 2>&1 | tee "$logs/$name.out"
	[ "$(cat "$logs/$name.rc")" -eq 0 ] || failed="$failed $name"
}
units=$(find dist/test/unit/native -name '*.test.js' 2>/dev/null | sort)
# shellcheck disable=SC2086
# The unit files run the addon in their own process, which exits normally:
# there LeakSanitizer runs at exit (reports in lsan.*), and a leak counts only
# when its allocation stack passes through the addon's code (Node leaks a few
# objects of its own, OpenSSL's for one).
asan_options=$ASAN_OPTIONS
ASAN_OPTIONS="$asan_options:detect_leaks=1:exitcode=0:log_path=$logs/lsan"
run unit node --test --test-reporter=spec $units $UNIT
ASAN_OPTIONS=$asan_options
# shellcheck disable=SC2086
run integration node dist/scripts/run-integration.js $INTEGRATION

# ASan's report files, and each UBSan report ("FILE:LINE:COL: runtime error: …") in the outputs kept.
ubsan_re='^[^ ]+:[0-9]+:[0-9]+: runtime error: '
n=0
for r in $(find "$logs" -type f -name 'asan.*' | sort); do
	n=$((n + 1))
	printf '\n=== ASan report %s\n' "$(basename "$r")" >&2
	cat "$r" >&2
done
for r in $(find "$logs" -type f -name 'lsan.*' | sort); do
	# Errors other than leaks, whole; of the leaks (one paragraph each), those
	# through the addon: a frame in native/src (" ../src/x.cc:1", not
	# libsanitizer's " ../../../../src/…") or in the addon without line info.
	if grep -q 'ERROR: AddressSanitizer' "$r"; then
		n=$((n + 1))
		printf '\n=== ASan report %s\n' "$(basename "$r")" >&2
		cat "$r" >&2
		continue
	fi
	ours=$(awk -v RS= '/(Direct|Indirect) leak of/ && /( \.\.\/src\/|jfe_native\.node)/ { print; print "" }' "$r")
	[ -n "$ours" ] || continue
	n=$((n + $(printf '%s\n' "$ours" | grep -c -E '(Direct|Indirect) leak of')))
	printf '\n=== LeakSanitizer: leaks through the addon, %s\n%s\n' "$(basename "$r")" "$ours" >&2
done
for f in "$logs"/*.out "$logs"/jfe-stderr.*; do
	[ -f "$f" ] || continue
	found=$(grep -c -E "$ubsan_re" "$f")
	[ "$found" -gt 0 ] || continue
	n=$((n + found))
	printf '\n=== UBSan report(s) in %s\n' "$(basename "$f")" >&2
	grep -E -A8 "$ubsan_re" "$f" >&2
done
echo "sanitize: $(echo "$units $UNIT" | wc -w) unit files, integration: $INTEGRATION; $n sanitizer reports; $(($(date +%s) - start)) s"
if [ "$n" -gt 0 ]; then
	echo "FAILED: sanitizer reports (above)" >&2
	exit 1
fi
if [ -n "$failed" ]; then
	echo "FAILED:$failed" >&2
	exit 1
fi

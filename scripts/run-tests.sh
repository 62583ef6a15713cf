#!/bin/sh
# npm test: runs every suite named on the command line, in order, even after
# one fails, then prints one summary of every failure (and every skipped
# test, so a test that did not run is never mistaken for one that passed).
# Exits non-zero if anything failed or did not run.
#
#   sh scripts/run-tests.sh BUILD SUITE...
#
# Each argument is an npm script, with arguments if quoted together
# ("test:integration -- steering"). The first builds what the others run
# (dist/): when it fails, the others are reported as not run, and count as
# failures. The list itself lives in package.json's "test" script.
set -u

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
trap 'exit 130' INT TERM
# Through tee the reporters see a pipe: keep their colours for a terminal.
if [ -t 1 ]; then export FORCE_COLOR=1; fi

n=0
bad=0
build_failed=0
for suite in "$@"; do
	n=$((n + 1))
	log="$logs/$n"
	printf '%s\n' "$suite" >"$log.name"
	if [ "$build_failed" -eq 1 ]; then
		echo "not run: the build ($1) failed" >"$log.result"
		bad=$((bad + 1))
		continue
	fi
	printf '\n=== %s\n' "$suite"
	# $suite unquoted on purpose: a suite may carry its arguments.
	# shellcheck disable=SC2086
	{
		npm run $suite
		echo $? >"$log.rc"
	} 2>&1 | tee "$log"
	rc=$(cat "$log.rc")
	if [ "$rc" -eq 0 ]; then
		echo ok >"$log.result"
	else
		echo "FAILED (exit $rc)" >"$log.result"
		bad=$((bad + 1))
		[ "$n" -eq 1 ] && build_failed=1
	fi
done

# What a log says failed or skipped: node:test's "failing tests" section
# ("test at FILE:LINE:COL", then "✖ NAME (TIME)"), the integration runner's
# leak lines, and skipped tests ("﹣ NAME (TIME) # REASON").
details() {
	sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
		/^test at / { at = substr($0, 9); next }
		at != "" && /^✖ / { sub(/ \([0-9.]+m?s\)$/, ""); print "    " $0 "   [" at "]"; at = ""; next }
		{ at = "" }
		/^LEAK: / { print "    " $0 }
		/^[[:space:]]*﹣ / { sub(/^[[:space:]]*﹣ /, ""); sub(/ \([0-9.]+m?s\)/, ""); print "    skipped: " $0 }
	'
}

printf '\n=== summary\n'
i=0
while [ "$i" -lt "$n" ]; do
	i=$((i + 1))
	log="$logs/$i"
	printf '%-40s %s\n' "$(cat "$log.name")" "$(cat "$log.result")"
	[ -f "$log" ] || continue
	found=$(details "$log")
	if [ -n "$found" ]; then
		printf '%s\n' "$found"
	elif [ "$(cat "$log.result")" != ok ]; then
		# No test names to show (a compiler or lint error): its last lines say why.
		sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -v '^npm \(error\|warn\)\|^> ' | grep -v '^[[:space:]]*$' | tail -n 8 | sed 's/^/    /'
	fi
done
if [ "$bad" -eq 0 ]; then
	echo "all $n suites passed"
	exit 0
fi
echo "$bad of $n suites failed or did not run"
exit 1

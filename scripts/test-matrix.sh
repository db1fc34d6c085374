#!/usr/bin/env bash
# test-matrix.sh - run the whole suite against every OpenSSL of the matrix.
#
# Usage: scripts/test-matrix.sh [DIR|system ...]
#
#   (none)  the matrix: every release tarball of ../shared/openssl, built
#           once into a cache by scripts/openssl-cache.sh (sha256 checked
#           before unpacking), then the system OpenSSL (Debian's libssl-dev)
#   DIR     an OpenSSL install prefix of your own (DIR/bin/openssl, DIR/lib,
#           DIR/include)
#   system  the OpenSSL pkg-config finds, without OPENSSL_PREFIX
#
# Each leg runs `make -k matrix-leg`: every package once (the command's
# tests and test/ included) under -race, which turns checkptr on too, and the
# script checks. The system leg runs without -race: `make test` runs it
# under -race. -k: a failing step does not stop the others, so every step
# runs on every version.
#
# It prints exactly one line per version on stdout,
#   OpenSSL <version>: N passed, M failed
# where N counts test cases run ("--- PASS:" lines, subtests included, and
# the script checks' "ok" lines) and M the failed ones; a skipped test counts
# as failed (a required part was missing), and so does a step that failed
# without a failing test (a build error, a crash). Then the summary line
# "test-matrix: N passed, M failed". Progress and logs go to stderr.
# Exit status: 0 if nothing failed, 1 otherwise.
set -euo pipefail

PROG=test-matrix
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)

case "${1:-}" in
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
esac

entries=("$@")
if [ ${#entries[@]} -eq 0 ]; then
	start=$(date +%s)
	mapfile -t entries < <("$root/scripts/openssl-cache.sh") ||
		{ echo "$PROG: building the matrix's OpenSSL failed" >&2; exit 1; }
	echo "$PROG: OpenSSL builds ready in $(($(date +%s) - start)) s" >&2
	entries+=(system)
fi

logdir=$(mktemp -d "${TMPDIR:-/tmp}/test-matrix.XXXXXX")
total_pass=0
total_fail=0
n=0
for entry in "${entries[@]}"; do
	n=$((n + 1))
	makeargs=(-k matrix-leg "GOTESTFLAGS=-v")
	if [ "$entry" = system ]; then
		bin=$(command -v openssl || true)
		# make test runs the system OpenSSL under -race; here it runs
		# without, as production builds do (and in a third of the time).
		makeargs+=("LEG_RACE=")
	else
		case "$entry" in
		/*) dir=${entry%/} ;;
		*) dir="$PWD/${entry%/}" ;;
		esac
		bin="$dir/bin/openssl"
		makeargs+=("OPENSSL_PREFIX=$dir")
	fi
	version=""
	if [ -n "$bin" ] && [ -x "$bin" ]; then
		version=$("$bin" version 2>/dev/null | awk '{print $2}') || true
	fi
	if [ -z "$version" ]; then
		echo "OpenSSL ($entry): 0 passed, 1 failed"
		echo "$PROG: $entry: no runnable openssl command at '$bin'" >&2
		total_fail=$((total_fail + 1))
		continue
	fi
	log="$logdir/$n-openssl-$version.log"
	echo "$PROG: [$n/${#entries[@]}] OpenSSL $version: make ${makeargs[*]} (log: $log)" >&2
	start=$(date +%s)
	rc=0
	# An OPENSSL_PREFIX exported by the caller must not leak into the
	# system leg.
	(cd -- "$root" && env -u OPENSSL_PREFIX make "${makeargs[@]}") >"$log" 2>&1 || rc=$?
	pass=$(grep -cE '^[[:space:]]*--- PASS: |^ok   - ' "$log" || true)
	fail=$(grep -cE '^[[:space:]]*--- FAIL: |^FAIL - ' "$log" || true)
	skip=$(grep -cE '^[[:space:]]*--- SKIP: ' "$log" || true)
	fail=$((fail + skip))
	if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		fail=1
	elif [ "$pass" -eq 0 ] && [ "$fail" -eq 0 ]; then
		fail=1
	fi
	echo "OpenSSL $version: $pass passed, $fail failed"
	echo "$PROG: OpenSSL $version: $(($(date +%s) - start)) s, make exit $rc, $skip skipped" >&2
	if [ "$fail" -ne 0 ]; then
		{
			echo "---- failures in $log ----"
			grep -E '^[[:space:]]*--- (FAIL|SKIP): |^FAIL|^make: \*\*\*|panic:|fatal error' "$log" | head -n 40 || true
			echo "---- what the failing tests said ----"
			grep -E -A8 '^[[:space:]]+Error Trace:' "$log" | head -n 80 || true
			echo "---- last lines ----"
			tail -n 30 "$log"
			echo "----"
		} >&2
	fi
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
done

echo "$PROG: logs in $logdir" >&2
echo "$PROG: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]

#!/usr/bin/env bash
# test-matrix.sh - run the core test suite against several OpenSSL installs.
#
# Usage: scripts/test-matrix.sh DIR|system [DIR|system ...]
#
#   DIR     an OpenSSL install prefix (DIR/bin/openssl, DIR/lib, DIR/include),
#           e.g. one made by scripts/build-openssl.sh; the tests run with
#           `make test-core OPENSSL_PREFIX=DIR GOTESTFLAGS=-v`
#   system  the system OpenSSL found by pkg-config (no OPENSSL_PREFIX)
#
# For each entry it prints "<openssl version>: N passed, M failed", counting
# the "--- PASS:" / "--- FAIL:" lines (subtests included) of the verbose go
# test output.  A make failure without any "--- FAIL:" line (build or vet
# error, test binary crash) counts as one failure; so does a run that
# reports no test results at all.  The full output of each run is kept in a
# log directory that is printed at the end, followed by the total line
# "test-matrix: N passed, M failed".  Exit status: 0 if nothing failed, 1
# otherwise, 2 on usage errors.
#
# Environment: TEST_MATRIX_GOTESTFLAGS overrides the GOTESTFLAGS passed to
# make (default "-v"; keep -v, or nothing can be counted). Every "--- PASS:"
# line counts, so a suite that make runs several times (e.g. -count=2) is
# counted once per run.
set -euo pipefail

PROG=test-matrix

usage() {
	echo "usage: $0 DIR|system [DIR|system ...]" >&2
	echo "  DIR: OpenSSL install prefix; system: pkg-config's OpenSSL" >&2
}

if [ $# -eq 0 ]; then
	usage
	exit 2
fi
case "$1" in
-h | --help)
	usage
	exit 0
	;;
esac

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
gotestflags=${TEST_MATRIX_GOTESTFLAGS:--v}
case " $gotestflags " in
*" -v "* | *" -test.v "* | *" -v=true "*) ;;
*) echo "$PROG: warning: GOTESTFLAGS '$gotestflags' lack -v; results cannot be counted" >&2 ;;
esac

logdir=$(mktemp -d "${TMPDIR:-/tmp}/test-matrix.XXXXXX")
total_pass=0
total_fail=0
n=0

for entry in "$@"; do
	n=$((n + 1))
	makeargs=(test-core "GOTESTFLAGS=$gotestflags")
	if [ "$entry" = system ]; then
		if command -v openssl >/dev/null 2>&1; then
			label=$(openssl version 2>/dev/null || echo "system OpenSSL")
		elif ver=$(pkg-config --modversion openssl 2>/dev/null); then
			label="OpenSSL $ver (system, pkg-config)"
		else
			label="system OpenSSL"
		fi
		logname="$n-system.log"
	else
		case "$entry" in
		/*) dir=$entry ;;
		*) dir="$PWD/$entry" ;;
		esac
		dir=${dir%/}
		logname="$n-$(basename -- "$dir").log"
		if [ ! -x "$dir/bin/openssl" ]; then
			echo "$entry: not an OpenSSL prefix (no executable $dir/bin/openssl): 0 passed, 1 failed"
			total_fail=$((total_fail + 1))
			continue
		fi
		if ! label=$("$dir/bin/openssl" version 2>/dev/null); then
			label="$dir (openssl version failed)"
		fi
		makeargs+=("OPENSSL_PREFIX=$dir")
	fi

	log="$logdir/$logname"
	echo "$PROG: [$n/$#] $label: make ${makeargs[*]} (log: $log)" >&2
	rc=0
	if [ "$entry" = system ]; then
		# An OPENSSL_PREFIX exported by the caller must not leak into the
		# system run.
		(cd -- "$root" && env -u OPENSSL_PREFIX make "${makeargs[@]}") >"$log" 2>&1 || rc=$?
	else
		(cd -- "$root" && make "${makeargs[@]}") >"$log" 2>&1 || rc=$?
	fi

	pass=$(grep -cE '^[[:space:]]*--- PASS: ' "$log" || true)
	fail=$(grep -cE '^[[:space:]]*--- FAIL: ' "$log" || true)
	note=""
	if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		fail=1
		note=" (make exited $rc without a failing test; see $log)"
	elif [ "$rc" -eq 0 ] && [ "$pass" -eq 0 ] && [ "$fail" -eq 0 ]; then
		fail=1
		note=" (no test results found; is -v in GOTESTFLAGS? see $log)"
	fi
	echo "$label: $pass passed, $fail failed$note"
	if [ "$fail" -ne 0 ]; then
		{
			echo "---- last lines of $log ----"
			tail -n 25 "$log"
			echo "----"
		} >&2
	fi
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
done

echo "$PROG: logs in $logdir" >&2
echo "$PROG: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]

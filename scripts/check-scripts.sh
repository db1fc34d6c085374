#!/usr/bin/env bash
# check-scripts.sh - static and behavioural checks for scripts/ and docker/.
#
#   * bash -n and shellcheck on every scripts/*.sh
#   * the shell of every shell-form RUN in docker/Dockerfile is extracted and
#     checked with bash -n and shellcheck (the Dockerfile sets SHELL to bash)
#   * build-openssl.sh negative tests: a wrong sha256 must exit 1 with the
#     one-line mismatch message and must not unpack, create or run anything
#   * build-openssl.sh flow tests with tiny fake "OpenSSL" tarballs (no real
#     compilation): the right configure command, make targets and -j handling
#     for 1.0.2, 1.1.1 and 3.x, and the installed version printed last
#   * openssl-cache.sh: build once, reuse, rebuild a half-built prefix
#   * `go run -race` stops a checkptr probe (the suite's checkptr is -race's)
#   * every program a test runs has its Debian package in
#     scripts/test-programs.txt, `make deps` on a machine without any of
#     them would install each, and the Dockerfile's test stage runs
#     `make deps` before `make test` (the check is run on a fixture tree
#     first, where it must fail)
#
# Usage: scripts/check-scripts.sh        (from anywhere; needs shellcheck)
# Prints one line per check and finally "check-scripts: N passed, M failed";
# exits 1 if any check failed.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
build_openssl="$root/scripts/build-openssl.sh"
dockerfile="$root/docker/Dockerfile"

passed=0
failed=0

pass() {
	passed=$((passed + 1))
	echo "ok   - $*"
}

fail() {
	failed=$((failed + 1))
	echo "FAIL - $*"
}

# check DESCRIPTION COMMAND... : pass when COMMAND succeeds (output shown on failure)
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		pass "$desc"
	else
		fail "$desc"
		printf '%s\n' "$out" | sed 's/^/       /'
	fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-scripts.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

# ---------------------------------------------------------------------------
# 1. scripts/*.sh: bash -n and shellcheck
# ---------------------------------------------------------------------------
have_shellcheck=1
if ! command -v shellcheck >/dev/null 2>&1; then
	have_shellcheck=0
	fail "shellcheck is installed (apt-get install -y shellcheck)"
fi

scripts=("$root"/scripts/*.sh)
for s in "${scripts[@]}"; do
	rel=${s#"$root"/}
	check "bash -n $rel" bash -n "$s"
	if [ "$have_shellcheck" = 1 ]; then
		check "shellcheck $rel" shellcheck -x "$s"
	fi
done

# ---------------------------------------------------------------------------
# 2. docker/Dockerfile: extract the shell of each shell-form RUN
# ---------------------------------------------------------------------------
# Like Docker: joins "\"-continued lines (backslash+newline removed) and
# drops comment lines inside continuations.  ARG NAME=value becomes a shell
# assignment so the RUN commands see their variables; each RUN is wrapped in
# a subshell.
extract_dockerfile_shell() {
	awk '
	function flush(   kw, rest, name, val) {
		if (buf == "") return
		kw = toupper(buf); sub(/[ \t].*/, "", kw)
		rest = buf; sub(/^[^ \t]+[ \t]*/, "", rest)
		if (kw == "RUN") {
			# skip exec form and heredocs, strip RUN flags (--mount=... etc.)
			while (rest ~ /^--[^ \t]+[ \t]+/) sub(/^--[^ \t]+[ \t]+/, "", rest)
			if (rest !~ /^\[/ && rest !~ /^<</) {
				nrun++
				printf "# RUN at docker/Dockerfile:%d\n(\n%s\n)\n", start, rest
			}
		} else if (kw == "ARG") {
			name = rest; val = ""
			if (index(rest, "=") > 0) {
				name = substr(rest, 1, index(rest, "=") - 1)
				val = substr(rest, index(rest, "=") + 1)
				gsub(/^"|"$/, "", val)
				printf "%s=\"%s\"\n", name, val
			} else {
				printf "%s=\"${%s:-}\"\n", name, name
			}
		}
		buf = ""
	}
	BEGIN { buf = ""; nrun = 0; print "#!/usr/bin/env bash"; print "set -euo pipefail" }
	{
		line = $0
		if (buf != "" && line ~ /^[ \t]*#/) next      # comment inside continuation
		if (buf == "") {
			if (line ~ /^[ \t]*(#|$)/) next
			start = NR
		}
		if (line ~ /\\[ \t]*$/) {
			sub(/\\[ \t]*$/, "", line)
			buf = buf line    # Docker joins continuation lines as-is
			next
		}
		buf = buf line
		flush()
	}
	END { flush(); printf "# %d RUN instructions\n", nrun }
	' "$1"
}

if [ -f "$dockerfile" ]; then
	runsh="$tmp/dockerfile-run.sh"
	extract_dockerfile_shell "$dockerfile" >"$runsh"
	nrun=$(sed -n 's/^# \([0-9][0-9]*\) RUN instructions$/\1/p' "$runsh")
	if [ "${nrun:-0}" -gt 0 ]; then
		pass "docker/Dockerfile: extracted $nrun RUN instructions"
		check "bash -n on docker/Dockerfile RUN commands" bash -n "$runsh"
		if [ "$have_shellcheck" = 1 ]; then
			# SC2034: ARGs like DEBIAN_IMAGE are used by FROM, not by RUN.
			check "shellcheck on docker/Dockerfile RUN commands" \
				shellcheck --shell=bash -e SC2034 "$runsh"
		fi
	else
		fail "docker/Dockerfile: no RUN instructions found"
	fi
	# The stages the Makefile's docker targets and docker/README.md name.
	missing=""
	for stage in openssl go build test runtime; do
		grep -Eq "^FROM[[:space:]].*[[:space:]]AS[[:space:]]+${stage}[[:space:]]*$" "$dockerfile" ||
			missing="$missing $stage"
	done
	if [ -z "$missing" ]; then
		pass "docker/Dockerfile has the stages openssl, go, build, test, runtime"
	else
		fail "docker/Dockerfile lacks the stages:$missing"
	fi
else
	fail "docker/Dockerfile exists"
fi

# ---------------------------------------------------------------------------
# 3. build-openssl.sh negative tests: nothing may happen before the checksum
# ---------------------------------------------------------------------------
# A fake OpenSSL configure script (./config or ./Configure) that records its
# name and arguments in $FAKE_OPENSSL_LOG and remembers --prefix for make.
fake_configure_script() {
	cat <<SH
#!/bin/sh
printf '%s' '$1' >>"\$FAKE_OPENSSL_LOG"
printf ' %s' "\$@" >>"\$FAKE_OPENSSL_LOG"
printf '\\n' >>"\$FAKE_OPENSSL_LOG"
for a in "\$@"; do
	case "\$a" in --prefix=*) printf 'PREFIX=%s\\n' "\${a#--prefix=}" >config.mk ;; esac
done
SH
}

# A fake tarball whose build scripts log every call, so tests can see what
# ran (and that nothing ran when the checksum is wrong).
make_fake_tarball() {
	# make_fake_tarball DIR VERSION -> DIR/openssl-VERSION.tar.gz
	local dir=$1 version=$2 src
	src="$dir/stage/openssl-$version"
	mkdir -p "$src"
	fake_configure_script config >"$src/config"
	fake_configure_script Configure >"$src/Configure"
	cat >"$src/version.txt" <<EOF
OpenSSL $version-fake  1 Jan 2000
EOF
	# shellcheck disable=SC2016 # make and shell syntax, written literally
	{
		printf 'include config.mk\n'
		printf 'all:\n\techo "make all MAKEFLAGS=[$(MAKEFLAGS)]" >>"$$FAKE_OPENSSL_LOG"\n'
		printf 'build_sw:\n\techo "make build_sw MAKEFLAGS=[$(MAKEFLAGS)]" >>"$$FAKE_OPENSSL_LOG"\n'
		printf 'depend:\n\techo "make depend" >>"$$FAKE_OPENSSL_LOG"\n'
		printf 'install_sw:\n\techo "make install_sw" >>"$$FAKE_OPENSSL_LOG"\n'
		printf '\tmkdir -p "$(PREFIX)/bin"\n'
		printf '\tprintf "#!/bin/sh\\necho \\"%%s\\"\\n" "$$(cat version.txt)" >"$(PREFIX)/bin/openssl"\n'
		printf '\tchmod +x "$(PREFIX)/bin/openssl"\n'
	} >"$src/Makefile"
	chmod +x "$src/config" "$src/Configure"
	tar -czf "$dir/openssl-$version.tar.gz" -C "$dir/stage" "openssl-$version"
	rm -rf "$dir/stage"
}

neg="$tmp/neg"
mkdir -p "$neg/tmp"
make_fake_tarball "$neg" 1.0.2u
tarball="$neg/openssl-1.0.2u.tar.gz"
actual=$(sha256sum <"$tarball")
actual=${actual%% *}
wrong=0000000000000000000000000000000000000000000000000000000000000000
rc=0
TMPDIR="$neg/tmp" FAKE_OPENSSL_LOG="$neg/calls.log" \
	bash "$build_openssl" --tarball "$tarball" --sha256 "$wrong" --prefix "$neg/prefix" \
	>"$neg/stdout" 2>"$neg/stderr" || rc=$?
want_msg="build-openssl: sha256 mismatch for $tarball: want $wrong, got $actual"
if [ "$rc" -eq 1 ]; then pass "wrong sha256: exit code 1"; else fail "wrong sha256: exit code 1 (got $rc)"; fi
if [ "$(cat "$neg/stderr")" = "$want_msg" ]; then
	pass "wrong sha256: exactly one stderr line with the mismatch message"
else
	fail "wrong sha256: stderr is '$(cat "$neg/stderr")', want '$want_msg'"
fi
if [ ! -s "$neg/stdout" ]; then pass "wrong sha256: nothing on stdout"; else fail "wrong sha256: unexpected stdout: $(cat "$neg/stdout")"; fi
if [ ! -e "$neg/prefix" ]; then pass "wrong sha256: prefix not created"; else fail "wrong sha256: prefix $neg/prefix was created"; fi
extracted=$(find "$neg" -name 'openssl-1.0.2u' -type d | head -n 1)
if [ -z "$extracted" ] && [ -z "$(ls -A "$neg/tmp")" ]; then
	pass "wrong sha256: nothing unpacked (no openssl-1.0.2u/ dir, TMPDIR empty)"
else
	fail "wrong sha256: something was unpacked: ${extracted:-$(ls -A "$neg/tmp")}"
fi
if [ ! -e "$neg/calls.log" ]; then pass "wrong sha256: no build script ran"; else fail "wrong sha256: build scripts ran: $(cat "$neg/calls.log")"; fi

# A malformed digest is a usage error that creates nothing.
rc=0
bash "$build_openssl" --tarball "$tarball" --sha256 1234 --prefix "$neg/prefix2" >/dev/null 2>&1 || rc=$?
if [ "$rc" -eq 2 ] && [ ! -e "$neg/prefix2" ]; then
	pass "malformed sha256: usage error (exit 2), prefix not created"
else
	fail "malformed sha256: exit $rc (want 2) or prefix created"
fi

rc=0
err=$(bash "$build_openssl" --tarball "$neg/missing.tar.gz" --sha256 "$wrong" --prefix "$neg/prefix3" 2>&1 >/dev/null) || rc=$?
if [ "$rc" -eq 1 ] && [[ $err == "build-openssl: tarball not found: "* ]] && [ ! -e "$neg/prefix3" ]; then
	pass "missing tarball without --url: exit 1 with 'tarball not found'"
else
	fail "missing tarball without --url: exit $rc, stderr '$err'"
fi

rc=0
err=$(bash "$build_openssl" --tarball "$neg/missing.tar.gz" --sha256 "$wrong" --prefix "$neg/prefix4" \
	--url http://example.invalid/x.tar.gz 2>&1 >/dev/null) || rc=$?
if [ "$rc" -eq 1 ] && [[ $err == *"refusing non-https URL"* ]] && [ ! -e "$neg/missing.tar.gz" ]; then
	pass "plain http --url refused"
else
	fail "plain http --url: exit $rc, stderr '$err'"
fi

# ---------------------------------------------------------------------------
# 4. build-openssl.sh flow with fake tarballs (right sha256)
# ---------------------------------------------------------------------------
# flow_test VERSION JOBS EXPECTED_CONFIGURE_LINE EXPECTED_MAKE_LINES...
flow_test() {
	local version=$1 jobs=$2 want_conf=$3
	shift 3
	local d="$tmp/flow-$version" sum rc=0 prefix got_conf got_make last
	mkdir -p "$d/tmp"
	make_fake_tarball "$d" "$version"
	sum=$(sha256sum <"$d/openssl-$version.tar.gz")
	sum=${sum%% *}
	prefix="$d/prefix"
	want_conf=${want_conf//@P@/$prefix}
	# An inherited -j from a parent make must not leak into the build.
	MAKEFLAGS=-j7 TMPDIR="$d/tmp" FAKE_OPENSSL_LOG="$d/calls.log" \
		bash "$build_openssl" --tarball "$d/openssl-$version.tar.gz" \
		--sha256 "$(printf '%s' "$sum" | tr 'a-f' 'A-F')" --prefix "$prefix" --jobs "$jobs" \
		>"$d/stdout" 2>"$d/stderr" || rc=$?
	local bad=()
	[ "$rc" -eq 0 ] || bad+=("exit $rc: $(tail -n 3 "$d/stderr")")
	got_conf=$(sed -n 1p "$d/calls.log" 2>/dev/null)
	[ "$got_conf" = "$want_conf" ] || bad+=("configure is '$got_conf', want '$want_conf'")
	got_make=$(sed -n '2,$p' "$d/calls.log" 2>/dev/null | sed 's/--jobserver[^] ]*//g; s/  */ /g; s/ \]/]/; s/\[ /[/')
	[ "$got_make" = "$(printf '%s\n' "$@")" ] ||
		bad+=("make calls are '$(echo "$got_make" | tr '\n' '|')', want '$(printf '%s|' "$@")'")
	last=$(tail -n 1 "$d/stdout")
	[ "$last" = "OpenSSL $version-fake  1 Jan 2000" ] || bad+=("last stdout line is '$last', not the installed version")
	[ -z "$(ls -A "$d/tmp")" ] || bad+=("left behind $(ls -A "$d/tmp")")
	if [ ${#bad[@]} -eq 0 ]; then
		pass "fake $version: upper-case digest accepted, configure and make (targets, -j) as expected, version printed last, temporary dir removed"
	else
		fail "fake $version: $(printf '%s; ' "${bad[@]}")"
	fi
}

flow_test 1.0.2u 4 \
	'config shared no-ssl2 --prefix=@P@ --openssldir=@P@/ssl -Wl,-rpath=@P@/lib' \
	'make depend' 'make all MAKEFLAGS=[]' 'make install_sw'
flow_test 1.1.1w 3 \
	'config shared no-tests --prefix=@P@ --openssldir=@P@/ssl -Wl,-rpath=@P@/lib' \
	'make all MAKEFLAGS=[-j3]' 'make install_sw'
flow_test 3.0.15 2 \
	'Configure shared no-tests no-docs --prefix=@P@ --openssldir=@P@/ssl --libdir=lib -Wl,-rpath=@P@/lib' \
	'make build_sw MAKEFLAGS=[-j2]' 'make install_sw'

# Unsupported series: refused after the checksum, before anything runs.
uns="$tmp/unsupported"
mkdir -p "$uns"
make_fake_tarball "$uns" 0.9.8zh
sum=$(sha256sum <"$uns/openssl-0.9.8zh.tar.gz")
sum=${sum%% *}
rc=0
err=$(FAKE_OPENSSL_LOG="$uns/calls.log" bash "$build_openssl" --tarball "$uns/openssl-0.9.8zh.tar.gz" \
	--sha256 "$sum" --prefix "$uns/prefix" 2>&1 >/dev/null) || rc=$?
if [ "$rc" -eq 1 ] && [[ $err == *"unsupported OpenSSL version '0.9.8zh'"* ]] &&
	[ ! -e "$uns/prefix" ] && [ ! -e "$uns/calls.log" ]; then
	pass "unsupported version 0.9.8zh refused before building"
else
	fail "unsupported version: exit $rc, stderr '$err'"
fi

# The legacy builder reads only the root .dockerignore; BuildKit reads
# docker/Dockerfile.dockerignore. Both must exclude the same files.
check "root .dockerignore equals docker/Dockerfile.dockerignore" \
	cmp "$root/.dockerignore" "$root/docker/Dockerfile.dockerignore"

# ---------------------------------------------------------------------------
# 5. openssl-cache.sh: builds each listed tarball once, reuses a complete
#    prefix, rebuilds a half-built one, refuses a tarball SHA256SUMS lacks.
# ---------------------------------------------------------------------------
oc="$tmp/cache-flow"
mkdir -p "$oc/src" "$oc/tmp"
make_fake_tarball "$oc/src" 1.1.1w
(cd "$oc/src" && sha256sum openssl-1.1.1w.tar.gz >SHA256SUMS)
sum=$(cut -c1-12 "$oc/src/SHA256SUMS")
want_prefix="$oc/cache/openssl-1.1.1w-$sum"
run_cache() {
	TMPDIR="$oc/tmp" SSLSESSION_OPENSSL_CACHE="$oc/cache" FAKE_OPENSSL_LOG="$oc/calls.log" \
		bash "$root/scripts/openssl-cache.sh" "$oc/src" 2>"$oc/stderr"
}
calls() { if [ -f "$oc/calls.log" ]; then grep -c '^make install_sw' "$oc/calls.log"; else echo 0; fi; }
got=$(run_cache) || true
if [ "$got" = "$want_prefix" ] && [ -f "$want_prefix/.sslsession-complete" ] && [ "$(calls)" = 1 ]; then
	pass "openssl-cache: builds into openssl-<version>-<sha256 prefix> and marks it complete"
else
	fail "openssl-cache: first run printed '$got', $(calls) install(s): $(tail -n 2 "$oc/stderr")"
fi
got=$(run_cache) || true
if [ "$got" = "$want_prefix" ] && [ "$(calls)" = 1 ]; then
	pass "openssl-cache: reuses a complete prefix without building"
else
	fail "openssl-cache: second run printed '$got', $(calls) install(s)"
fi
rm -f -- "$want_prefix/.sslsession-complete"
got=$(run_cache) || true
if [ "$got" = "$want_prefix" ] && [ "$(calls)" = 2 ] && [ -f "$want_prefix/.sslsession-complete" ]; then
	pass "openssl-cache: rebuilds a prefix without its completion marker"
else
	fail "openssl-cache: half-built prefix: printed '$got', $(calls) install(s)"
fi
make_fake_tarball "$oc/src" 3.0.15
rc=0
run_cache >/dev/null || rc=$?
if [ "$rc" -eq 1 ] && grep -q 'openssl-3.0.15.tar.gz has no sha256' "$oc/stderr" && [ "$(calls)" = 2 ]; then
	pass "openssl-cache: refuses a tarball SHA256SUMS does not list"
else
	fail "openssl-cache: unlisted tarball: exit $rc, $(calls) install(s), $(tail -n 1 "$oc/stderr")"
fi

# ---------------------------------------------------------------------------
# 6. The suite runs checkptr through -race (the Makefile runs no separate
#    checkptr pass): a probe that converts a pointer past its allocation
#    must be stopped by checkptr under -race, and run to the end without.
# ---------------------------------------------------------------------------
if command -v go >/dev/null 2>&1; then
	probe="$root/scripts/testdata/checkptr"
	rc=0
	out=$(cd "$root" && CGO_ENABLED=1 go run -race "$probe" 2>&1) || rc=$?
	if [ "$rc" -ne 0 ] && [[ $out == *"fatal error: checkptr"* ]]; then
		pass "go test -race turns on checkptr (probe stopped)"
	else
		fail "checkptr under -race: exit $rc, output '$(printf '%s' "$out" | head -n 2)'"
	fi
	rc=0
	out=$(cd "$root" && go run "$probe" 2>&1) || rc=$?
	if [ "$rc" -eq 0 ] && [[ $out == "not caught"* ]]; then
		pass "without -race the probe runs to the end (it is checkptr that stops it)"
	else
		fail "probe without -race: exit $rc, output '$(printf '%s' "$out" | head -n 2)'"
	fi
else
	fail "go is on PATH (checkptr probe)"
fi

# ---------------------------------------------------------------------------
# 7. make test installs what the tests run: the programs named in
#    exec.Command / exec.CommandContext / exec.LookPath of every *_test.go
#    and of the test-support packages under internal/, each mapped to a
#    Debian package by scripts/test-programs.txt.
# ---------------------------------------------------------------------------
# test_programs TREE: "program<TAB>file:line" for each program a test runs.
test_programs() {
	local tree=$1
	(
		cd "$tree" || exit 1
		find . -path ./.git -prune -o -type f -name '*.go' \( -name '*_test.go' -o -path './internal/*' \) -print |
			sed 's|^\./||' | sort |
			xargs -r grep -nHoE 'exec\.(Command|LookPath)\("[^"]+"|exec\.CommandContext\([^,()]+, *"[^"]+"' |
			sed -E 's/^([^:]+:[0-9]+):.*"([^"]+)"$/\2\t\1/'
	) || true # no program at all is reported by the caller
}

# program_package MAPPING PROGRAM: the package listed for PROGRAM ("-" for
# none needed); nothing when PROGRAM is not listed.
program_package() {
	awk -v p="$2" '{ sub(/#.*/, "") } NF == 2 && $1 == p { print $2; exit }' "$1"
}

# uncovered_programs TREE MAPPING: one line per program a test of TREE runs
# that MAPPING does not list.
uncovered_programs() {
	local prog where
	while IFS=$'\t' read -r prog where; do
		[ -n "$prog" ] || continue
		if [ -z "$(program_package "$2" "$prog")" ]; then
			printf '%s (run at %s)\n' "$prog" "$where"
		fi
	done < <(test_programs "$1")
}

programs_file="$root/scripts/test-programs.txt"
if [ -f "$programs_file" ]; then
	# The check must be able to fail: a tree whose test runs a program the
	# mapping lacks is reported, one whose mapping lists it is not.
	fx="$tmp/programs-fixture"
	mkdir -p "$fx/internal/peer"
	cat >"$fx/x_test.go" <<'GO'
package x

import ("context"; "os/exec"; "testing")

func TestX(t *testing.T) {
	_ = exec.Command("python3", "-c", "pass")
	_ = exec.CommandContext(context.Background(), "tshark", "-v")
}
GO
	cat >"$fx/internal/peer/peer.go" <<'GO'
package peer

import "os/exec"

func find() (string, error) { return exec.LookPath("gnutls-cli") }
GO
	printf 'python3 python3\ntshark tshark # a comment\n' >"$fx/map"
	got=$(uncovered_programs "$fx" "$fx/map" | tr '\n' '|')
	if [ "$got" = "gnutls-cli (run at internal/peer/peer.go:5)|" ]; then
		pass "test programs check: reports a program the list lacks (fixture: gnutls-cli)"
	else
		fail "test programs check on the fixture reported '$got', want only gnutls-cli"
	fi
	printf 'gnutls-cli gnutls-bin\n' >>"$fx/map"
	check "test programs check: passes when every program is listed (fixture)" \
		test -z "$(uncovered_programs "$fx" "$fx/map")"

	nprog=$(test_programs "$root" | cut -f1 | sort -u | wc -l)
	missing=$(uncovered_programs "$root" "$programs_file")
	if [ "$nprog" -gt 0 ] && [ -z "$missing" ]; then
		pass "every program the tests run ($(test_programs "$root" | cut -f1 | sort -u | paste -sd' ')) is in scripts/test-programs.txt"
	else
		fail "programs the tests run without a package in scripts/test-programs.txt ($nprog found):"
		printf '%s\n' "$missing" | sed 's/^/       /'
	fi

	# `make deps` on a machine with none of the programs, nor pkg-config:
	# make sees a PATH holding awk alone (which the Makefile reads the list
	# with), and -n prints the apt-get line it would run.
	bare="$tmp/bare-path"
	mkdir -p "$bare"
	ln -s "$(command -v awk)" "$bare/awk"
	would=$(env -i PATH="$bare" HOME="$tmp" "$(command -v make)" -s -n -C "$root" deps 2>/dev/null |
		sed -n 's/.*echo "installing: \([^"]*\)".*/\1/p') || true
	lacking=""
	while read -r _ pkg; do
		[ "$pkg" = - ] || [[ " $would " == *" $pkg "* ]] || lacking="$lacking $pkg"
	done < <(sed 's/#.*//' "$programs_file" | awk 'NF == 2')
	if [ -n "$would" ] && [ -z "$lacking" ]; then
		pass "make deps on a bare machine installs every listed package ($would)"
	else
		fail "make deps on a bare machine would not install:${lacking:- anything} (it would install '$would')"
	fi

	# The Dockerfile's test stage installs them too, before the tests.
	stage=$(awk '/^FROM[ \t]/ { in_test = ($NF == "test") } in_test' "$dockerfile")
	deps_line=$(printf '%s\n' "$stage" | awk '/^RUN make deps/ { print NR; exit }')
	test_line=$(printf '%s\n' "$stage" | awk '/^RUN make test/ { print NR; exit }')
	if [ -n "$deps_line" ] && [ -n "$test_line" ] && [ "$deps_line" -lt "$test_line" ]; then
		pass "docker/Dockerfile's test stage runs make deps before make test"
	else
		fail "docker/Dockerfile's test stage must RUN make deps before RUN make test"
	fi
else
	fail "scripts/test-programs.txt exists"
fi

# ---------------------------------------------------------------------------
# Every test the docs name exists: README.md and docs/*.md cite tests as
# evidence (a name followed by "…" is a prefix, not a test).
cited=$(cd "$root" && grep -ohE '\bTest[A-Z][A-Za-z0-9_]*(…)?' README.md docs/*.md | grep -v '…$' | sort -u)
missing=""
for name in $cited; do
	grep -rqE "^func $name\(" --include='*_test.go' "$root" || missing="$missing $name"
done
if [ -n "$cited" ] && [ -z "$missing" ]; then
	pass "every test the docs cite exists ($(echo "$cited" | wc -l) names)"
else
	fail "tests cited in README.md or docs/ that do not exist:${missing:- (none cited)}"
fi

# ---------------------------------------------------------------------------
echo "check-scripts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

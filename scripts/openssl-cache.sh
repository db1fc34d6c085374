#!/usr/bin/env bash
# openssl-cache.sh - build each OpenSSL release tarball of a source directory
# once, into a cache outside the repository, and print the install prefixes.
#
# Usage: scripts/openssl-cache.sh [SRCDIR]
#
#   SRCDIR   a directory with openssl-<version>.tar.gz files and a SHA256SUMS
#            that lists each of them (default: ../shared/openssl beside the
#            repository, or $SSLSESSION_OPENSSL_SOURCES)
#
# Each tarball is checked against SHA256SUMS (by build-openssl.sh, before it
# is unpacked) and installed into
#   ${SSLSESSION_OPENSSL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sslsession}/openssl-<version>-<sha256[0:12]>
# A prefix is reused only when it is complete: the build wrote its marker file
# last, after `openssl version` ran from the prefix. A half-built prefix (an
# interrupted build) is removed and built again. Builds take a lock per
# prefix, so two runs never build into the same directory.
#
# Output: one install prefix per line on stdout, oldest version first; build
# logs go to stderr. Exit status: 0 when every tarball is ready, 1 otherwise.
set -euo pipefail

PROG=openssl-cache
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
src=${1:-${SSLSESSION_OPENSSL_SOURCES:-$root/../shared/openssl}}
cache=${SSLSESSION_OPENSSL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sslsession}
marker=.sslsession-complete

[ -d "$src" ] || { echo "$PROG: no OpenSSL source directory at $src" >&2; exit 1; }
[ -f "$src/SHA256SUMS" ] || { echo "$PROG: $src/SHA256SUMS is missing" >&2; exit 1; }
mkdir -p -- "$cache"

shopt -s nullglob
tarballs=("$src"/openssl-*.tar.gz)
shopt -u nullglob
[ "${#tarballs[@]}" -gt 0 ] || { echo "$PROG: no openssl-*.tar.gz in $src" >&2; exit 1; }

status=0
# sort -V: 1.0.2u, 1.1.1w, 3.5.7.
while IFS= read -r tarball; do
	file=$(basename -- "$tarball")
	version=${file#openssl-}
	version=${version%.tar.gz}
	sum=$(awk -v f="$file" '$2 == f || $2 == "*" f { print $1 }' "$src/SHA256SUMS")
	if ! [[ $sum =~ ^[0-9a-f]{64}$ ]]; then
		echo "$PROG: $file has no sha256 in $src/SHA256SUMS" >&2
		status=1
		continue
	fi
	prefix="$cache/openssl-$version-${sum:0:12}"
	(
		flock 9
		if [ -f "$prefix/$marker" ] && "$prefix/bin/openssl" version >/dev/null 2>&1; then
			echo "$PROG: OpenSSL $version: cached in $prefix" >&2
			exit 0
		fi
		rm -rf -- "$prefix"
		echo "$PROG: OpenSSL $version: building into $prefix" >&2
		start=$(date +%s)
		# set -e does not apply inside a subshell whose status is tested:
		# every step checks its own.
		"$root/scripts/build-openssl.sh" --tarball "$tarball" --sha256 "$sum" --prefix "$prefix" >&2 || exit 1
		"$prefix/bin/openssl" version >/dev/null || exit 1
		echo "$version $sum" >"$prefix/$marker" || exit 1
		echo "$PROG: OpenSSL $version: built in $(($(date +%s) - start)) s" >&2
	) 9>"$prefix.lock" || { echo "$PROG: OpenSSL $version: build failed" >&2; status=1; continue; }
	echo "$prefix"
done < <(printf '%s\n' "${tarballs[@]}" | sort -V)
exit "$status"

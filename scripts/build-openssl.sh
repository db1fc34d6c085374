#!/usr/bin/env bash
# build-openssl.sh - build a shared OpenSSL from a local release tarball into
# an install prefix, verifying the tarball's sha256 before anything else.
#
# Usage:
#   scripts/build-openssl.sh --tarball FILE --sha256 HEX --prefix DIR
#                            [--jobs N] [--url URL]
#
# Supported series: 1.0.2*, 1.1.1*, 3.* (detected from the top-level directory
# name inside the tarball).  The libraries get an rpath of DIR/lib, so
# DIR/bin/openssl and programs linked with -Wl,-rpath=DIR/lib find them
# without LD_LIBRARY_PATH.
#
# --url URL is only used when FILE does not exist: the tarball is downloaded
# (https only) to FILE and then verified exactly like a local file.
#
# Exit codes: 0 success, 1 verification/build failure, 2 usage error.
set -euo pipefail

PROG=build-openssl

usage() {
	cat <<USAGE
usage: $0 --tarball FILE --sha256 HEX --prefix DIR [--jobs N] [--url URL]
  --tarball FILE  OpenSSL release tarball (openssl-<version>.tar.gz)
  --sha256 HEX    expected sha256 of FILE (64 hex digits); checked before unpacking
  --prefix DIR    install prefix (created; libraries get rpath DIR/lib)
  --jobs N        parallel make jobs (default: nproc; 1.0.2 always builds serially)
  --url URL       https URL to download FILE from when FILE does not exist
USAGE
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

usage_error() {
	echo "$PROG: $*" >&2
	usage >&2
	exit 2
}

tarball=""
want=""
prefix=""
jobs=""
url=""

need_arg() {
	# $1 = option name, $2 = number of remaining args (including the option)
	if [ "$2" -lt 2 ]; then
		usage_error "option $1 requires an argument"
	fi
}

while [ $# -gt 0 ]; do
	case "$1" in
	--tarball) need_arg "$1" $#; tarball=$2; shift 2 ;;
	--tarball=*) tarball=${1#*=}; shift ;;
	--sha256) need_arg "$1" $#; want=$2; shift 2 ;;
	--sha256=*) want=${1#*=}; shift ;;
	--prefix) need_arg "$1" $#; prefix=$2; shift 2 ;;
	--prefix=*) prefix=${1#*=}; shift ;;
	--jobs | -j) need_arg "$1" $#; jobs=$2; shift 2 ;;
	--jobs=*) jobs=${1#*=}; shift ;;
	--url) need_arg "$1" $#; url=$2; shift 2 ;;
	--url=*) url=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage_error "unknown argument: $1" ;;
	esac
done

[ -n "$tarball" ] || usage_error "--tarball is required"
[ -n "$want" ] || usage_error "--sha256 is required"
[ -n "$prefix" ] || usage_error "--prefix is required"

# Normalise and validate the expected digest.
want=$(printf '%s' "$want" | tr 'A-F' 'a-f')
if ! [[ $want =~ ^[0-9a-f]{64}$ ]]; then
	usage_error "--sha256 must be 64 hex digits, got '$want'"
fi

if [ -z "$jobs" ]; then
	jobs=$(nproc 2>/dev/null || echo 1)
fi
if ! [[ $jobs =~ ^[1-9][0-9]*$ ]]; then
	usage_error "--jobs must be a positive integer, got '$jobs'"
fi

# The rpath must be absolute; resolve a relative prefix against $PWD
# (without creating it: nothing is created before the checksum passed).
case "$prefix" in
/*) ;;
*) prefix="$PWD/$prefix" ;;
esac
prefix=${prefix%/}
[ -n "$prefix" ] || usage_error "--prefix must not be /"

# ---- 1. obtain the tarball (download only when missing and --url given) ----
if [ ! -e "$tarball" ]; then
	if [ -z "$url" ]; then
		die "tarball not found: $tarball (pass --url to download it)"
	fi
	case "$url" in
	https://*) ;;
	*) die "refusing non-https URL: $url" ;;
	esac
	command -v curl >/dev/null 2>&1 || die "curl is required to download $url"
	echo "$PROG: downloading $url" >&2
	mkdir -p -- "$(dirname -- "$tarball")"
	curl -fsSL --retry 3 --proto '=https' --proto-redir '=https' \
		-o "$tarball.part" -- "$url" ||
		{ rm -f -- "$tarball.part"; die "download failed: $url"; }
	mv -f -- "$tarball.part" "$tarball"
fi
[ -f "$tarball" ] || die "not a regular file: $tarball"

# ---- 2. verify the checksum BEFORE unpacking or running anything ----------
# Read via stdin so sha256sum never escapes unusual file names.
got=$(sha256sum <"$tarball") || die "cannot compute sha256 of $tarball"
got=${got%% *}
if [ "$got" != "$want" ]; then
	die "sha256 mismatch for $tarball: want $want, got $got"
fi
echo "$PROG: sha256 OK for $tarball ($got)"

# ---- 3. unpack into a private temporary directory --------------------------
workdir=$(mktemp -d "${TMPDIR:-/tmp}/build-openssl.XXXXXX")
cleanup() { rm -rf -- "$workdir"; }
trap cleanup EXIT

tar -xf "$tarball" -C "$workdir" --no-same-owner ||
	die "cannot unpack $tarball"

shopt -s nullglob
dirs=("$workdir"/openssl-*/)
shopt -u nullglob
if [ "${#dirs[@]}" -ne 1 ]; then
	die "expected exactly one openssl-<version>/ directory in $tarball, found ${#dirs[@]}"
fi
srcdir=${dirs[0]%/}
name=$(basename -- "$srcdir")
version=${name#openssl-}

case "$version" in
1.0.2*) series=1.0.2 ;;
1.1.1*) series=1.1.1 ;;
3.*) series=3 ;;
*) die "unsupported OpenSSL version '$version' (supported: 1.0.2*, 1.1.1*, 3.*)" ;;
esac
echo "$PROG: building OpenSSL $version (series $series) into $prefix with $jobs job(s)"

# ---- 4. configure, build, install ----------------------------------------
# Ignore -j/jobserver settings inherited from a calling make: parallelism is
# controlled by --jobs only (and 1.0.2 must build serially).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS
mkdir -p -- "$prefix"
rpath="-Wl,-rpath=$prefix/lib"
cd -- "$srcdir"
# Trees exported with `git archive` from some mirrors lose their executable
# bits: restore them on every script (a file that starts with "#!").
while IFS= read -r -d '' f; do
	if [ "$(head -c 2 -- "$f")" = '#!' ]; then chmod +x -- "$f"; fi
done < <(find . -type f \( -name config -o -name Configure -o -name '*.sh' -o -name '*.pl' -o -path './util/*' -o -path './tools/*' -o -path './apps/*' \) -print0)

case "$series" in
1.0.2)
	# The 1.0.2 build system is not safe for parallel make: build serially.
	./config shared no-ssl2 --prefix="$prefix" --openssldir="$prefix/ssl" "$rpath"
	make depend
	make
	make install_sw
	;;
1.1.1)
	# no-tests: the test programs are a third of the build; 1.1.1's
	# default target builds no manual pages.
	./config shared no-tests --prefix="$prefix" --openssldir="$prefix/ssl" "$rpath"
	make -j "$jobs"
	make install_sw
	;;
3)
	# no-tests and build_sw: the library and the openssl command only; the
	# test programs and manual pages are most of a 3.x build's time.
	./Configure shared no-tests no-docs --prefix="$prefix" --openssldir="$prefix/ssl" --libdir=lib "$rpath"
	make -j "$jobs" build_sw
	make install_sw
	;;
esac

# ---- 5. report -----------------------------------------------------------
[ -x "$prefix/bin/openssl" ] || die "install finished but $prefix/bin/openssl is missing"
installed=$("$prefix/bin/openssl" version) || die "$prefix/bin/openssl does not run"
echo "$PROG: installed into $prefix:"
echo "$installed"

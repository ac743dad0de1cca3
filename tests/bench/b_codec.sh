#!/usr/bin/env bash
# b_codec.sh - the page codec (compress/) on real QEMU migration streams:
# builds a release b_codec if needed, captures two migrations of the test
# guest (tests/bench/b_codec_capture.py; cached, ~35 s the first time),
# and prints the markdown tables of tests/bench/b_codec.c: speed per core,
# size, page classes, plain zstd/LZ4 on the same bytes, the codec's targets
# with PASS/FAIL, and a byte-exact round trip of every stream in every mode.
#
#   tests/bench/b_codec.sh [BUILD_DIR] [B_CODEC_OPTION...]
#
# BUILD_DIR  a Release build of this tree, configured here if absent
#            (default $WM_BENCH_BUILD or /var/tmp/wanmig-bench-build);
#            a non-Release or sanitizer build is refused (its figures
#            would mean nothing)
# options    passed to b_codec, e.g. --runs 5, --modes lz4,zstd1,
#            --xbzrle-cache 256m (see the top of b_codec.c)
# Env: WM_CAPTURE_DIR (captures; default /var/tmp/wanmig-captures; delete
# it or run b_codec_capture.py --force to capture anew), WM_QEMU, WM_ACCEL.
# Needs QEMU, python3 and the guest build's packages (tests/guest/build.sh)
# the first time; afterwards only the captures.
# Exit: 0 (targets missed or not: it prints figures), 1 a round trip was
# not exact, 2 build or capture failed, 77 no QEMU and no captures.
set -euo pipefail
t0=$(date +%s.%N)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${WM_BENCH_BUILD:-/var/tmp/wanmig-bench-build}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
	build=$1
	shift
fi
export WM_CAPTURE_DIR=${WM_CAPTURE_DIR:-/var/tmp/wanmig-captures}
log() { echo "b_codec.sh: $*" >&2; }

cache_var() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
if [ -f "$build/CMakeCache.txt" ]; then
	if [ "$(cache_var CMAKE_BUILD_TYPE)" != Release ] ||
	    [ "$(cache_var WM_SANITIZE)" = ON ]; then
		log "$build is a $(cache_var CMAKE_BUILD_TYPE) build" \
		    "(WM_SANITIZE=$(cache_var WM_SANITIZE)): benchmarks need" \
		    "Release without sanitizers; give another BUILD_DIR"
		exit 2
	fi
else
	log "configuring a release build in $build"
	mkdir -p "$build"
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
	    -DWM_SANITIZE=OFF >"$build/b_codec.cmake.log" 2>&1 ||
	    { cat "$build/b_codec.cmake.log" >&2; exit 2; }
fi
cmake --build "$build" -j"$(nproc)" --target b_codec \
    >"$build/b_codec.build.log" 2>&1 ||
    { cat "$build/b_codec.build.log" >&2; exit 2; }

if [ ! -f "$WM_CAPTURE_DIR/capture.json" ]; then
	export WM_GUEST_DIR=${WM_GUEST_DIR:-$build/guest}
	sh "$src/tests/guest/build.sh" "$WM_GUEST_DIR" >&2 || exit 2
fi
rc=0
out=$(python3 "$here/b_codec_capture.py") || rc=$?
if [ "$rc" -ne 0 ]; then
	[ "$rc" -eq 77 ] && exit 77
	exit 2
fi
mapfile -t captures <<<"$out"
t1=$(date +%s.%N)

rc=0
"$build/b_codec" "$@" -- "${captures[@]}" || rc=$?
echo
python3 "$here/b_codec_capture.py" --describe
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
	printf "\nRuntime: %.0f s (build and captures %.0f s, b_codec %.0f s).\n",
	    c - a, b - a, c - b }'
exit "$rc"

#!/usr/bin/env bash
# test.sh - the project's test command, the one CI runs.
#
# Builds with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-test/ (and the Release build into build-rel/, which must compile
# without warnings too) and runs every test but the slow tier: unit tests, the link
# emulator's accuracy check, the relay tests, and real QEMU migrations
# through two real wanmigd (loopback, multifd, a killed gateway, and the
# emulated 150 ms WAN next to a direct migration). Needs root (network
# namespaces). Extra arguments go to ctest, e.g. `tools/test.sh -L unit`.
# The slow tier: ctest --test-dir build-test -L slow
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build-test -DWM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-test -j"$(nproc)"
# The optimised build too, -Werror as well: -O3 finds format truncations
# that the debug build does not
cmake -S . -B build-rel -DWM_SANITIZE=OFF -DWM_WERROR=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-rel -j"$(nproc)" >/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build-test --output-on-failure --timeout 900 -LE slow "$@"

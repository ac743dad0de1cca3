#!/usr/bin/env bash
# demo.sh - the main job, end to end, on one Debian machine (as root):
# installs what is missing, builds, creates two sites in network namespaces
# joined by an emulated WAN (150 ms RTT, 250 Mbit/s; tests/wanem), starts a
# wanmigd at each site from conf/examples/, live-migrates a test guest from
# site east to site west through the gateways while `wanmig status` shows
# progress, verifies the guest's RAM on both sides, then migrates the same
# guest directly QEMU to QEMU over the same link and prints both side by side.
# Options go to tests/integration/test_wan.py (e.g. --rtt-ms 80 --rate 1gbit).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: needs root (packages, network namespaces)" >&2
	exit 1
fi
tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWM_SANITIZE=OFF >/dev/null
cmake --build build -j"$(nproc)"
WM_BUILD=$PWD/build WM_GUEST_DIR=$PWD/build/guest \
	exec python3 tests/integration/test_wan.py --demo "$@"

#!/bin/bash
# bbrpair.sh - what the shell tests of the tunnel's BBR connection share:
# the emulated WAN at 150 ms RTT and 250 Mbit/s (no loss) and a wanmigd pair
# across it, east dialling west over one BBR connection, no configured rate.
#
#   set -uo pipefail
#   . "$src/tests/wanem/bbrpair.sh" NAME NS_PREFIX
#   ... traffic to 10.98.1.1:4444 in $TOPO_NS_A reaches 10.98.2.10:5003 in
#   $TOPO_NS_B; east's control socket is $work/east.sock ...
#   check $? "what was checked"
#   bbrpair_finish          # sanitizer reports, PASS or FAIL; exit status
#
# Sets src, build (WM_SRC, WM_BUILD), work (removed on exit); exits 77 if
# this machine cannot run it (not root, no ethtool, no BBR), 1 if the
# binaries are missing or the WAN does not come up.

_bp_name=$1
src=${WM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${WM_BUILD:-$src/build}
fails=0

skip() { echo "$_bp_name: SKIP: $*" >&2; exit 77; }
check() {	# COND_RC WHAT
	if [ "$1" -eq 0 ]; then
		echo "ok: $2"
	else
		echo "FAIL: $2"
		fails=$((fails + 1))
	fi
}

[ "$(id -u)" = 0 ] || skip "needs root"
command -v ethtool >/dev/null || skip "no ethtool"
modprobe tcp_bbr 2>/dev/null
grep -qw bbr /proc/sys/net/ipv4/tcp_available_congestion_control ||
	skip "the kernel offers no BBR"
for b in wanmigd wanmig wanem wanem_bulk; do
	[ -x "$build/$b" ] || { echo "$_bp_name: no $build/$b" >&2; exit 1; }
done

export WANEM_BIN=$build/wanem WM_NS_PREFIX=$2$$
export WANEM_RATE=250mbit WANEM_DELAY_MS=75 WANEM_LOSS=0
# shellcheck source=topo.sh
. "$src/tests/wanem/topo.sh"
# shellcheck source=gwpair.sh
. "$src/tests/wanem/gwpair.sh"
work=$(mktemp -d "/tmp/wm-$2-XXXXXX")
GWPAIR_DIR=$work GWPAIR_BUILD=$build
_bp_cleanup() {
	gwpair_down
	topo_down
	rm -rf "$work"
}
trap _bp_cleanup EXIT
topo_up >/dev/null || exit 1
"$src/tools/mkcerts.sh" "$work" east west >/dev/null || exit 1
gwpair_up bbr 1
check $? "east's one connection to west is up"

bbrpair_finish() {
	! grep -E "Sanitizer|runtime error" "$work/east.log" "$work/west.log"
	check $? "no sanitizer report from either daemon"
	[ "$fails" -eq 0 ] && echo PASS || echo "FAIL ($fails)"
	[ "$fails" -eq 0 ]
}

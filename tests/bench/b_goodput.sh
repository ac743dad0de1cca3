#!/usr/bin/env bash
# b_goodput.sh - goodput of the gateway tunnel across the emulated WAN, next
# to plain TCP over the same link. Prints a table; asserts nothing.
#
#   tests/bench/b_goodput.sh [BUILD_DIR]      (root; default build/)
#
# Link: tests/wanem at 150 ms RTT and 1 Gbit/s (WANEM_RATE, WANEM_DELAY_MS to
# change), loss 0, 0.1 % and 1 % (per direction, random). For each loss:
#   tcp-cubic  one plain TCP connection, CUBIC, A -> B
#   tcp-bbr    the same with BBR
#   tunnel/N   a bulk stream through wanmigd east (site A) -> TLS 1.3 ->
#              wanmigd west (site B), striped over N TLS connections
#              (`streams`, for N in WM_STREAMS, default "1 4 8"),
#              congestion = bbr (WM_CC), the default window and
#              resume-buffer (WM_WINDOW, WM_RESUME and WM_CODEC to change)
# WM_LOSSES lists the losses (default "0 0.001 0.01"); WM_TCP=0 skips the
# plain TCP columns; WM_REPEAT=N runs each tunnel cell N times; WM_IVL=S
# prints each run's goodput every S seconds on stderr.
# Goodput is measured at the receiver from 5 s to 15 s after the first byte
# (slow start excluded; WM_FROM and WM_TO change the window, the sender
# sends until 2 s past its end). The ideal is the link rate less Ethernet,
# IP and TCP headers: 1 Gbit/s x 1448/1514 = 956 Mbit/s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
bulk=$build/wanem_bulk
export WANEM_BIN=$build/wanem WM_NS_PREFIX=wmbg$$
export WANEM_RATE=${WANEM_RATE:-1gbit} WANEM_DELAY_MS=${WANEM_DELAY_MS:-75}
# The hosts' TCP receive buffers may grow to 256 MiB (tcp_rmem, in the
# namespaces only): at 0.1 % loss one connection holds a round trip of data
# out of order on top of the bandwidth-delay product (18.75 MB at 1 Gbit/s
# and 150 ms); at topo.sh's usual 64 MiB one BBR connection gets ~710
# Mbit/s instead of ~905, and the baseline would flatter the tunnel.
export TOPO_RMEM_MAX=${TOPO_RMEM_MAX:-268435456}
WM_STREAMS=${WM_STREAMS:-1 4 8}
[ "$(id -u)" -eq 0 ] || { echo "b_goodput: needs root" >&2; exit 77; }
# shellcheck source=../wanem/topo.sh
. "$src/tests/wanem/topo.sh"
# shellcheck source=../wanem/gwpair.sh
. "$src/tests/wanem/gwpair.sh"
work=$(mktemp -d /tmp/wm-bench-XXXXXX)
cleanup() {
	gwpair_down
	topo_down || true
	rm -rf "$work"
}
trap cleanup EXIT

kv() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

measure() {	# NS_SEND SEND_ADDR SEND_PORT NS_RECV RECV_ADDR RECV_PORT [CC]
	local out pid cc=()
	[ -n "${7:-}" ] && cc=(-c "$7")
	ip netns exec "$4" "$bulk" recv "$5" "$6" -f "${WM_FROM:-5}" -t "${WM_TO:-15}" -T $((${WM_TO:-15} + 45)) \
	    ${WM_IVL:+-I "$WM_IVL"} >"$work/r" &
	pid=$!
	sleep 0.3
	ip netns exec "$1" "$bulk" send "$2" "$3" -s $((${WM_TO:-15} + 2)) "${cc[@]}" >/dev/null || true
	wait "$pid" || true
	out=$(cat "$work/r")
	awk -v b="$(kv window_bps <<<"$out")" 'BEGIN { printf "%.1f", b / 1e6 }'
}

"$src/tools/mkcerts.sh" "$work" east west
GWPAIR_DIR=$work GWPAIR_BUILD=$build
site_lines=${WM_WINDOW:+window = $WM_WINDOW}
peer_lines=$(printf '%s\n' ${WM_CODEC:+"codec = $WM_CODEC"} \
    ${WM_RESUME:+"resume-buffer = $WM_RESUME"} | sed '/^$/d')

tunnel() {	# STREAMS: goodput through the gateway pair
	local t=-
	if gwpair_up "${WM_CC:-bbr}" "$1" "$site_lines" "$peer_lines"; then
		t=$(measure "$TOPO_NS_A" 10.98.1.1 4444 "$TOPO_NS_B" 10.98.2.10 5003)
	fi
	gwpair_down
	echo "$t"
}

hdr=$(for n in $WM_STREAMS; do printf ' %10s' "tunnel/$n"; done)
printf '%-8s %10s %10s%s   (goodput, Mbit/s; link %s, RTT %s ms, codec %s)\n' \
	loss tcp-cubic tcp-bbr "$hdr" "$WANEM_RATE" "$((WANEM_DELAY_MS * 2))" "${WM_CODEC:-auto}"
for loss in ${WM_LOSSES:-0 0.001 0.01}; do
	export WANEM_LOSS=$loss
	topo_up >/dev/null || exit 1
	cubic=- bbr=-
	if [ "${WM_TCP:-1}" != 0 ]; then
		cubic=$(measure "$TOPO_NS_A" 10.99.0.2 5001 "$TOPO_NS_B" 10.99.0.2 5001 cubic)
		bbr=$(measure "$TOPO_NS_A" 10.99.0.2 5002 "$TOPO_NS_B" 10.99.0.2 5002 bbr)
	fi
	row=""
	for n in $WM_STREAMS; do
		cell=""
		for _ in $(seq "${WM_REPEAT:-1}"); do
			cell+="${cell:+/}$(tunnel "$n")"
		done
		row+=$(printf ' %10s' "$cell")
	done
	topo_down || true
	printf '%-8s %10s %10s%s\n' "$(awk -v l="$loss" 'BEGIN { printf "%g%%", l * 100 }')" \
		"$cubic" "$bbr" "$row"
done

#!/usr/bin/env bash
# test_bound_long.sh - the measured in-flight bound stays about one
# bandwidth-delay product through a transfer longer than 30 s.
#
# Two real wanmigd across tests/wanem at 150 ms RTT and 250 Mbit/s, no
# loss, one BBR connection, no configured rate (so the bound is the
# measured one: rate x RTT x 1.5). A bulk sender faster than the link
# pushes 44 s through a route. The link once took the path's RTT from its
# own PINGs, whose minimum it renewed every 30 s; a PING waits behind the
# bytes queued in the connection, so 30 s into a transfer the minimum
# became 600 ms and the bound four bandwidth-delay products (28 MB instead
# of 7), which QEMU would find queued when it stops the VM (invariant 5).
# Checked, from east's status every 2 s from 32 to 42 s after the start:
#   - the path's RTT (min_rtt_ms) stays under 180 ms;
#   - the bound (inflight_cap_bytes) stays under 2.5 bandwidth-delay
#     products (11.7 MB);
#   - the goodput over seconds 4..40 is at least 85 % of the link's payload
#     rate (the bound is not too tight either).
# The same transfer shows BBR's PROBE_RTT replaced (wan_link.c,
# conn_refresh): sampled with ss every 0.25 s from 12 to 42 s, the
# connection is never in PROBE_RTT (cwnd and pacing gains both 1) and
# ends on BBR, and east's status counts at least 3 restarts
# (bbr_refreshed; one is due every 8.5 s of the busy connection).
# Exit 0 pass, 1 fail, 77 cannot run here (not root, no netns, no BBR).
#
# Environment: WM_BUILD (build directory: wanmigd, wanmig, wanem,
# wanem_bulk), WM_SRC (source tree).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../wanem/bbrpair.sh
. "${WM_SRC:-$here/../..}/tests/wanem/bbrpair.sh" test_bound_long wmbl

ip netns exec "$TOPO_NS_B" "$build/wanem_bulk" recv 10.98.2.10 5003 -f 4 -t 40 -T 90 \
    >"$work/recv" &
rpid=$!
sleep 0.3
ip netns exec "$TOPO_NS_A" "$build/wanem_bulk" send 10.98.1.1 4444 -s 44 >/dev/null &
spid=$!
sleep 12
for _ in $(seq 1 120); do
	ip netns exec "$TOPO_NS_A" ss -tin 'dport = :7800' | grep -o 'bbr:([^)]*)'
	sleep 0.25
done >"$work/ss" &
sspid=$!
sleep 20
for _ in 1 2 3 4 5 6; do
	"$build/wanmig" -s "$work/east.sock" status --json |
	    grep -o '"\(min_rtt_ms\|inflight_cap_bytes\)":[0-9.]*' | tr '\n' ' '
	echo
	sleep 2
done >"$work/status"
wait "$spid"
wait "$rpid"
wait "$sspid"
cat "$work/status"
rtt=$(grep -o '"min_rtt_ms":[0-9.]*' "$work/status" | cut -d: -f2 | sort -g | tail -1)
cap=$(grep -o '"inflight_cap_bytes":[0-9]*' "$work/status" | cut -d: -f2 | sort -n | tail -1)
[ -n "$rtt" ] && awk -v r="$rtt" 'BEGIN { exit !(r < 180) }'
check $? "the path's RTT stays the path's (highest sample ${rtt:-?} ms)"
# 250 Mbit/s x 150 ms = 4.69 MB
[ -n "$cap" ] && [ "$cap" -lt $((4687500 * 5 / 2)) ]
check $? "the bound stays about one bandwidth-delay product (highest ${cap:-?} bytes)"
bps=$(tr ' ' '\n' <"$work/recv" | sed -n 's/^window_bps=//p')
# payload per frame 1448 of 1514 bytes
awk -v b="${bps:-0}" 'BEGIN { exit !(b >= 0.85 * 250e6 * 1448 / 1514) }'
check $? "goodput $(awk -v b="${bps:-0}" 'BEGIN { printf "%.1f", b / 1e6 }') Mbit/s, at least 85 % of the link's 239"
n=$(grep -c . "$work/ss")
probe_rtt=$(grep -c 'pacing_gain:1,cwnd_gain:1)' "$work/ss")
[ "$n" -ge 100 ] && [ "$probe_rtt" -eq 0 ]
check $? "no PROBE_RTT from 12 to 42 s ($probe_rtt of $n samples)"
ip netns exec "$TOPO_NS_A" ss -tin 'dport = :7800' | grep -qw bbr
check $? "the connection ends on BBR"
refreshed=$("$build/wanmig" -s "$work/east.sock" status --json |
    grep -o '"bbr_refreshed":[0-9]*' | cut -d: -f2)
[ "${refreshed:-0}" -ge 3 ]
check $? "BBR restarted before its minimum RTT expired (bbr_refreshed ${refreshed:-?})"
bbrpair_finish

#!/usr/bin/env bash
# test_bbr_startup.sh - a tunnel at its in-flight bound lets BBR leave STARTUP.
#
# Two real wanmigd across tests/wanem at 150 ms RTT and 250 Mbit/s, no
# loss, congestion = bbr over one connection, no configured rate (so the
# bound is the measured one). A bulk sender faster than the link pushes
# 12 s through a route. Under the bound the WAN connection's socket seldom
# has bytes waiting, so BBR counts itself app-limited; before the gateway
# paced such a connection for a moment (wan_link.c, conn_pace), BBR stayed
# in STARTUP for good (pacing gain 2.89), and each PROBE_RTT ended with a
# burst at 2.89 times the rate into the bottleneck's queue. Checked, 8 s
# after the first byte:
#   - the WAN connection's BBR is out of STARTUP (ss: pacing_gain < 2);
#   - the gateway did pace it (status: bbr_paced >= 1), and the cap is
#     lifted again (ss shows no max_pacing_rate);
#   - the goodput over seconds 4..11 is at least 85 % of the link's payload
#     rate (the pacing costs no throughput).
# Exit 0 pass, 1 fail, 77 cannot run here (not root, no netns, no BBR).
#
# Environment: WM_BUILD (build directory: wanmigd, wanmig, wanem,
# wanem_bulk), WM_SRC (source tree).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../wanem/bbrpair.sh
. "${WM_SRC:-$here/../..}/tests/wanem/bbrpair.sh" test_bbr_startup wmbs

ip netns exec "$TOPO_NS_B" "$build/wanem_bulk" recv 10.98.2.10 5003 -f 4 -t 11 -T 40 \
    >"$work/recv" &
rpid=$!
sleep 0.3
ip netns exec "$TOPO_NS_A" "$build/wanem_bulk" send 10.98.1.1 4444 -s 12 >/dev/null &
spid=$!
# the first byte arrives within a second or so of the start
sleep 9
ss_out=$(ip netns exec "$TOPO_NS_A" ss -tni 'dport = :7800' | tail -1)
wait "$spid"
wait "$rpid"
echo "WAN connection: $ss_out"
gain=$(grep -o 'pacing_gain:[0-9.]*' <<<"$ss_out" | cut -d: -f2)
[ -n "$gain" ] && awk -v g="$gain" 'BEGIN { exit !(g < 2) }'
check $? "BBR has left STARTUP under the in-flight bound (pacing_gain ${gain:-?})"
paced=$("$build/wanmig" -s "$work/east.sock" status --json |
    grep -o '"bbr_paced":[0-9]*' | cut -d: -f2)
[ "${paced:-0}" -ge 1 ]
check $? "the gateway paced the connection out of STARTUP (bbr_paced ${paced:-?})"
! grep -q 'max_pacing_rate' <<<"$ss_out"
check $? "the pacing cap is lifted once BBR has left STARTUP"
bps=$(tr ' ' '\n' <"$work/recv" | sed -n 's/^window_bps=//p')
# payload per frame 1448 of 1514 bytes
awk -v b="${bps:-0}" 'BEGIN { exit !(b >= 0.85 * 250e6 * 1448 / 1514) }'
check $? "goodput $(awk -v b="${bps:-0}" 'BEGIN { printf "%.1f", b / 1e6 }') Mbit/s, at least 85 % of the link's 239"
bbrpair_finish

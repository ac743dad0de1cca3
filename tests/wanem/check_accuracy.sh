#!/bin/bash
# check_accuracy.sh - does wanem give the RTT, rate and loss it is asked for?
#
# Brings up the topology of topo.sh at 150 ms RTT and checks:
#   (a) RTT: 20 UDP echo probes 0.2 s apart A->B; mean within 5% of 150 ms.
#   (b) rate: one TCP flow A->B at 1 Gbit/s, then (runtime change) at
#       250 Mbit/s; goodput between t=3 s and t=9 s after the first byte
#       within 5% of
#           rate * (MTU - 40 - TS) / (MTU + 14 + OVERHEAD)
#       i.e. TCP payload per Ethernet frame: MTU 1500, 20 IP + 20 TCP
#       header bytes, TS = 12 with TCP timestamps (1448 of 1514 bytes),
#       OVERHEAD = wanem --overhead (0).  The receiver clamps its window to
#       1.5 BDP, so the flow keeps the link busy (inflight > BDP) and never
#       overflows the 1-BDP queue: no loss, no recovery in the window.
#   (c) loss: at 1% per direction (delay 1 ms): 5000 UDP probes 1 ms
#       apart, end-to-end loss (expected 1 - 0.99^2), and a 3 s TCP flow;
#       the fraction wanem drops per direction over both (its counters)
#       and the probe loss within 4 binomial sigma.
# Exit 0 pass, 1 fail, 77 cannot run here (not root, no netns, no ethtool).
#
# Environment: WANEM_BIN (required unless build/wanem exists), BULK_BIN
# (default: beside WANEM_BIN, else compiled from bulk.c), WM_NS_PREFIX.

set -u
here=$(cd "$(dirname "$0")" && pwd)

skip() { echo "check_accuracy: SKIP: $*" >&2; exit 77; }
fail() { echo "check_accuracy: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root"
command -v ip >/dev/null || skip "no iproute2"
command -v ethtool >/dev/null || skip "no ethtool (needed to turn offloads off)"
probe=wmprobe$$
ip netns add "$probe" 2>/dev/null || skip "cannot create network namespaces"
ip netns del "$probe"

WANEM_BIN=${WANEM_BIN:-$here/../../build/wanem}
[ -x "$WANEM_BIN" ] || fail "wanem not found; set WANEM_BIN"
export WANEM_BIN
export WM_NS_PREFIX=${WM_NS_PREFIX:-wmacc$$}

# shellcheck source=topo.sh
. "$here/topo.sh"
_topo_names
work=$(mktemp -d /tmp/wanem-acc.XXXXXX)
echo_pid=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	if [ -n "$echo_pid" ]; then
		kill "$echo_pid" 2>/dev/null
		wait "$echo_pid" 2>/dev/null
	fi
	topo_down
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

BULK_BIN=${BULK_BIN:-$(dirname "$WANEM_BIN")/wanem_bulk}
if ! [ -x "$BULK_BIN" ]; then
	BULK_BIN=$work/bulk
	${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -o "$BULK_BIN" "$here/bulk.c" ||
	    fail "cannot build bulk.c; set BULK_BIN"
fi

DELAY_MS=75
RATE1=1000000000
RATE2=250000000
LOSS=0.01
export WANEM_DELAY_MS=$DELAY_MS WANEM_RATE=$RATE1 WANEM_LOSS=0
unset WANEM_QUEUE
topo_up || fail "topology did not come up"

nsa() { ip netns exec "$TOPO_NS_A" "$@"; }
nsb() { ip netns exec "$TOPO_NS_B" "$@"; }
kv() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }
# calc EXPR: floating-point arithmetic (awk).
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
within() { awk -v m="$1" -v e="$2" -v t="$3" \
    'BEGIN { d = m - e; if (d < 0) d = -d; exit !(d <= t) }'; }

results=()
status=0
record() {	# name asked measured tolerance pass(0/1)
	local verdict=pass
	[ "$5" = 0 ] || { verdict=FAIL; status=1; }
	results+=("$(printf '%-26s %14s %14s %14s  %s' "$1" "$2" "$3" "$4" \
	    "$verdict")")
}

nsb "$BULK_BIN" echo 10.99.0.2 7000 -T 120 &
echo_pid=$!
sleep 0.2

# (a) RTT.  One probe first so that ARP (through wanem too) is done.
nsa "$BULK_BIN" ping 10.99.0.2 7000 -n 2 -i 0.2 -w 1 >/dev/null
out=$(nsa "$BULK_BIN" ping 10.99.0.2 7000 -n 20 -i 0.2 -w 1) ||
    fail "ping failed"
rtt=$(kv rtt_avg_ms <<<"$out")
want=$(calc "2 * $DELAY_MS")
within "$rtt" "$want" "$(calc "$want * 0.05")"
record "rtt_avg_ms" "$want" "$rtt" "5%" $?
record "rtt_lost" 0 "$(kv lost <<<"$out")" 0 "$([ "$(kv lost <<<"$out")" = 0 ]; echo $?)"

mtu=$(nsa cat /sys/class/net/wan0/mtu)
ts=$(nsa cat /proc/sys/net/ipv4/tcp_timestamps)
[ "$ts" = 0 ] && tsopt=0 || tsopt=12
cc_args=()
nsa grep -qw cubic /proc/sys/net/ipv4/tcp_available_congestion_control &&
    cc_args=(-c cubic)

# (b) rate
bulk_rate() {	# rate_bps label
	local rate=$1 label=$2 port=$3 clamp goodput want out pid
	clamp=$(calc "int($rate / 8 * 2 * $DELAY_MS / 1000 * 1.5)")
	clamp=${clamp%.*}
	nsb "$BULK_BIN" recv 10.99.0.2 "$port" -f 3 -t 9 -T 30 -W "$clamp" \
	    >"$work/recv.$port" &
	pid=$!
	sleep 0.3
	nsa "$BULK_BIN" send 10.99.0.2 "$port" -s 10 "${cc_args[@]}" \
	    >"$work/send.$port" || fail "bulk send failed"
	wait "$pid" || fail "bulk recv failed"
	out=$(cat "$work/recv.$port")
	goodput=$(kv window_bps <<<"$out")
	want=$(calc "$rate * ($mtu - 40 - $tsopt) / ($mtu + 14)")
	within "$goodput" "$want" "$(calc "$want * 0.05")"
	record "goodput_bps@$label" "${want%.*}" "$goodput" "5%" $?
}
bulk_rate $RATE1 1gbit 5001
topo_set rate $RATE2 || fail "cannot set the rate at runtime"
topo_set queue "$(calc "int($RATE2 / 8 * 2 * $DELAY_MS / 1000)" | cut -d. -f1)" ||
    fail "cannot set the queue at runtime"
bulk_rate $RATE2 250mbit 5002

# (c) loss, at a short delay to keep the probe run short
{ topo_set delay-ms 1 && topo_set loss $LOSS; } || fail "cannot set loss"
before=$(topo_stats)
out=$(nsa "$BULK_BIN" ping 10.99.0.2 7000 -n 5000 -i 0.001 -w 1) ||
    fail "ping failed"
nsb "$BULK_BIN" recv 10.99.0.2 5003 -T 30 >/dev/null &
pid=$!
sleep 0.2
nsa "$BULK_BIN" send 10.99.0.2 5003 -s 3 >/dev/null || fail "bulk send failed"
wait "$pid" || fail "bulk recv failed"
after=$(topo_stats)
for d in ab ba; do
	b=$(grep "^dir=$d " <<<"$before")
	a=$(grep "^dir=$d " <<<"$after")
	n=$(($(kv rx_frames <<<"$a") - $(kv rx_frames <<<"$b")))
	l=$(($(kv drop_loss <<<"$a") - $(kv drop_loss <<<"$b")))
	[ "$n" -gt 0 ] || fail "no frames counted in direction $d"
	p=$(calc "$l / $n")
	tol=$(calc "4 * sqrt($LOSS * (1 - $LOSS) / $n)")
	within "$p" "$LOSS" "$tol"
	record "loss_$d (n=$n)" "$LOSS" "$p" "$tol" $?
done
sent=$(kv sent <<<"$out")
lost=$(kv lost <<<"$out")
pe=$(calc "1 - (1 - $LOSS) ^ 2")
p=$(calc "$lost / $sent")
tol=$(calc "4 * sqrt($pe * (1 - $pe) / $sent)")
within "$p" "$pe" "$tol"
record "probe_loss (n=$sent)" "$pe" "$p" "$tol" $?

printf '%-26s %14s %14s %14s  %s\n' metric asked measured tolerance result
printf '%s\n' "${results[@]}"
echo "goodput asked = rate * ($mtu - 40 - $tsopt) / ($mtu + 14): TCP payload per Ethernet frame"
topo_stats | sed 's/^/wanem: /'
[ "$status" = 0 ] && echo "check_accuracy: PASS" || echo "check_accuracy: FAIL"
exit "$status"

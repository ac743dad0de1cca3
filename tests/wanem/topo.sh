#!/bin/bash
# topo.sh - the two-site WAN topology of the wanmig demo and tests.
#
#   ns ${P}a (site A, east)          ns ${P}w (WAN)           ns ${P}b (site B, west)
#   lo: 10.98.1.1  (gateway LAN)                               lo: 10.98.2.1  (gateway LAN)
#       10.98.1.10 (hypervisor)                                    10.98.2.10 (hypervisor)
#   wan0: 10.99.0.1/24 <--veth--> wa  [wanem]  wb <--veth--> wan0: 10.99.0.2/24
#
# wanem bridges wa and wb at L2 (ARP included), so the only path between the
# sites is through the emulator: neither site has a route to the other's LAN.
#
# As a library:   . tests/wanem/topo.sh; topo_up; trap topo_down EXIT
#                 ip netns exec "$TOPO_NS_A" ...
# As a command:   topo.sh up|down|stats|link-down|link-up|set KEY VALUE [DIR]
#                 (prefix from WM_NS_PREFIX, default "wmdemo" for the command)
#
# Environment: WM_NS_PREFIX (default wm<pid>), WANEM_BIN, WANEM_DELAY_MS (75,
# one-way), WANEM_RATE (250mbit), WANEM_LOSS (0), WANEM_QUEUE (default of
# wanem: one BDP), WANEM_SEED (1), WANEM_ARGS (extra wanem flags).
# Exported: TOPO_NS_A, TOPO_NS_B, TOPO_NS_W, TOPO_CTL, TOPO_PIDFILE, TOPO_LOG,
# TOPO_PREFIX, TOPO_RUNDIR.

_topo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_topo_names() {
	TOPO_PREFIX=${WM_NS_PREFIX:-wm$$}
	TOPO_NS_A=${TOPO_PREFIX}a
	TOPO_NS_B=${TOPO_PREFIX}b
	TOPO_NS_W=${TOPO_PREFIX}w
	TOPO_RUNDIR=/tmp/wanem-${TOPO_PREFIX}
	TOPO_CTL=$TOPO_RUNDIR/ctl
	TOPO_PIDFILE=$TOPO_RUNDIR/wanem.pid
	TOPO_LOG=$TOPO_RUNDIR/wanem.log
	export TOPO_PREFIX TOPO_NS_A TOPO_NS_B TOPO_NS_W TOPO_RUNDIR TOPO_CTL \
	    TOPO_PIDFILE TOPO_LOG
}

_topo_wanem_bin() {
	local c
	for c in "${WANEM_BIN:-}" "$_topo_dir/../../build/wanem" \
	    "$(command -v wanem 2>/dev/null)"; do
		if [ -n "$c" ] && [ -x "$c" ]; then
			echo "$c"
			return 0
		fi
	done
	echo "topo: wanem binary not found; set WANEM_BIN" >&2
	return 1
}

_topo_log() { echo "topo: $*" >&2; }

# Runs "$@", reporting the command if it fails.
_topo_run() {
	if ! "$@"; then
		_topo_log "failed: $*"
		return 1
	fi
}

# Offloads off so frames stay MTU-sized and carry full checksums.
_topo_offloads() {
	local ns=$1 dev=$2
	ip netns exec "$ns" ethtool -K "$dev" gro off gso off tso off tx off \
	    >/dev/null 2>&1 ||
	    ip netns exec "$ns" ethtool -K "$dev" gro off gso off tso off \
	    >/dev/null 2>&1 || _topo_log "ethtool -K $dev failed in $ns"
	return 0
}

# TOPO_RMEM_MAX: the largest TCP receive buffer (tcp_rmem), default 64 MiB.
_topo_sysctls() {
	local ns=$1
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
	    net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1
	ip netns exec "$ns" sysctl -qw \
	    net.ipv4.tcp_rmem="4096 131072 ${TOPO_RMEM_MAX:-67108864}" \
	    net.ipv4.tcp_wmem="4096 16384 67108864" >/dev/null ||
	    _topo_log "cannot raise tcp_rmem/tcp_wmem in $ns"
	# Global (read-only) in a child namespace on most kernels; TCP
	# autotuning only needs tcp_rmem/tcp_wmem, so this is best effort.
	ip netns exec "$ns" sysctl -qw net.core.rmem_max=67108864 \
	    net.core.wmem_max=67108864 >/dev/null 2>&1
	return 0
}

topo_up() {
	local bin delay rate loss queue i pid
	_topo_names
	bin=$(_topo_wanem_bin) || return 1
	delay=${WANEM_DELAY_MS:-75}
	rate=${WANEM_RATE:-250mbit}
	loss=${WANEM_LOSS:-0}
	queue=${WANEM_QUEUE:-}
	if ip netns list | grep -qE "^(${TOPO_NS_A}|${TOPO_NS_B}|${TOPO_NS_W})( |\$)"; then
		_topo_log "namespaces with prefix $TOPO_PREFIX exist; topo_down first"
		return 1
	fi
	mkdir -p "$TOPO_RUNDIR" || return 1
	{
		_topo_run ip netns add "$TOPO_NS_A" &&
		_topo_run ip netns add "$TOPO_NS_B" &&
		_topo_run ip netns add "$TOPO_NS_W" &&
		_topo_sysctls "$TOPO_NS_A" &&
		_topo_sysctls "$TOPO_NS_B" &&
		_topo_sysctls "$TOPO_NS_W" &&
		_topo_run ip -n "$TOPO_NS_W" link add wa type veth \
		    peer name wan0 netns "$TOPO_NS_A" &&
		_topo_run ip -n "$TOPO_NS_W" link add wb type veth \
		    peer name wan0 netns "$TOPO_NS_B" &&
		_topo_offloads "$TOPO_NS_W" wa &&
		_topo_offloads "$TOPO_NS_W" wb &&
		_topo_offloads "$TOPO_NS_A" wan0 &&
		_topo_offloads "$TOPO_NS_B" wan0 &&
		_topo_run ip -n "$TOPO_NS_A" addr add 10.99.0.1/24 dev wan0 &&
		_topo_run ip -n "$TOPO_NS_B" addr add 10.99.0.2/24 dev wan0 &&
		_topo_run ip -n "$TOPO_NS_A" addr add 10.98.1.1/24 dev lo &&
		_topo_run ip -n "$TOPO_NS_A" addr add 10.98.1.10/24 dev lo &&
		_topo_run ip -n "$TOPO_NS_B" addr add 10.98.2.1/24 dev lo &&
		_topo_run ip -n "$TOPO_NS_B" addr add 10.98.2.10/24 dev lo &&
		_topo_run ip -n "$TOPO_NS_A" link set lo up &&
		_topo_run ip -n "$TOPO_NS_B" link set lo up &&
		_topo_run ip -n "$TOPO_NS_W" link set lo up &&
		_topo_run ip -n "$TOPO_NS_W" link set wa up &&
		_topo_run ip -n "$TOPO_NS_W" link set wb up &&
		_topo_run ip -n "$TOPO_NS_A" link set wan0 up &&
		_topo_run ip -n "$TOPO_NS_B" link set wan0 up
	} || { topo_down; return 1; }

	local args=(--a wa --b wb --delay-ms "$delay" --rate "$rate"
	    --loss "$loss" --seed "${WANEM_SEED:-1}" --control "$TOPO_CTL")
	[ -n "$queue" ] && args+=(--queue "$queue")
	# shellcheck disable=SC2206
	[ -n "${WANEM_ARGS:-}" ] && args+=($WANEM_ARGS)
	ip netns exec "$TOPO_NS_W" "$bin" "${args[@]}" >"$TOPO_LOG" 2>&1 &
	pid=$!
	echo "$pid" >"$TOPO_PIDFILE"
	for ((i = 0; i < 100; i++)); do
		[ -S "$TOPO_CTL" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if ! [ -S "$TOPO_CTL" ] || ! kill -0 "$pid" 2>/dev/null; then
		_topo_log "wanem did not start:"
		cat "$TOPO_LOG" >&2
		topo_down
		return 1
	fi
	return 0
}

# Idempotent; safe from an EXIT trap.  Leaves the last stats in TOPO_LAST.
topo_down() {
	local pid i ns
	_topo_names
	if [ -f "$TOPO_PIDFILE" ]; then
		pid=$(cat "$TOPO_PIDFILE")
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null
			for ((i = 0; i < 40; i++)); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.05
			done
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
		fi
	fi
	TOPO_LAST=
	[ -f "$TOPO_LOG" ] && TOPO_LAST=$(grep "^dir=" "$TOPO_LOG")
	export TOPO_LAST
	for ns in "$TOPO_NS_A" "$TOPO_NS_B" "$TOPO_NS_W"; do
		if [ -e "/run/netns/$ns" ]; then
			# Anything else still running in there (started by a
			# test through ip netns exec) goes too.
			for pid in $(ip netns pids "$ns" 2>/dev/null); do
				kill -KILL "$pid" 2>/dev/null
			done
			ip netns del "$ns" 2>/dev/null
		fi
	done
	rm -rf "$TOPO_RUNDIR"
	return 0
}

_topo_ctl() {
	local bin
	_topo_names
	bin=$(_topo_wanem_bin) || return 1
	"$bin" --ctl "$TOPO_CTL" "$@"
}

topo_link_down() { _topo_ctl down "$@" >/dev/null; }
topo_link_up() { _topo_ctl up "$@" >/dev/null; }
topo_stats() { _topo_ctl stats; }
# topo_set delay-ms|rate|loss|queue VALUE [ab|ba]
topo_set() { _topo_ctl set "$@" >/dev/null; }
# topo_stat DIR KEY: one counter from topo_stats.
topo_stat() {
	topo_stats | awk -v d="dir=$1" -v k="$2" '$1 == d {
		for (i = 1; i <= NF; i++) { split($i, kv, "=");
		if (kv[1] == k) print kv[2] } }'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	WM_NS_PREFIX=${WM_NS_PREFIX:-wmdemo}
	cmd=${1:-}
	shift || true
	case $cmd in
	up)
		topo_up || exit 1
		echo "TOPO_PREFIX=$TOPO_PREFIX TOPO_NS_A=$TOPO_NS_A" \
		    "TOPO_NS_B=$TOPO_NS_B TOPO_NS_W=$TOPO_NS_W TOPO_CTL=$TOPO_CTL"
		;;
	down) topo_down ;;
	stats) topo_stats ;;
	link-down) topo_link_down "$@" ;;
	link-up) topo_link_up "$@" ;;
	set) topo_set "$@" ;;
	*)
		echo "usage: topo.sh up|down|stats|link-down|link-up|set KEY VALUE [DIR]" >&2
		exit 2
		;;
	esac
fi

#!/bin/bash
# gwpair.sh - a wanmigd pair across the sites of topo.sh, for shell tests
# and benchmarks.
#
#   . tests/wanem/topo.sh; . tests/wanem/gwpair.sh
#   topo_up; "$src/tools/mkcerts.sh" "$GWPAIR_DIR" east west
#   gwpair_up CONGESTION STREAMS [SITE_LINES [PEER_LINES]] || fail
#   ... traffic to 10.98.1.1:4444 arrives at 10.98.2.10:5003 ...
#   gwpair_down
#
# GWPAIR_DIR (set by the caller) holds the certificates of mkcerts.sh and
# gets east.conf, west.conf, their logs and control sockets (east.sock,
# west.sock); GWPAIR_BUILD is the build directory (wanmigd, wanmig).
# East (site A, 10.99.0.1:7800) dials west (site B, 10.99.0.2:7800) with
# the given congestion control and number of connections; west only
# accepts, so there is one session and the route "bulk" (10.98.1.1:4444 on
# east to 10.98.2.10:5003 at west) uses it. SITE_LINES and PEER_LINES are
# extra lines for east's and west's [site] and [peer] sections.
# gwpair_up returns 1 if east has not all its connections within 10 s.

GWPAIR_PIDS=()

_gwpair_conf() {	# SITE LISTEN PEER TARGETS SITE_LINES PEER_LINES [DIAL...]
	{
		printf '[site]\nname = %s\nlisten = %s\ncertificate = %s.pem\n' "$1" "$2" "$1"
		printf 'private-key = %s.key\nca = ca.pem\ncontrol = %s/%s.sock\n' \
		    "$1" "$GWPAIR_DIR" "$1"
		printf 'log-level = warn\n%s' "$5"
		printf '\n[peer %s]\ntargets = %s\n%s' "$3" "$4" "$6"
		# east only: address, congestion, streams and the route
		if [ -n "${7:-}" ]; then
			printf 'address = %s\ncongestion = %s\nstreams = %s\n' "$7" "$8" "$9"
			printf '\n[route bulk]\nlisten = 10.98.1.1:4444\npeer = %s\n' "$3"
			printf 'target = 10.98.2.10:5003\nallow = 10.98.0.0/16\n'
		fi
	} >"$GWPAIR_DIR/$1.conf"
}

gwpair_up() {	# CONGESTION STREAMS [SITE_LINES [PEER_LINES]]
	local site=${3:-} peer=${4:-}
	[ -z "$site" ] || site="$site"$'\n'
	[ -z "$peer" ] || peer="$peer"$'\n'
	_gwpair_conf east 10.99.0.1:7800 west 10.98.1.0/24 "$site" "$peer" \
	    10.99.0.2:7800 "$1" "$2"
	_gwpair_conf west 10.99.0.2:7800 east 10.98.2.0/24 "$site" "$peer"
	GWPAIR_PIDS=()
	ip netns exec "$TOPO_NS_A" "$GWPAIR_BUILD/wanmigd" -c "$GWPAIR_DIR/east.conf" \
	    2>"$GWPAIR_DIR/east.log" &
	GWPAIR_PIDS+=($!)
	ip netns exec "$TOPO_NS_B" "$GWPAIR_BUILD/wanmigd" -c "$GWPAIR_DIR/west.conf" \
	    2>"$GWPAIR_DIR/west.log" &
	GWPAIR_PIDS+=($!)
	for _ in $(seq 100); do
		"$GWPAIR_BUILD/wanmig" -s "$GWPAIR_DIR/east.sock" status --json \
		    2>/dev/null | grep -q "\"connections\":$2," && return 0
		sleep 0.1
	done
	return 1
}

gwpair_down() {
	local p
	for p in "${GWPAIR_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${GWPAIR_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	GWPAIR_PIDS=()
	return 0
}

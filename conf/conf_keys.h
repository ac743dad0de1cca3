/*
 * conf_keys.h - the keyword table of the configuration file (private to
 * conf.c).
 *
 * One row per keyword drives the parser, the defaults, the required-key
 * checks and conf_dump(), in the manner of openssh servconf.h. A row reads
 *
 *	X(id, section, keyword, type, offset, aux, flags, min, max, default)
 *
 * id		enum constant naming the row (CK_*)
 * section	CONF_S_SITE, CONF_S_PEER, CONF_S_ROUTE or CONF_S_ANNOUNCE
 * keyword	as spelled in the file
 * type		CONF_T_*: how the value is parsed and dumped
 * offset	where the value lives in struct conf_site/_peer/_route/
 *		_announce
 * aux		CONF_T_ADDR, CONF_T_UINT: offset of its has_ flag
 *		(CONF_NOAUX if none); CONF_T_CIDRS, CONF_T_MACS, CONF_T_IPS:
 *		offset of its element count
 * flags	CONF_F_REQUIRED (must be given), CONF_F_REPEAT (may repeat)
 * min, max	bounds for CONF_T_SIZE (bytes), CONF_T_DURATION (ms) and
 *		CONF_T_UINT
 * default	text parsed as if written in the file when the key is absent,
 *		or NULL (site "control" has a computed default)
 */
#ifndef WM_CONF_CONF_KEYS_H
#define WM_CONF_CONF_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define CONF_NOAUX SIZE_MAX

#define CONF_SITE_OFF(f) offsetof(struct conf_site, f)
#define CONF_PEER_OFF(f) offsetof(struct conf_peer, f)
#define CONF_ROUTE_OFF(f) offsetof(struct conf_route, f)
#define CONF_ANNOUNCE_OFF(f) offsetof(struct conf_announce, f)

#define CONF_KB (UINT64_C(1) << 10)
#define CONF_GB (UINT64_C(1) << 30)
#define CONF_SEC UINT64_C(1000)

/* Ceilings that keep hostile input from exhausting memory. */
#define CONF_LINE_MAX 4096	/* bytes per line, without the newline */
#define CONF_PEERS_MAX 256
#define CONF_ROUTES_MAX 256
#define CONF_CIDRS_MAX 256	/* per targets / allow list */
#define CONF_ANNOUNCES_MAX 256	/* [announce] sections */
#define CONF_VLAN_MAX 4094	/* highest 802.1Q VLAN ID */

#define CONF_KEYS(X)							\
	X(CK_SITE_NAME, CONF_S_SITE, "name", CONF_T_NAME,		\
	    CONF_SITE_OFF(name), CONF_NOAUX, CONF_F_REQUIRED,		\
	    0, 0, NULL)							\
	X(CK_SITE_LISTEN, CONF_S_SITE, "listen", CONF_T_ADDR,		\
	    CONF_SITE_OFF(listen), CONF_SITE_OFF(has_listen), 0,	\
	    0, 0, NULL)							\
	X(CK_SITE_CERTIFICATE, CONF_S_SITE, "certificate", CONF_T_PATH,	\
	    CONF_SITE_OFF(certificate), CONF_NOAUX, CONF_F_REQUIRED,	\
	    0, 0, NULL)							\
	X(CK_SITE_PRIVATE_KEY, CONF_S_SITE, "private-key", CONF_T_PATH,	\
	    CONF_SITE_OFF(private_key), CONF_NOAUX, CONF_F_REQUIRED,	\
	    0, 0, NULL)							\
	X(CK_SITE_CA, CONF_S_SITE, "ca", CONF_T_PATH,			\
	    CONF_SITE_OFF(ca), CONF_NOAUX, CONF_F_REQUIRED,		\
	    0, 0, NULL)							\
	X(CK_SITE_CONTROL, CONF_S_SITE, "control", CONF_T_PATH,		\
	    CONF_SITE_OFF(control), CONF_NOAUX, 0,			\
	    0, 0, NULL)							\
	X(CK_SITE_LOG_LEVEL, CONF_S_SITE, "log-level", CONF_T_LOGLEVEL,	\
	    CONF_SITE_OFF(log_level), CONF_NOAUX, 0,			\
	    0, 0, "info")						\
	X(CK_SITE_SYSLOG, CONF_S_SITE, "syslog", CONF_T_BOOL,		\
	    CONF_SITE_OFF(syslog), CONF_NOAUX, 0,			\
	    0, 0, "no")							\
	X(CK_SITE_SHUTDOWN_TIMEOUT, CONF_S_SITE, "shutdown-timeout",	\
	    CONF_T_DURATION, CONF_SITE_OFF(shutdown_timeout_ms),	\
	    CONF_NOAUX, 0, 0, 3600 * CONF_SEC, "60s")			\
	X(CK_SITE_WINDOW, CONF_S_SITE, "window", CONF_T_SIZE,		\
	    CONF_SITE_OFF(window), CONF_NOAUX, 0,			\
	    64 * CONF_KB, CONF_GB, "64m")				\
	X(CK_SITE_CODEC_MEMORY, CONF_S_SITE, "codec-memory", CONF_T_SIZE,\
	    CONF_SITE_OFF(codec_memory), CONF_NOAUX, 0,		\
	    0, 1024 * CONF_GB, "2g")					\
	X(CK_SITE_METRICS, CONF_S_SITE, "metrics", CONF_T_ADDR,		\
	    CONF_SITE_OFF(metrics), CONF_SITE_OFF(has_metrics), 0,	\
	    0, 0, NULL)							\
	X(CK_SITE_ANNOUNCE_INTERFACE, CONF_S_SITE, "announce-interface",	\
	    CONF_T_IFNAME, CONF_SITE_OFF(announce_interface),		\
	    CONF_NOAUX, 0, 0, 0, NULL)					\
	X(CK_SITE_ANNOUNCE_VLAN, CONF_S_SITE, "announce-vlan", CONF_T_UINT,	\
	    CONF_SITE_OFF(announce_vlan), CONF_NOAUX, 0,		\
	    0, CONF_VLAN_MAX, "0")					\
	X(CK_SITE_ANNOUNCE_ROUNDS, CONF_S_SITE, "announce-rounds",	\
	    CONF_T_UINT, CONF_SITE_OFF(announce_rounds), CONF_NOAUX, 0,	\
	    1, 1000, "5")						\
	X(CK_SITE_ANNOUNCE_INITIAL, CONF_S_SITE, "announce-initial",	\
	    CONF_T_DURATION, CONF_SITE_OFF(announce_initial_ms),	\
	    CONF_NOAUX, 0, 1, 100 * CONF_SEC, "50ms")			\
	X(CK_SITE_ANNOUNCE_STEP, CONF_S_SITE, "announce-step",		\
	    CONF_T_DURATION, CONF_SITE_OFF(announce_step_ms),		\
	    CONF_NOAUX, 0, 0, 100 * CONF_SEC, "100ms")			\
	X(CK_SITE_ANNOUNCE_MAX, CONF_S_SITE, "announce-max",		\
	    CONF_T_DURATION, CONF_SITE_OFF(announce_max_ms),		\
	    CONF_NOAUX, 0, 1, 100 * CONF_SEC, "550ms")			\
	X(CK_PEER_ADDRESS, CONF_S_PEER, "address", CONF_T_ADDR,		\
	    CONF_PEER_OFF(address), CONF_PEER_OFF(has_address), 0,	\
	    0, 0, NULL)							\
	X(CK_PEER_TARGETS, CONF_S_PEER, "targets", CONF_T_CIDRS,	\
	    CONF_PEER_OFF(targets), CONF_PEER_OFF(ntargets),		\
	    CONF_F_REPEAT, 0, 0, NULL)					\
	X(CK_PEER_KEEPALIVE, CONF_S_PEER, "keepalive", CONF_T_DURATION,	\
	    CONF_PEER_OFF(keepalive_ms), CONF_NOAUX, 0,			\
	    1 * CONF_SEC, 300 * CONF_SEC, "5s")				\
	X(CK_PEER_TIMEOUT, CONF_S_PEER, "timeout", CONF_T_DURATION,	\
	    CONF_PEER_OFF(timeout_ms), CONF_NOAUX, 0,			\
	    1 * CONF_SEC, 3600 * CONF_SEC, "20s")			\
	X(CK_PEER_BANDWIDTH, CONF_S_PEER, "bandwidth", CONF_T_RATE,	\
	    CONF_PEER_OFF(bandwidth_bps), CONF_NOAUX, 0,		\
	    0, 0, "unlimited")						\
	X(CK_PEER_CONGESTION, CONF_S_PEER, "congestion",		\
	    CONF_T_CONGESTION, CONF_PEER_OFF(congestion), CONF_NOAUX, 0,\
	    0, 0, "bbr")						\
	X(CK_PEER_STREAMS, CONF_S_PEER, "streams", CONF_T_UINT,		\
	    CONF_PEER_OFF(streams), CONF_NOAUX, 0, 1, 16, "1")		\
	X(CK_PEER_RESUME_WINDOW, CONF_S_PEER, "resume-window",		\
	    CONF_T_DURATION, CONF_PEER_OFF(resume_window_ms), CONF_NOAUX,\
	    0, 0, 3600 * CONF_SEC, "30s")				\
	X(CK_PEER_RESUME_BUFFER, CONF_S_PEER, "resume-buffer", CONF_T_SIZE,\
	    CONF_PEER_OFF(resume_buffer), CONF_NOAUX, 0,		\
	    1024 * CONF_KB, CONF_GB, "128m")				\
	X(CK_PEER_CODEC, CONF_S_PEER, "codec", CONF_T_CODEC,		\
	    CONF_PEER_OFF(codec), CONF_NOAUX, 0, 0, 0, "auto")		\
	X(CK_PEER_XBZRLE_CACHE, CONF_S_PEER, "xbzrle-cache", CONF_T_SIZE,\
	    CONF_PEER_OFF(xbzrle_cache), CONF_NOAUX, 0,		\
	    0, 4 * CONF_GB, "64m")					\
	X(CK_PEER_DEDUP_CACHE, CONF_S_PEER, "dedup-cache", CONF_T_SIZE,	\
	    CONF_PEER_OFF(dedup_cache), CONF_NOAUX, 0,			\
	    0, 4 * CONF_GB, "64m")					\
	X(CK_ROUTE_LISTEN, CONF_S_ROUTE, "listen", CONF_T_ADDR,		\
	    CONF_ROUTE_OFF(listen), CONF_NOAUX, CONF_F_REQUIRED,	\
	    0, 0, NULL)							\
	X(CK_ROUTE_PEER, CONF_S_ROUTE, "peer", CONF_T_NAME,		\
	    CONF_ROUTE_OFF(peer), CONF_NOAUX, CONF_F_REQUIRED,		\
	    0, 0, NULL)							\
	X(CK_ROUTE_TARGET, CONF_S_ROUTE, "target", CONF_T_ADDR,		\
	    CONF_ROUTE_OFF(target), CONF_NOAUX, CONF_F_REQUIRED,	\
	    0, 0, NULL)							\
	X(CK_ROUTE_ALLOW, CONF_S_ROUTE, "allow", CONF_T_CIDRS,		\
	    CONF_ROUTE_OFF(allow), CONF_ROUTE_OFF(nallow),		\
	    CONF_F_REQUIRED | CONF_F_REPEAT, 0, 0, NULL)		\
	X(CK_ROUTE_BANDWIDTH, CONF_S_ROUTE, "bandwidth", CONF_T_RATE,	\
	    CONF_ROUTE_OFF(bandwidth_bps), CONF_NOAUX, 0,		\
	    0, 0, "unlimited")						\
	X(CK_ROUTE_IDLE_TIMEOUT, CONF_S_ROUTE, "idle-timeout",		\
	    CONF_T_DURATION, CONF_ROUTE_OFF(idle_timeout_ms), CONF_NOAUX,\
	    0, 1 * CONF_SEC, 3600 * CONF_SEC, "60s")			\
	X(CK_ANNOUNCE_PEER, CONF_S_ANNOUNCE, "peer", CONF_T_NAME,	\
	    CONF_ANNOUNCE_OFF(peer), CONF_NOAUX, 0, 0, 0, NULL)		\
	X(CK_ANNOUNCE_MAC, CONF_S_ANNOUNCE, "mac", CONF_T_MACS,		\
	    CONF_ANNOUNCE_OFF(macs), CONF_ANNOUNCE_OFF(nmacs),		\
	    CONF_F_REQUIRED | CONF_F_REPEAT, 0, 0, NULL)		\
	X(CK_ANNOUNCE_IP, CONF_S_ANNOUNCE, "ip", CONF_T_IPS,		\
	    CONF_ANNOUNCE_OFF(ips), CONF_ANNOUNCE_OFF(nips),		\
	    CONF_F_REPEAT, 0, 0, NULL)					\
	X(CK_ANNOUNCE_INTERFACE, CONF_S_ANNOUNCE, "interface",		\
	    CONF_T_IFNAME, CONF_ANNOUNCE_OFF(interface), CONF_NOAUX, 0,	\
	    0, 0, NULL)							\
	X(CK_ANNOUNCE_VLAN, CONF_S_ANNOUNCE, "vlan", CONF_T_UINT,	\
	    CONF_ANNOUNCE_OFF(vlan), CONF_ANNOUNCE_OFF(has_vlan), 0,	\
	    0, CONF_VLAN_MAX, NULL)

#endif

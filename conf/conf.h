/*
 * conf.h - the gateway's configuration file.
 *
 * INI-style: "[site]", "[peer NAME]", "[route NAME]", "[announce ROUTE]"
 * sections, "key = value" lines, '#' or ';' starts a comment (also after a
 * value). Every error is reported as "FILE:LINE: KEY: message"; parsing
 * goes on after an error so that one run lists them all, and the result is
 * refused at the end.
 *
 * Line-at-a-time API (conf_parse_new / _line / _finish) so that a fuzzer can
 * drive it; conf_load() reads a whole file through it.
 */
#ifndef WM_CONF_CONF_H
#define WM_CONF_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wm_util.h"

#define CONF_NAME_MAX 64 /* site, peer and route names, incl. NUL */
#define CONF_IFNAME_MAX 16 /* network interface names, incl. NUL (IFNAMSIZ) */
#define CONF_ANNOUNCE_MACS_MAX 32 /* mac = per [announce] section */
#define CONF_ANNOUNCE_IPS_MAX 64  /* ip = per [announce] section */

struct conf_site {
	char name[CONF_NAME_MAX];       /* name: required; [A-Za-z0-9._-] */
	struct wm_addr listen;          /* listen: WAN listener for peers */
	bool has_listen;
	char certificate[PATH_MAX];     /* certificate: PEM, required */
	char private_key[PATH_MAX];     /* private-key: PEM, required */
	char ca[PATH_MAX];              /* ca: PEM trust anchor(s), required */
	char control[PATH_MAX];         /* control: UNIX socket path; default
	                                   /run/wanmig/<name>.sock */
	int log_level;                  /* log-level: error|warn|info|debug (info) */
	bool syslog;                    /* syslog: yes|no (no) */
	uint64_t shutdown_timeout_ms;   /* shutdown-timeout: duration (60s) */
	uint64_t window;                /* window: per-stream flow window, size
	                                   64k..1g (8m) */
	uint64_t codec_memory;          /* codec-memory: what all migrations'
	                                   codec caches may take together,
	                                   0..1t (2g) */
	struct wm_addr metrics;         /* metrics: Prometheus endpoint
	                                   (optional, e.g. 127.0.0.1:9780) */
	bool has_metrics;
	/* Announcing migrated VMs on this site's L2 segment (gw_rarp.c). */
	char announce_interface[CONF_IFNAME_MAX]; /* announce-interface:
	                                   where frames go ("" = none) */
	uint32_t announce_vlan;         /* announce-vlan: 802.1Q VID 0..4094,
	                                   0 = untagged (0) */
	uint32_t announce_rounds;       /* announce-rounds: 1..1000 (5) */
	uint64_t announce_initial_ms;   /* announce-initial: first gap (50ms) */
	uint64_t announce_step_ms;      /* announce-step: gap growth (100ms) */
	uint64_t announce_max_ms;       /* announce-max: gap ceiling (550ms) */
	int line;                       /* line of the [site] header */
};

struct conf_peer {
	char name[CONF_NAME_MAX];       /* from [peer NAME] */
	struct wm_addr address;         /* address: dial here (optional) */
	bool has_address;
	struct wm_cidr *targets;        /* targets: repeatable, also
	                                   comma/space separated lists */
	size_t ntargets;
	uint64_t keepalive_ms;          /* keepalive: duration 1s..300s (5s) */
	uint64_t timeout_ms;            /* timeout: peer declared dead after
	                                   this long without traffic (20s) */
	uint64_t bandwidth_bps;         /* bandwidth: shaper rate toward this
	                                   peer, bits/s; 0 = unlimited (0) */
	int congestion;                 /* congestion: CONF_CC_* (bbr) */
	uint32_t streams;               /* streams: TLS connections we dial
	                                   and stripe over, 1..16 (4) */
	uint64_t resume_window_ms;      /* resume-window: how long a tunnel
	                                   without connections waits to
	                                   resume, 0..1h (30s) */
	uint64_t resume_buffer;         /* resume-buffer: bytes kept for
	                                   resending and held ahead of a gap,
	                                   each way, 1m..1g (64m) */
	int codec;                      /* codec: CONF_CODEC_* (auto) */
	uint64_t xbzrle_cache;          /* xbzrle-cache: page cache for
	                                   deltas, per migration, 0..4g (64m) */
	uint64_t dedup_cache;           /* dedup-cache: content cache for
	                                   references, per migration (64m) */
	int line;
};

struct conf_route {
	char name[CONF_NAME_MAX];       /* from [route NAME] */
	struct wm_addr listen;          /* listen: required */
	char peer[CONF_NAME_MAX];       /* peer: required, must name a [peer] */
	struct wm_addr target;          /* target: required */
	struct wm_cidr *allow;          /* allow: repeatable; required (at
	                                   least one): 0.0.0.0/0 allows all */
	size_t nallow;
	uint64_t bandwidth_bps;         /* bandwidth: cap per migration of
	                                   this route, bits/s; 0 = none (0) */
	uint64_t idle_timeout_ms;       /* idle-timeout: a migration that
	                                   moves no byte this long (tunnel
	                                   up) is failed, 1s..1h (60s) */
	int line;
};

/* TCP congestion control of the WAN connections. */
enum conf_congestion {
	CONF_CC_SYSTEM = 0,             /* the kernel's default */
	CONF_CC_BBR = 1,                /* BBR, where the kernel has it */
	CONF_CC_CUBIC = 2,
};

/* codec = auto | none | lz4 | zstd */
enum conf_codec {
	CONF_CODEC_AUTO = 0,            /* by the link's rate and the CPU's */
	CONF_CODEC_NONE = 1,            /* pages and caches, no compressor */
	CONF_CODEC_LZ4 = 2,
	CONF_CODEC_ZSTD = 3,
};

/* A MAC address to announce: unicast, not all-zero. */
struct conf_mac {
	uint8_t b[6];
};

/* A VM address to announce (gratuitous ARP or unsolicited NA). */
struct conf_ip {
	int family;                     /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	size_t mac;                     /* index in macs[]: the NIC it is on */
};

/*
 * [announce ROUTE]: what the destination site announces when a migration
 * that arrived over the route named ROUTE (the name the sending gateway
 * gives it) completes here. Each "ip =" belongs to the "mac =" above it.
 */
struct conf_announce {
	char name[CONF_NAME_MAX];       /* from [announce ROUTE] */
	char peer[CONF_NAME_MAX];       /* peer: only from this [peer]
	                                   (optional, "" = any peer) */
	struct conf_mac *macs;          /* mac: repeatable, required */
	size_t nmacs;
	struct conf_ip *ips;            /* ip: repeatable, optional */
	size_t nips;
	char interface[CONF_IFNAME_MAX]; /* interface: overrides [site]
	                                   announce-interface */
	uint32_t vlan;                  /* vlan: overrides announce-vlan */
	bool has_vlan;
	int line;
};

struct conf {
	char path[PATH_MAX];            /* the file as given */
	char dir[PATH_MAX];             /* its folder: relative paths resolve here */
	struct conf_site site;
	struct conf_peer *peers;
	size_t npeers;
	struct conf_route *routes;
	size_t nroutes;
	struct conf_announce *announces;
	size_t nannounces;
};

/* Receives each error message ("FILE:LINE: KEY: message", no newline). */
typedef void (*conf_error_cb)(const char *msg, void *arg);

struct conf_parse;

/*
 * Starts a parse of a file named path (used for messages and to resolve
 * relative paths). errcb may be NULL (errors are then only counted).
 * Returns NULL on allocation failure.
 */
struct conf_parse *conf_parse_new(const char *path, conf_error_cb errcb,
    void *arg);
/* Feeds one line (without or with its trailing newline), numbered from 1. */
void conf_parse_line(struct conf_parse *p, const char *line, int lineno);
/*
 * Applies defaults and cross-checks (route -> peer exists, unique names and
 * listeners, required keys). On success stores a new conf in *out and
 * returns 0; otherwise returns WM_ERR_CONFIG (errors were reported) or
 * WM_ERR_NOMEM. Frees p in every case.
 */
int conf_parse_finish(struct conf_parse *p, struct conf **out);

/* Reads and parses a whole file. Same returns as conf_parse_finish, plus
 * WM_ERR_SYS (reported through errcb) if the file cannot be read. */
int conf_load(const char *path, struct conf **out, conf_error_cb errcb,
    void *arg);

/* Frees a conf; NULL is accepted. */
void conf_free(struct conf *c);

/* Looks up a peer or route by name; NULL if none. */
const struct conf_peer *conf_peer_find(const struct conf *c, const char *name);
const struct conf_route *conf_route_find(const struct conf *c, const char *name);
/*
 * The [announce route] section for a migration that came from peer over
 * route; NULL if there is none or it names another peer.
 */
const struct conf_announce *conf_announce_find(const struct conf *c,
    const char *route, const char *peer);
/* Parses "52:54:00:12:34:56" (hex, ':' separated). Returns 0 or
 * WM_ERR_INVAL; unicast and non-zero are the caller's checks. */
int conf_mac_parse(const char *s, uint8_t mac[6]);

/* Writes the effective configuration (defaults filled in) in file syntax. */
void conf_dump(const struct conf *c, FILE *f);

#endif

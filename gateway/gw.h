/*
 * gw.h - the daemon's state, shared by gateway/ modules (internal).
 *
 * One event loop; no threads. The configuration in force is gw->conf;
 * objects that must outlive a reload (peers, running migrations) copy
 * what they need from it or look it up again by name.
 */
#ifndef WM_GATEWAY_GW_H
#define WM_GATEWAY_GW_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "pc.h"
#include "wan.h"
#include "wm_util.h"

/* Exit codes of wanmigd (sysexits.h values where one fits). */
#define GW_EXIT_OK 0
#define GW_EXIT_FORCED 1       /* stopped, but migrations had to be cut */
#define GW_EXIT_USAGE 64
#define GW_EXIT_UNAVAILABLE 69 /* cannot listen on a configured address */
#define GW_EXIT_SOFTWARE 70
#define GW_EXIT_CONFIG 78      /* invalid configuration or certificates */

#define GW_HISTORY 32          /* finished migrations kept for status */
#define GW_CONNECT_TIMEOUT_S 10
#define GW_PENDING_MAX 64     /* WAN connections still in their handshake */
#define GW_SOURCE_RCVBUF (256 << 10) /* kernel buffer, source QEMU socket */
#define GW_DIAL_BACKOFF_MIN_MS 500
#define GW_DIAL_BACKOFF_MAX_MS 30000
#define GW_RESUME_BACKOFF_MAX_MS 1000 /* while a session waits to resume */
#define GW_HANDSHAKE_MS 5000
#define GW_ACCEPTED_MAX 4     /* sessions a peer may have dialled to us */

struct gw;
struct gw_peer;
struct gw_mig;
struct gw_rarp;

/*
 * One tunnel session with a peer: the one we dial (its connections
 * re-dialled within the resume window), or one the peer dialled.
 */
struct gw_link {
	TAILQ_ENTRY(gw_link) entry;
	struct gw *gw;
	struct gw_peer *peer;
	struct wan_link *wl;        /* NULL once down */
	bool dialled;
	char remote[WM_ADDRSTRLEN]; /* the last connection's far end */
};
TAILQ_HEAD(gw_link_list, gw_link);

/* An accepted connection before its HELLO names a session. */
struct gw_pconn {
	TAILQ_ENTRY(gw_pconn) entry;
	struct gw *gw;
	struct gw_peer *peer;       /* NULL until the certificate named it */
	struct wan_conn *conn;
	char remote[WM_ADDRSTRLEN];
};
TAILQ_HEAD(gw_pconn_list, gw_pconn);

struct gw_peer {
	TAILQ_ENTRY(gw_peer) entry;
	struct gw *gw;
	char name[CONF_NAME_MAX];
	bool removed;               /* gone from the config: no new work */
	struct gw_link_list links;
	struct gw_link *dialling;   /* our dialled session, up, resuming or
	                               dialling its first connection */
	struct event *dial_timer;
	uint64_t backoff_ms;
	uint64_t bytes_sent, bytes_received; /* of links already gone */
	uint64_t connects, disconnects;
	uint64_t outages, resumes;  /* of sessions already gone */
	char last_error[256];
	struct wan_shaper *shaper;  /* every stream toward this peer */
	bool rate_overridden;       /* set at run time (wanmig set) */
	/* achieved rates, sampled once a second by gw_rates_tick() */
	uint64_t rate_prev_sent, rate_prev_rcvd;
	uint64_t rate_sent_bps, rate_rcvd_bps;
};
TAILQ_HEAD(gw_peer_list, gw_peer);

struct gw_route {
	TAILQ_ENTRY(gw_route) entry;
	struct gw *gw;
	char name[CONF_NAME_MAX];
	struct wm_addr listen;
	struct evconnlistener *lev;
	bool seen;                  /* reload bookkeeping */
	bool cap_overridden;        /* set at run time (wanmig set) */
	uint64_t cap_bps;           /* then this per-migration cap */
};
TAILQ_HEAD(gw_route_list, gw_route);

enum gw_mig_state {
	GW_MIG_ACTIVE,
	GW_MIG_COMPLETED,
	GW_MIG_FAILED,
};

/* One hypervisor connection of a migration. */
struct gw_stream {
	TAILQ_ENTRY(gw_stream) entry;
	struct gw_mig *mig;
	struct wan_stream *ws;      /* NULL once closed */
	struct bufferevent *connecting; /* inbound: connect in progress */
	bool attached;              /* inbound: connected to the target */
	uint16_t index;
	uint64_t codec_mem;         /* reserved of gw->codec_mem_used */
};
TAILQ_HEAD(gw_stream_list, gw_stream);

struct gw_mig {
	TAILQ_ENTRY(gw_mig) entry;
	struct gw *gw;
	uint64_t id;                /* ours, unique in this daemon's life */
	uint64_t remote_id;         /* inbound: the sending gateway's id */
	bool inbound;               /* we deliver to a destination QEMU */
	char route[CONF_NAME_MAX];
	char peer[CONF_NAME_MAX];
	char source[WM_ADDRSTRLEN]; /* outbound: the source hypervisor */
	char target[WM_ADDRSTRLEN]; /* destination QEMU's address */
	struct wm_addr source_addr;
	struct wm_addr target_addr;
	struct gw_link *link;       /* every stream of it rides this link */
	enum gw_mig_state state;
	char error[256];
	time_t started_wall;
	uint64_t started_ms, ended_ms;
	struct gw_stream_list streams;
	uint16_t nstreams;          /* ever opened */
	bool connect_busy;          /* inbound: one connect at a time */
	/* Totals of streams already closed; live ones are summed on demand. */
	uint64_t bytes_fwd, bytes_ret, bytes_wan;
	struct wan_shaper *cap;     /* outbound: the route's per-migration cap */
	uint64_t rate_prev_wan, rate_wan_bps; /* sampled by gw_rates_tick() */
	uint64_t idle_prev, idle_since_ms;    /* see gw_mig_idle_tick() */
	/*
	 * Inbound: the destination QEMU's return path, read as it goes by
	 * (be16 type, be16 len, body). Its SHUT message is the only proof
	 * that the destination loaded the state: a migration is "confirmed"
	 * only with SHUT 0, and only a confirmed one is announced.
	 */
	struct {
		uint8_t hdr[4], body[4];
		uint8_t hlen, blen;
		uint16_t type, len, left;
		bool done;                  /* SHUT seen or format not followed */
		bool lost;                  /* format not followed: no verdict */
		bool seen;                  /* a whole message went by */
		bool shut;
		uint32_t shut_value;
	} rp;
	bool confirmed;
	/* The page codec: outbound, what the encoders did (closed streams;
	 * gw_mig_codec() adds the live ones); inbound, only whether the
	 * streams came encoded. */
	bool encoded;
	enum pc_algo algo;
	struct pc_stats codec;
	/* Inbound, completed: announcing the VM here (gw_rarp.c; owned,
	 * freed by gw_rarp_mig_cleanup()). */
	struct gw_rarp *announce;
};
TAILQ_HEAD(gw_mig_list, gw_mig);

struct gw {
	struct event_base *base;
	struct conf *conf;
	char conf_path[PATH_MAX];
	SSL_CTX *tls;
	struct evconnlistener *wan_lev;
	struct wm_addr wan_listen;
	struct evconnlistener *ctl_lev;
	char ctl_path[PATH_MAX];
	struct gw_peer_list peers;
	struct gw_pconn_list pending;  /* accepted, before their HELLO */
	struct gw_route_list routes;
	struct gw_mig_list migs;       /* active first, then history */
	unsigned nhistory;
	uint64_t next_mig_id;
	bool stopping;
	uint64_t stop_deadline_ms;
	struct event *stop_timer;
	struct event *rate_timer;
	struct event *listen_timer;    /* re-enables listeners after EMFILE */
	int exit_code;
	time_t started_wall;
	uint64_t mig_completed, mig_failed;
	uint64_t codec_mem_used;       /* reserved by live codecs, bytes */
	struct gw_metrics *metrics;    /* gw_metrics.c: counters, endpoint */
	struct gw_notify *notify;      /* gw_notify.c: systemd, or NULL */
};

/* gw_peer.c */
/* A peer's figures: tunnel bytes of links gone and live, live links and
 * streams, and the stats of the link new migrations use (best). */
struct gw_peer_totals {
	uint64_t sent, rcvd, resent;
	uint32_t links, streams, conns;
	uint64_t outages, resumes;
	bool resuming;                 /* a session waits for a connection */
	struct gw_link *best;          /* NULL when not connected */
	struct wan_link_stats best_st; /* valid when best != NULL */
};
void gw_peer_totals(struct gw_peer *p, struct gw_peer_totals *t);
/* Samples achieved rates of peers and migrations (call once a second). */
void gw_rates_tick(struct gw *gw);
/* Runtime rate change: peer rate or route cap, bits/s (0 = unlimited). */
int gw_set_peer_rate(struct gw *gw, const char *peer, uint64_t bps,
    char *err, size_t errlen);
int gw_set_route_rate(struct gw *gw, const char *route, uint64_t bps,
    char *err, size_t errlen);
int gw_peers_apply(struct gw *gw);          /* (re)create from gw->conf */
int gw_wan_listen(struct gw *gw);
void gw_peers_free(struct gw *gw);
struct gw_peer *gw_peer_find(struct gw *gw, const char *name);
/* A ready link to the peer (dialled preferred), or NULL. */
struct gw_link *gw_peer_link(struct gw_peer *p);
/* The rate toward a peer, bytes/s: its shaper's, else the link's measured
 * one; 0 if neither is known. */
uint64_t gw_peer_rate_Bps(struct gw *gw, const char *name);
bool gw_peer_connected(struct gw_peer *p);

/* gw_route.c */
int gw_routes_apply(struct gw *gw);
void gw_routes_free(struct gw *gw);

/* gw_mig.c */
/* A hypervisor connected to a route: start or join a migration. */
void gw_mig_accept(struct gw *gw, struct gw_route *r, evutil_socket_t fd,
    const struct sockaddr *sa, int salen);
/* The peer on link gl opened stream ws (see wan_link_cbs.open). */
int gw_mig_remote_open(struct gw_link *gl, struct wan_stream *ws,
    const struct wan_open *o, char *why, size_t whylen);
size_t gw_mig_active_count(struct gw *gw);
/* Fails outbound migrations that moved no byte for their route's
 * idle-timeout while their tunnel was up (call once a second). */
void gw_mig_idle_tick(struct gw *gw);
/* Resets every active migration (fail closed) with the reason given. */
void gw_mig_abort_all(struct gw *gw, const char *why);
void gw_migs_free(struct gw *gw);
const char *gw_mig_state_name(enum gw_mig_state s);
/* Byte counters of a migration, live streams included: raw bytes source to
 * destination, raw bytes of the return path, tunnel bytes both ways. */
void gw_mig_totals(const struct gw_mig *m, uint64_t *fwd, uint64_t *ret,
    uint64_t *wan);
/* The encoders' figures of an outbound migration, live streams included. */
void gw_mig_codec(const struct gw_mig *m, struct pc_stats *st);

/* gw_ctl.c */
int gw_ctl_listen(struct gw *gw);
void gw_ctl_close(struct gw *gw);
/* The status document served to `wanmig status` (caller owns it). */
struct json_object *gw_status_json(struct gw *gw);

/* gw_metrics.c */
/* (Re)binds the Prometheus endpoint as gw->conf says (closes it when the
 * key is gone); 0, or -1 (logged) when the address cannot be bound. */
int gw_metrics_listen(struct gw *gw);
/* Adds a finished migration's final figures to the cumulative counters. */
void gw_metrics_mig_finished(struct gw *gw, const struct gw_mig *m);
/* The exposition text now (caller frees), or NULL. */
char *gw_metrics_text(struct gw *gw, size_t *lenp);
void gw_metrics_close(struct gw *gw);
/* The endpoint's listener, or NULL. */
struct evconnlistener *gw_metrics_listener(struct gw *gw);

/* gw_notify.c: systemd notifications; no-ops without $NOTIFY_SOCKET. */
void gw_notify_ready(struct gw *gw);
void gw_notify_reloading(struct gw *gw);
void gw_notify_stopping(struct gw *gw);
void gw_notify_update(struct gw *gw);    /* STATUS= if it changed */
void gw_notify_free(struct gw *gw);

/* gw_main.c */
/* Re-reads the config file and applies it; running migrations go on. */
int gw_reload(struct gw *gw);
/*
 * Installs the accept-error policy on a listener: on an accept failure
 * (EMFILE, ENFILE, ENOMEM...) every listener pauses for a second instead
 * of spinning on a readable socket it cannot accept from.
 */
void gw_listener_guard(struct gw *gw, struct evconnlistener *lev);
/* Sets TCP_NODELAY and keepalive on a TCP socket. */
void gw_tune_tcp(evutil_socket_t fd);
/* Sets the congestion control of a WAN socket (CONF_CC_*); logs if the
 * kernel lacks it and falls back to the system default. */
void gw_tune_wan(evutil_socket_t fd, int congestion);

#endif

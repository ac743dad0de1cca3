/*
 * wan.h - the tunnel between two gateways: a session (a "link") carrying
 * framed, multiplexed streams over one or more TLS connections, with
 * per-stream flow control.
 *
 * A link owns its connections and its streams. A stream owns the local
 * TCP bufferevent it relays (the hypervisor's connection). Flow control is
 * end to end: a stream never has more than the receiver's window in
 * flight between the moment the sender read it from its hypervisor and the
 * moment the receiver wrote it to its own, and all streams of a link
 * together stay under the link's in-flight bound (link_bound in
 * wan_link.c), so the source QEMU sees the WAN's real drain rate (design
 * invariant 5). The bound is shared, but each of n active streams may
 * always have bound/n in flight (stream_room): a destination that stops
 * reading holds its window until the migration's idle timeout without
 * starving the other streams.
 *
 * Frames that carry stream state are numbered across the session and kept
 * by the sender until the receiver acknowledges them, so the link stripes
 * them over all its connections and, when a connection dies, sends them
 * again on another one, or on a new one dialled within the resume window:
 * the hypervisors see a stall, not an error.
 *
 * Failure is loud on purpose: a stream that cannot be delivered exactly
 * (link lost past the resume window, protocol error, out of memory) is
 * reset at both ends (TCP RST to the hypervisors), never closed cleanly,
 * so a destination QEMU never takes a truncated stream for a complete one
 * (invariant 2). A clean FIN crosses the tunnel only when the hypervisor
 * at the other end closed its side cleanly.
 */
#ifndef WM_WAN_WAN_H
#define WM_WAN_WAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "wan_frame.h"
#include "wan_shape.h"

struct wan_link;
struct wan_conn;
struct wan_stream;

struct wan_link_params {
	const char *site;         /* our site name, sent in HELLO */
	const char *peer_site;    /* the peer's, checked in its HELLO */
	uint32_t window;          /* credit we grant each stream toward us */
	uint32_t reorder;         /* bytes we hold ahead of a gap; also what
	                             the peer may keep unacknowledged */
	uint64_t keepalive_ms;    /* PING period, per connection */
	uint64_t timeout_ms;      /* a connection silent this long is dead */
	uint64_t resume_ms;       /* a link without connections this long is
	                             over (0: at once) */
	bool dialled;             /* we dialled (odd stream numbers) */
};

struct wan_link_cbs {
	/*
	 * The peer opened stream s. Return 0 to take it: install callbacks
	 * with wan_stream_set_cbs() now and later wan_stream_attach() or
	 * wan_stream_reset() it. Return non-zero to refuse (RST with why).
	 */
	int (*open)(struct wan_link *l, struct wan_stream *s,
	    const struct wan_open *o, char *why, size_t whylen, void *arg);
	/* A connection completed its HELLO; resumed is true when the link
	 * had none left (it was in an outage). */
	void (*conn_up)(struct wan_link *l, bool resumed, void *arg);
	/* A connection was lost (was_up: it had completed HELLO) or failed
	 * before its HELLO; the link lives on and waits up to resume_ms for
	 * another. */
	void (*conn_down)(struct wan_link *l, bool was_up, const char *why,
	    void *arg);
	/*
	 * The link is over (no connection within the resume window, protocol
	 * error, peer's CLOSE, or wan_link_close). Every stream on it was
	 * reset and reported first. The handle dies when this returns.
	 */
	void (*down)(struct wan_link *l, const char *why, void *arg);
};

struct wan_conn_params {
	uint64_t handshake_ms;    /* TLS handshake and HELLO must end by then */
	bool dialled;
};

/* Callbacks of a connection; the last two only while it has no link. */
struct wan_conn_cbs {
	/*
	 * The TLS handshake completed. Return 0 to go on, or non-zero to drop
	 * the connection (the reason goes into why).
	 */
	int (*verify)(struct wan_conn *c, SSL *ssl, char *why, size_t whylen,
	    void *arg);
	/*
	 * An accepted connection received the peer's valid HELLO. The owner
	 * now gives it to a link (wan_link_add_conn: the session h->session
	 * of that peer, or a new link for it) or closes it.
	 */
	void (*hello)(struct wan_conn *c, const struct wan_hello *h, void *arg);
	/* A connection that never joined a link is gone; the handle dies
	 * when this returns. */
	void (*down)(struct wan_conn *c, const char *why, void *arg);
};

/*
 * Wraps a TLS bufferevent (connecting or accepting; created with
 * BEV_OPT_CLOSE_ON_FREE) into a connection and takes ownership of it,
 * even on failure. Returns NULL on allocation failure.
 */
struct wan_conn *wan_conn_new(struct event_base *base, struct bufferevent *bev,
    const struct wan_conn_params *p, const struct wan_conn_cbs *cbs,
    void *arg);
/* Closes a connection that has no link yet (down() runs). */
void wan_conn_close(struct wan_conn *c, const char *why);

/*
 * A new link. session is the id of the peer's session for an accepted
 * link (from its HELLO); 0 for a link we dial, which draws a random one.
 * Returns NULL on allocation failure.
 */
struct wan_link *wan_link_new(struct event_base *base,
    const struct wan_link_params *p, const struct wan_link_cbs *cbs,
    void *arg, uint64_t session);
/*
 * Gives a connection to the link: a dialled one (still connecting; it
 * sends our HELLO once TLS is up) or an accepted one whose HELLO arrived
 * (wan_conn_cbs.hello). From then on the link reports on it.
 */
void wan_link_add_conn(struct wan_link *l, struct wan_conn *c);

/* Ends a link: the peer is told (CLOSE), streams are reset, then down()
 * runs, then it is freed (deferred: callable from any callback). */
void wan_link_close(struct wan_link *l, const char *why);

/* True while the link has at least one connection that completed HELLO. */
bool wan_link_ready(const struct wan_link *l);
uint64_t wan_link_session(const struct wan_link *l);
/*
 * The link bounds the bytes all its streams together may have in flight
 * (sent, not yet credited back by the far end) to about one
 * bandwidth-delay product, so that the hypervisors feel the WAN's real
 * rate (design invariant 5). With a rate given here (bytes/s, the peer's
 * shaper) the bound is that rate times the lowest RTT, plus 64 KiB; with
 * 0 (the default) the link measures the rate: twice (growing) or 1.5
 * times (steady) the delivery rate of the last 10 s, or 1.5 times the
 * kernel's BBR estimate of the path, times the lowest RTT, at least 2 MiB.
 * Recomputed every 250 ms.
 */
void wan_link_set_rate(struct wan_link *l, uint64_t bytes_per_s);

struct wan_link_stats {
	uint64_t bytes_sent;     /* frame bytes handed to TLS, all connections */
	uint64_t bytes_received; /* frame bytes read from TLS */
	uint64_t bytes_resent;   /* frame bytes sent again after a loss */
	double rtt_ms;           /* smoothed PING round trip, <0 if none yet */
	double min_rtt_ms;       /* the path's own delay, without our queues:
	                            TCP's minimum RTT (tcpi_min_rtt), else the
	                            lowest PING of the last 30 s (<0 if none) */
	uint32_t streams;        /* open streams */
	uint32_t conns;          /* connections that completed HELLO */
	uint32_t conns_pending;  /* connections still in their handshake */
	uint64_t up_since_ms;    /* wm_now_ms() of the first HELLO, 0 before */
	uint64_t down_since_ms;  /* in an outage since, else 0 */
	uint64_t outages;        /* times the last connection was lost */
	uint64_t resumes;        /* outages that ended with a new connection */
	uint64_t unacked;        /* bytes kept for resending */
	uint64_t inflight;       /* stream bytes sent, not yet written out
	                            at the far end (credited back) */
	uint64_t inflight_cap;   /* the bound in force, see wan_link_set_rate */
	uint64_t inflight_far;   /* of inflight, behind a gap at the far end:
	                            not counted against the bound (up to
	                            twice the bound) */
	uint64_t path_Bps;       /* the path's rate as measured (delivery rate
	                            or the kernel's BBR estimate), 0 unknown */
	uint64_t bbr_paced;      /* times a connection's BBR was paced out of
	                            STARTUP (wan_link.c, conn_pace) */
	uint64_t bbr_refreshed;  /* times a connection's BBR was restarted
	                            instead of entering PROBE_RTT
	                            (wan_link.c, conn_refresh) */
};
/* Counters; valid while the link lives. */
void wan_link_get_stats(const struct wan_link *l, struct wan_link_stats *st);

enum wan_close_how {
	WAN_CLOSED_CLEAN = 0,  /* both directions ended with FIN, all delivered */
	WAN_CLOSED_RESET = 1,  /* reset: local error, peer RST, link lost */
};

struct wan_stream_cbs {
	/* The stream ended; the handle dies when this returns. */
	void (*closed)(struct wan_stream *s, enum wan_close_how how,
	    const char *why, void *arg);
	/*
	 * Optional: sees, in order and unchanged, every byte read from the
	 * local hypervisor just before it enters the tunnel. Returns true to
	 * keep observing, false to stop (the stream then skips the call).
	 */
	bool (*observe)(struct wan_stream *s, const uint8_t *p, size_t len,
	    void *arg);
	/*
	 * Optional: the local hypervisor ended its side cleanly. Return true
	 * to pass the end on (FIN, after the last byte); false, with a
	 * reason in why, to reset the stream instead, when the owner knows
	 * the stream ended incomplete.
	 */
	bool (*local_end)(struct wan_stream *s, char *why, size_t whylen,
	    void *arg);
};

struct wan_stream_stats {
	uint64_t local_in;   /* bytes read from the local hypervisor */
	uint64_t local_out;  /* bytes written to the local hypervisor */
	uint64_t wan_out;    /* tunnel bytes sent for it, frame headers included */
	uint64_t wan_in;     /* tunnel bytes received for it */
};

/*
 * Opens a stream toward the peer for the local connection bev (taken over:
 * freed with the stream) and starts relaying at once, within the peer's
 * window. Returns NULL (and frees bev) if the link is not ready or memory
 * is short.
 */
struct wan_stream *wan_stream_open(struct wan_link *l, struct bufferevent *bev,
    const struct wan_open *o, const struct wan_stream_cbs *cbs, void *arg);

/* Installs callbacks on a stream the peer opened (see wan_link_cbs.open). */
void wan_stream_set_cbs(struct wan_stream *s, const struct wan_stream_cbs *cbs,
    void *arg);

/*
 * Gives a peer-opened stream its local connection (taken over) once the
 * connect to the target succeeded; data buffered meanwhile is written out.
 */
void wan_stream_attach(struct wan_stream *s, struct bufferevent *bev);

/* Resets a stream at both ends; closed() runs before this returns. */
void wan_stream_reset(struct wan_stream *s, uint16_t code, const char *why);

/*
 * Subjects the stream's sending side to up to two token buckets (the
 * peer's and a per-migration cap; either may be NULL). Streams given the
 * same group (a migration's) split one share of a bucket (wan_shape.h).
 * Call once, right after the stream is opened or accepted; change rates on
 * the buckets. The buckets must outlive the stream.
 */
void wan_stream_set_shapers(struct wan_stream *s, struct wan_shaper *a,
    struct wan_shaper *b, const void *group);

const struct wan_stream_stats *wan_stream_get_stats(const struct wan_stream *s);

struct pc_enc;
struct pc_dec;
struct pc_stats;
/*
 * The page codec (compress/pc.h) on a stream. An encoder turns what the
 * local hypervisor sends into the codec's stream (the peer must decode it:
 * WAN_OPEN_ENCODED); set it right after wan_stream_open, before the loop
 * runs. A decoder turns what the peer sends back into the hypervisor's
 * bytes; set it in the open callback, before wan_stream_attach. Either
 * way the stream takes ownership (also on failure: -1). Windows, credit and
 * the in-flight bound then count encoded bytes.
 */
int wan_stream_set_encoder(struct wan_stream *s, struct pc_enc *e);
int wan_stream_set_decoder(struct wan_stream *s, struct pc_dec *d);
/* The encoder's figures; false if the stream has none. */
bool wan_stream_codec_stats(const struct wan_stream *s, struct pc_stats *st);

#endif

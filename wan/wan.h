/*
 * wan.h - the tunnel between two gateways: framed, multiplexed streams over
 * one TLS connection (a "link"), with per-stream flow control.
 *
 * A link owns its TLS bufferevent. A stream owns the local TCP bufferevent
 * it relays (the hypervisor's connection). Flow control is end to end: a
 * stream never has more than the receiver's window in flight between the
 * moment the sender read it from its hypervisor and the moment the receiver
 * wrote it to its own, so the source QEMU sees the WAN's real drain rate
 * and a stalled destination stalls only its own stream (design invariant 5).
 *
 * Failure is loud on purpose: a stream that cannot be delivered exactly is
 * reset at both ends (TCP RST to the hypervisors), never closed cleanly, so
 * a destination QEMU never takes a truncated stream for a complete one
 * (invariant 2). A clean FIN crosses the tunnel only when the hypervisor at
 * the other end closed its side cleanly.
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
struct wan_stream;

struct wan_link_params {
	const char *site;         /* our site name, sent in HELLO */
	uint32_t window;          /* credit we grant each stream toward us */
	uint64_t keepalive_ms;    /* PING period */
	uint64_t timeout_ms;      /* declared dead after this long silent */
	bool dialled;             /* we dialled (odd stream numbers) */
};

struct wan_link_cbs {
	/*
	 * The TLS handshake completed. Return 0 to go on (HELLO is sent), or
	 * non-zero to drop the link (the reason goes into why).
	 */
	int (*verify)(struct wan_link *l, SSL *ssl, char *why, size_t whylen,
	    void *arg);
	/* The peer's HELLO arrived; streams can be opened. */
	void (*ready)(struct wan_link *l, const struct wan_hello *h, void *arg);
	/*
	 * The peer opened stream s. Return 0 to take it: install callbacks
	 * with wan_stream_set_cbs() now and later wan_stream_attach() or
	 * wan_stream_reset() it. Return non-zero to refuse (RST with why).
	 */
	int (*open)(struct wan_link *l, struct wan_stream *s,
	    const struct wan_open *o, char *why, size_t whylen, void *arg);
	/*
	 * The link is gone (error, timeout, peer closed, or wan_link_close).
	 * Every stream on it was reset and reported first. The handle dies
	 * when this returns.
	 */
	void (*down)(struct wan_link *l, const char *why, void *arg);
};

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
};

struct wan_stream_stats {
	uint64_t local_in;   /* bytes read from the local hypervisor */
	uint64_t local_out;  /* bytes written to the local hypervisor */
	uint64_t wan_out;    /* tunnel bytes sent for it, frame headers included */
	uint64_t wan_in;     /* tunnel bytes received for it */
};

struct wan_link_stats {
	uint64_t bytes_sent;     /* frame bytes handed to TLS */
	uint64_t bytes_received; /* frame bytes read from TLS */
	double rtt_ms;           /* smoothed PING round trip, <0 if none yet */
	double min_rtt_ms;       /* lowest sample of the last 30 s: the path's
	                            own delay, without our queues (<0 if none) */
	uint32_t streams;        /* open streams */
	uint64_t up_since_ms;    /* wm_now_ms() when HELLO arrived, 0 before */
	uint64_t inflight;       /* stream bytes sent, not yet written out
	                            at the far end (credited back) */
	uint64_t inflight_cap;   /* see wan_link_set_inflight_cap */
};

/*
 * Wraps a TLS bufferevent (connecting or accepting; created with
 * BEV_OPT_CLOSE_ON_FREE) into a link and takes ownership of it, even on
 * failure. Returns NULL on allocation failure.
 */
struct wan_link *wan_link_new(struct event_base *base, struct bufferevent *bev,
    const struct wan_link_params *p, const struct wan_link_cbs *cbs, void *arg);

/* Closes a link: streams are reset, then down() runs, then it is freed
 * (deferred, so this may be called from any callback). */
void wan_link_close(struct wan_link *l, const char *why);

/* True once the peer's HELLO arrived and until the link goes down. */
bool wan_link_ready(const struct wan_link *l);
/* Counters; valid while the link lives. */
void wan_link_get_stats(const struct wan_link *l, struct wan_link_stats *st);
/*
 * Bounds the bytes all streams of the link together may have in flight
 * (sent, not yet credited back by the far end) — about one bandwidth-delay
 * product, so that the hypervisors feel the WAN's real rate (design
 * invariant 5). 0 leaves only each stream's window. May be called at any
 * time; a larger bound releases waiting streams at once.
 */
void wan_link_set_inflight_cap(struct wan_link *l, uint64_t bytes);

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
 * peer's and a per-migration cap; either may be NULL). Call once, right
 * after the stream is opened or accepted; change rates on the buckets.
 * The buckets must outlive the stream.
 */
void wan_stream_set_shapers(struct wan_stream *s, struct wan_shaper *a,
    struct wan_shaper *b);

const struct wan_stream_stats *wan_stream_get_stats(const struct wan_stream *s);

#endif

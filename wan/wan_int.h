/*
 * wan_int.h - what wan_conn.c (one TLS connection) and wan_link.c (the
 * session and its streams) share. Internal to wan/.
 */
#ifndef WM_WAN_WAN_INT_H
#define WM_WAN_WAN_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "wan.h"

#define LINK_OUT_HIGH (4u << 20)   /* stop feeding a connection past this */
#define LINK_OUT_LOW (1u << 20)    /* and resume below this */
#define IO_CHUNK (256u << 10)      /* bytes per read or write callback */
#define TICK_MS 250                /* housekeeping period */

struct wan_conn {
	TAILQ_ENTRY(wan_conn) entry;    /* in its link's list */
	struct event_base *base;
	struct bufferevent *bev;
	struct wan_link *link;          /* NULL until given to one */
	struct wan_conn_params p;
	struct wan_conn_cbs cbs;
	void *arg;
	bool tls_up;
	bool hello_rcvd;                /* peer's HELLO in .peer */
	bool ready;                     /* both HELLOs done, in the link's use */
	bool dead, broken, closing;
	const char *break_why;          /* why it broke (conn_break) */
	double bbr_bw;                  /* BBR's estimate at the last tick,
	                                   bytes/s (0: not BBR) */
	bool bbr_startup;               /* and BBR was in STARTUP */
	bool bbr_probe_bw;              /* or in PROBE_BW */
	double bbr_min_rtt_ms;          /* BBR's own minimum RTT then */
	uint64_t bbr_rtt_stamp_ms;      /* when BBR last took its minimum RTT,
	                                   as seen at the ticks; see
	                                   conn_refresh() */
	unsigned bbr_refreshes;         /* in a row since BBR's own PROBE_RTT */
	bool bbr_no_refresh;            /* the kernel refused a switch */
	bool bbr_refreshing;            /* restarted, capped until it leaves
	                                   STARTUP */
	bool rto;                       /* TCP was recovering from a
	                                   retransmission timeout */
	uint64_t paced_ms;              /* SO_MAX_PACING_RATE set then, or 0 */
	uint64_t pace_next_ms;          /* not again before; see conn_pace() */
	struct wan_hello peer;
	struct event *timer, *reap, *breakev;
	uint64_t created_ms, last_rx_ms, last_ping_ms, min_rtt_stamp_ms;
	double rtt_ms, min_rtt_ms;         /* PINGs: smoothed, lowest of 30 s */
	double path_rtt_ms;             /* the kernel's minimum RTT at the last
	                                   tick (tcpi_min_rtt), or <0 */
	uint64_t bytes_sent, bytes_received;
	uint64_t keepalive_ms, timeout_ms; /* from the link once given */
};
TAILQ_HEAD(wan_conn_list, wan_conn);

/* wan_conn.c, for wan_link.c */
/* Queues whole frame bytes; on ENOMEM the connection is broken (a frame
 * may be cut) and fails from the loop. Returns 0 or -1. */
int conn_send(struct wan_conn *c, const void *buf, size_t len);
int conn_send_ctrl(struct wan_conn *c, uint8_t type, const void *p,
    size_t len);
int conn_send_u64(struct wan_conn *c, uint8_t type, uint64_t v);
size_t conn_out_len(const struct wan_conn *c);
/* The connection is lost: reported to its link (link_conn_lost) or, with
 * none, to its owner (cbs.down); freed from the loop. */
void conn_fail(struct wan_conn *c, const char *why);
/* Nothing more goes out on c (after out of memory a frame may be cut); it
 * fails from the loop, as callers may be inside loops over the link's
 * connections, with why (a string that outlives c). The session resends
 * what it carried. */
void conn_break(struct wan_conn *c, const char *why);
/* The link is over: sends what is queued (CLOSE included) for up to a
 * second, then frees; reports nothing. */
void conn_retire(struct wan_conn *c);

/* wan_link.c, for wan_conn.c */
/* A dialled connection's TLS is up and verified: send our HELLO. */
void link_conn_tls_up(struct wan_link *l, struct wan_conn *c);
/* The peer's HELLO arrived on c (in c->peer). */
void link_conn_hello(struct wan_link *l, struct wan_conn *c);
void link_conn_lost(struct wan_link *l, struct wan_conn *c, const char *why);
/* c's output drained below its low mark. */
void link_conn_writable(struct wan_link *l, struct wan_conn *c);
/*
 * A frame for the session (sequenced, ACK or CLOSE) arrived on a ready
 * connection; its payload is at the head of in and is consumed.
 */
void link_conn_frame(struct wan_link *l, struct wan_conn *c,
    const struct wan_frame_hdr *h, struct evbuffer *in);
/* The end of one read from c: acknowledge what arrived. */
void link_conn_read_done(struct wan_link *l, struct wan_conn *c);
/* Ends the session (protocol error, ...). */
void link_fail(struct wan_link *l, const char *why);

#endif

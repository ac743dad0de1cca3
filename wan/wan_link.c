/*
 * wan_link.c - a tunnel session: streams, sequence numbers, the
 * retransmit buffer and the reorder buffer, over the connections of
 * wan_conn.c (grammar in wan_frame.h, contract in wan.h).
 *
 * Sending: every sequenced frame is built once into a retransmit entry
 * (header and payload), copied out to the connection with the least
 * queued, and kept until the peer acknowledges it. A lost connection's
 * entries go out again on the others, or on the next one to complete
 * HELLO; the receiver drops what it already has.
 *
 * Receiving: frames are taken in sequence order; one ahead of a gap waits
 * in the reorder buffer (bounded by what we announced in HELLO).
 *
 * Objects that die inside a callback are unhooked at once and freed from
 * the loop (a link, a connection) or right after their closed() callback
 * (a stream, which nothing else points to by then).
 */
#include "wan_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/rand.h>
#include <xxhash.h>

#include "pc.h"
#include "wm_log.h"
#include "wm_util.h"

#define LOCAL_IN_HIGH (256u << 10) /* read-ahead from a hypervisor */
#define MAX_STREAMS 256            /* per link: bounds memory to 256 windows */
#define ACK_EVERY (256u << 10)     /* acknowledge at least this often */
#define ACK_SOON (64u << 10)       /* less waits up to FLUSH_MS, so that
                                      acknowledgements and credit do not
                                      cost a packet per read */
#define FLUSH_MS 2
#define OOO_ENTRY_COST 1024        /* bookkeeping charged per held frame,
                                      both sides alike */
#define OOO_RING 65536             /* frames held ahead of a gap, at most */
#define RTX_DATA_MAX (OOO_RING - 4096) /* frames kept: DATA stops here */
#define DATA_SUM WAN_DATA_SUM
#define HOL_MS 20                  /* head-of-line check period */
#define AUTO_SAMPLES 40            /* delivery rate, max of 10 s of ticks */
#define AUTO_SPAN 4                /* ticks one rate sample spans (1 s) */
#define PACE_GAIN 0.95             /* of the delivery rate, see conn_pace() */
#define PACE_FOUND 0.8             /* see conn_pace() */
#define PACE_MAX_MS 3000
#define PACE_RETRY_MS 10000
#define REFRESH_MS 8500            /* BBR's minimum RTT lasts 10 s; see
                                      conn_refresh() */
#define REFRESH_RUN 6              /* then one PROBE_RTT is BBR's own */
#define BBR_MIN_RTT_MS 10000       /* how long BBR keeps its minimum RTT */
#define RTT_EXPIRED_MS 11000       /* BBR's minimum RTT is older: it has
                                      been through PROBE_RTT */
#define REFRESH_BUSY 0.8           /* of BBR's estimate, see conn_refresh() */
#define AUTO_MIN_CAP (2u << 20)    /* measured bound never below this */
#define ENC_CHUNK (256u << 10)     /* hypervisor bytes per encoder call */
#define MIN_FRAME (16u << 10)      /* DATA frames cut by the in-flight bound */
#define ENC_LOW (256u << 10)       /* encode more below this much queued */
#define DEC_OUT_HIGH (512u << 10)  /* decoded, not yet taken: decode no more */

struct wan_stream {
	struct wan_link *link;
	uint32_t id;
	struct bufferevent *local;       /* NULL until attached (peer-opened) */
	struct evbuffer *pending;        /* peer data received before attach */
	struct evbuffer_cb_entry *out_cb;
	TAILQ_ENTRY(wan_stream) entry;
	uint64_t send_credit;            /* bytes we may still send */
	uint64_t recv_unacked;           /* received, not yet credited back */
	uint64_t to_credit;              /* written out, WINDOW not yet sent */
	bool local_eof;                  /* hypervisor closed its sending side */
	bool fin_sent, fin_rcvd, shut_wr;
	bool dead;
	unsigned pump_gen;               /* see link_pump_all */
	bool active;                     /* sending or bytes in flight, as of
	                                    the last tick (waiter.group_n: so
	                                    many of its group) */
	const void *group;               /* its migration, or NULL */
	struct wan_shaper *shaper[2];    /* peer rate, migration cap */
	struct wan_shaper_waiter waiter;
	struct wan_stream_cbs cbs;
	void *arg;
	struct wan_stream_stats st;
	/* page codec (compress/pc.h), one direction each */
	struct pc_enc *enc;              /* encodes what the hypervisor sends */
	struct pc_buf encbuf;            /* its output, before encq */
	struct evbuffer *encq;           /* encoded, not yet framed */
	bool enc_done;                   /* END is in encq */
	struct pc_dec *dec;              /* decodes what the peer sends */
	struct evbuffer *decq;           /* received, not yet decoded */
	size_t dec_early;                /* its head, credited already */
};
TAILQ_HEAD(wan_stream_list, wan_stream);

/* A sequenced frame kept until acknowledged. */
struct rtx {
	TAILQ_ENTRY(rtx) entry;
	uint64_t seq;
	struct wan_conn *conn;           /* carried it last; NULL: to send */
	bool sent;                       /* went out at least once */
	bool reinjected;                 /* copied to a second connection */
	size_t len;
	uint8_t buf[];                   /* header and payload */
};
TAILQ_HEAD(rtx_list, rtx);

/* A frame that arrived ahead of a gap. */
struct ooo {
	struct wan_frame_hdr h;
	struct evbuffer *payload;
};

struct wan_link {
	struct event_base *base;
	struct wan_link_params p;
	char site[256], peer_site[256];
	struct wan_link_cbs cbs;
	void *arg;
	uint64_t session;
	bool dead;
	bool has_peer;                   /* peer's window and reorder known */
	struct wan_hello peer;
	struct wan_conn_list conns;
	uint32_t nready;
	uint32_t next_id;                /* our next stream number */
	uint32_t last_peer_id;           /* highest number the peer opened */
	struct wan_stream_list streams;
	/* sending */
	uint64_t send_next;
	struct rtx_list rtx;
	uint64_t rtx_bytes;              /* bytes held, OOO_ENTRY_COST each more */
	unsigned rtx_n;                  /* frames held */
	unsigned nunsent;                /* entries with conn == NULL */
	struct rtx *unsent;              /* none before this one, or NULL */
	uint64_t head_seq, head_ms;      /* oldest unacked frame, since when */
	bool blocked;                    /* no connection with room */
	bool rtx_blocked;                /* retransmit buffer full */
	/* receiving */
	uint64_t recv_next;
	uint64_t ack_sent;               /* last ACK value sent */
	uint64_t since_ack;              /* bytes received since */
	struct ooo **ooo;                /* ring of OOO_RING by seq, or NULL */
	uint64_t ooo_bytes;
	/* flow control */
	uint64_t inflight;               /* sent by all streams, not yet credited */
	uint64_t inflight_cap;           /* in force; 0 = only the windows */
	uint64_t far;                    /* of inflight, behind a gap at the
	                                    far end (link_sample_far) */
	uint64_t far_ms;                 /* when it was sampled */
	unsigned nactive;                /* streams sending or with bytes in
	                                    flight, as of the last tick */
	unsigned ngroups;                /* and their groups (migrations) */
	uint64_t rate_Bps;               /* wan_link_set_rate(), or 0 */
	bool cap_blocked;                /* a stream waits for inflight < cap */
	/* measured in-flight bound, see link_auto_cap() */
	uint64_t credited;               /* credit the peer ever returned */
	uint64_t cap_hits, cap_hits_tick; /* times a stream met the bound */
	uint64_t auto_ms;                /* last tick */
	uint64_t span_cred[AUTO_SPAN];   /* credited at the last ticks */
	uint64_t span_ms[AUTO_SPAN];     /* and when */
	double rate[AUTO_SAMPLES];       /* delivery rate samples, bytes/s */
	unsigned rate_i;
	double auto_best;                /* rate at the last growth */
	double path_Bps;                 /* best estimate of the path's rate */
	unsigned auto_flat;              /* samples since it last grew */
	unsigned pump_gen;
	struct event *timer, *reap, *unblock, *breakev, *holev;
	struct event *flushev;           /* sends what link_defer() held */
	bool broken;                     /* a stream lost bytes: fail */
	uint64_t fault_corrupt;          /* test knob, see wan_link_new */
	struct wan_link_stats st;
};

static void link_break(struct wan_link *l);
static void link_defer(struct wan_link *l);
static void link_flushcb(evutil_socket_t fd, short what, void *arg);
static void link_flush_delayed(struct wan_link *l);
static void link_pump_all(struct wan_link *l);
static void stream_pump(struct wan_stream *s);
static void link_flush(struct wan_link *l);
static uint64_t link_rtx_cap(const struct wan_link *l);
static uint64_t link_bound(const struct wan_link *l);
static void link_sample_far(struct wan_link *l);
static uint64_t stream_room(const struct wan_stream *s);

/* The path's round trip as c knows it, ms: the kernel's (conn_sample),
 * else the lowest of our PINGs; <0 if neither yet. */
static double
conn_min_rtt(const struct wan_conn *c)
{
	return c->path_rtt_ms > 0 ? c->path_rtt_ms : c->min_rtt_ms;
}

/* ---- sending sequenced frames ------------------------------------------ */

/* The ready connection with the least queued, or NULL if all are full. */
static struct wan_conn *
link_pick_conn(struct wan_link *l)
{
	struct wan_conn *c, *best = NULL;
	size_t best_len = 0;

	TAILQ_FOREACH(c, &l->conns, entry) {
		size_t n;

		if (!c->ready || c->dead || c->broken)
			continue;
		n = conn_out_len(c);
		if (best == NULL || n < best_len) {
			best = c;
			best_len = n;
		}
	}
	if (best == NULL || best_len >= LINK_OUT_HIGH)
		return NULL;
	return best;
}

/* Sends r on c (NULL: the connection with room); false if none has any. */
static bool
rtx_transmit(struct wan_link *l, struct rtx *r, struct wan_conn *c)
{
	if (c == NULL)
		c = link_pick_conn(l);
	if (c == NULL || conn_send(c, r->buf, r->len) != 0)
		return false;
	if (r->sent)
		l->st.bytes_resent += r->len;
	r->sent = true;
	r->reinjected = false; /* on a new connection: watched afresh */
	r->conn = c;
	if (r->seq == l->head_seq)
		l->head_ms = wm_now_ms();
	return true;
}

/* Takes r (allocated with its frame built but for seq) into the
 * retransmit buffer and sends it: on c, which the caller found to have
 * room, or when a connection has room. */
static void
link_push(struct wan_link *l, struct rtx *r, size_t payload,
    struct wan_conn *c)
{
	r->seq = l->send_next++;
	wm_put_be64(r->buf + 12, r->seq);
	TAILQ_INSERT_TAIL(&l->rtx, r, entry);
	l->rtx_bytes += payload + OOO_ENTRY_COST;
	l->rtx_n++;
	r->conn = NULL;
	if (l->nunsent == 0 && c != NULL && rtx_transmit(l, r, c))
		return;
	if (l->nunsent++ == 0)
		l->unsent = r;
	link_flush(l);
}

static struct rtx *
rtx_new(struct wan_link *l, uint8_t type, uint32_t stream, size_t len)
{
	struct wan_frame_hdr h = { type, 0, stream, (uint32_t)len, 0 };
	struct rtx *r = malloc(sizeof(*r) + WAN_FRAME_HDR + len);

	if (r == NULL) {
		link_break(l);
		return NULL;
	}
	r->len = WAN_FRAME_HDR + len;
	r->sent = r->reinjected = false;
	wan_frame_hdr_encode(r->buf, &h);
	return r;
}

static void
send_seq(struct wan_link *l, uint8_t type, uint32_t stream,
    const void *payload, size_t len)
{
	struct rtx *r;

	if (l->dead || l->broken)
		return;
	/* Stream data stops at the bound; these few small frames may go a
	 * little past it, but a peer that never acknowledges cannot make us
	 * hold them without end. */
	if (l->has_peer && (l->rtx_n >= OOO_RING - 1 ||
	    l->rtx_bytes > link_rtx_cap(l) + (512u << 10))) {
		link_fail(l, "peer does not acknowledge what it receives");
		return;
	}
	if ((r = rtx_new(l, type, stream, len)) == NULL)
		return;
	if (len > 0)
		memcpy(r->buf + WAN_FRAME_HDR, payload, len);
	link_push(l, r, len, NULL);
}

/* Sends what waits for a connection, oldest first. */
static void
link_flush(struct wan_link *l)
{
	struct rtx *r;

	if (l->nunsent == 0 || l->dead)
		return;
	/* Start at the hint: the retransmit buffer holds up to thousands of
	 * frames, nearly all sent, and this runs for every new frame. */
	for (r = l->unsent != NULL ? l->unsent : TAILQ_FIRST(&l->rtx);
	    r != NULL; r = TAILQ_NEXT(r, entry)) {
		l->unsent = r;
		if (r->conn != NULL)
			continue;
		if (!rtx_transmit(l, r, NULL))
			return;
		if (--l->nunsent == 0) {
			l->unsent = NULL;
			return;
		}
	}
}

/* What we keep for resending: no more than the peer holds ahead of a gap,
 * nor than we would hold ourselves. */
static uint64_t
link_rtx_cap(const struct wan_link *l)
{
	return l->peer.reorder < l->p.reorder ? l->peer.reorder : l->p.reorder;
}

/* The peer has every frame below next: drop them. */
static void
link_acked(struct wan_link *l, uint64_t next)
{
	struct rtx *r;

	while ((r = TAILQ_FIRST(&l->rtx)) != NULL && r->seq < next) {
		TAILQ_REMOVE(&l->rtx, r, entry);
		if (l->unsent == r)
			l->unsent = NULL; /* the next unsent is later still */
		if (r->conn == NULL)
			l->nunsent--;
		l->rtx_bytes -= r->len - WAN_FRAME_HDR + OOO_ENTRY_COST;
		l->rtx_n--;
		free(r);
	}
	if (l->rtx_blocked && l->rtx_bytes < link_rtx_cap(l) &&
	    l->rtx_n < RTX_DATA_MAX) {
		l->rtx_blocked = false;
		event_active(l->unblock, 0, 0);
	}
}

static uint64_t
link_rtx_base(const struct wan_link *l)
{
	const struct rtx *r = TAILQ_FIRST(&l->rtx);

	return r != NULL ? r->seq : l->send_next;
}

static void
send_u32(struct wan_link *l, uint8_t type, uint32_t stream, uint32_t v)
{
	uint8_t b[4];

	wm_put_be32(b, v);
	send_seq(l, type, stream, b, sizeof(b));
}

static void
send_rst(struct wan_link *l, uint32_t stream, uint16_t code, const char *why)
{
	struct wan_rst r = { .code = code };
	uint8_t b[WAN_CTRL_MAX];
	int n;

	wm_strcut(r.reason, sizeof(r.reason), why);
	n = wan_rst_encode(b, sizeof(b), &r);
	if (n >= 0)
		send_seq(l, WAN_RST, stream, b, (size_t)n);
}

/* ---- streams ----------------------------------------------------------- */

static struct wan_stream *
stream_find(struct wan_link *l, uint32_t id)
{
	struct wan_stream *s;

	TAILQ_FOREACH(s, &l->streams, entry)
		if (s->id == id)
			return s;
	return NULL;
}

/*
 * With abortive close on, any close of the socket - ours, or the kernel's
 * when this process dies, even by SIGKILL - sends a TCP RST, so the
 * hypervisor never takes a cut stream for a complete one (invariant 2).
 */
static void
set_abortive_close(evutil_socket_t fd, bool on)
{
	struct linger lg = { on ? 1 : 0, 0 };

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void
local_release(struct wan_stream *s, bool reset)
{
	struct bufferevent *b = s->local;

	if (b == NULL)
		return;
	s->local = NULL;
	if (s->out_cb != NULL) {
		evbuffer_remove_cb_entry(bufferevent_get_output(b), s->out_cb);
		s->out_cb = NULL;
	}
	bufferevent_setcb(b, NULL, NULL, NULL, NULL);
	bufferevent_disable(b, EV_READ | EV_WRITE);
	/* The socket lingers with timeout 0 since it was hooked (see
	 * stream_hook_local): close() sends a RST. Only a stream that ended
	 * cleanly gets the ordinary close, which delivers what the kernel
	 * still holds for the hypervisor. */
	if (!reset)
		set_abortive_close(bufferevent_getfd(b), false);
	bufferevent_free(b);
}

/* Ends a stream: unhooks it, reports, frees. Nothing may touch s after. */
static void
stream_finish(struct wan_stream *s, enum wan_close_how how, const char *why)
{
	struct wan_link *l = s->link;
	uint64_t out = l->peer.window - s->send_credit;

	if (s->dead)
		return;
	s->dead = true;
	wan_shaper_cancel(&s->waiter);
	/* What it had in flight will never be credited now; streams held
	 * back by the link's bound may go (from the loop: this may run
	 * inside loops over the streams). */
	l->inflight = l->inflight > out ? l->inflight - out : 0;
	if (l->cap_blocked && l->inflight < link_bound(l) && !l->dead)
		event_active(l->unblock, 0, 0);
	TAILQ_REMOVE(&l->streams, s, entry);
	l->st.streams--;
	local_release(s, how == WAN_CLOSED_RESET);
	if (s->pending != NULL)
		evbuffer_free(s->pending);
	if (s->cbs.closed != NULL)
		s->cbs.closed(s, how, why, s->arg);
	pc_enc_free(s->enc);
	pc_buf_cleanup(&s->encbuf);
	if (s->encq != NULL)
		evbuffer_free(s->encq);
	pc_dec_free(s->dec);
	if (s->decq != NULL)
		evbuffer_free(s->decq);
	free(s);
}

void
wan_stream_reset(struct wan_stream *s, uint16_t code, const char *why)
{
	if (s->dead)
		return;
	if (!s->link->dead)
		send_rst(s->link, s->id, code, why);
	stream_finish(s, WAN_CLOSED_RESET, why);
}

static void
stream_check_done(struct wan_stream *s)
{
	if (s->fin_sent && s->fin_rcvd && s->shut_wr)
		stream_finish(s, WAN_CLOSED_CLEAN, "closed");
}

/* Half-closes the hypervisor socket once the peer's FIN and every byte
 * before it were written out. */
static void
stream_try_shut(struct wan_stream *s)
{
	if (s->local == NULL || !s->fin_rcvd || s->shut_wr)
		return;
	if (evbuffer_get_length(bufferevent_get_output(s->local)) != 0)
		return;
	/* still decoding, or (see stream_decode) about to fail */
	if (s->dec != NULL && (evbuffer_get_length(s->decq) != 0 ||
	    !pc_dec_done(s->dec)))
		return;
	shutdown(bufferevent_getfd(s->local), SHUT_WR);
	s->shut_wr = true;
	stream_check_done(s);
}

/*
 * libevent (2.1.9 and later) runs the read callback again and again for as
 * long as the input buffer stays at its high watermark with reading
 * enabled, so that the owner drains it. A stream that cannot drain (no
 * credit, shaper, link full) would spin the loop: it turns reading off
 * instead, and on again once it has room.
 */
static void
stream_read_gate(struct wan_stream *s, struct evbuffer *in)
{
	if (s->dead || s->local == NULL || s->local_eof)
		return;
	if (evbuffer_get_length(in) >= LOCAL_IN_HIGH)
		bufferevent_disable(s->local, EV_READ);
	else if (!(bufferevent_get_enabled(s->local) & EV_READ))
		bufferevent_enable(s->local, EV_READ);
}

/* Shows the next len bytes of in to the observer, without copying. */
static void
stream_observe(struct wan_stream *s, struct evbuffer *in, size_t len)
{
	struct evbuffer_iovec stack[8], *v = stack;
	int n = evbuffer_peek(in, (ev_ssize_t)len, NULL, stack, 8);

	if (n > 8) {
		v = calloc((size_t)n, sizeof(*v));
		if (v == NULL) {
			s->cbs.observe = NULL; /* stop rather than see a gap */
			return;
		}
		n = evbuffer_peek(in, (ev_ssize_t)len, NULL, v, n);
	}
	for (int i = 0; i < n && len > 0 && s->cbs.observe != NULL; i++) {
		size_t k = v[i].iov_len < len ? v[i].iov_len : len;

		if (!s->cbs.observe(s, v[i].iov_base, k, s->arg))
			s->cbs.observe = NULL;
		len -= k;
	}
	if (v != stack)
		free(v);
}

/*
 * Moves hypervisor bytes into the tunnel, as far as credit, the shapers,
 * the retransmit buffer and the connections' output bounds allow; sends
 * FIN after the last byte. Each DATA frame carries the XXH3-64 of its
 * bytes, checked by the receiver before it writes them out.
 */
/*
 * Runs hypervisor bytes through the encoder into encq while less than
 * ENC_LOW waits there, so the bytes held between the hypervisor and the
 * WAN stay about one block more than without it. Once the input has run
 * dry and nothing encoded waits to go, the block in progress is ended at
 * once: the source going quiet (the VM stopped: the last round and the
 * device state) must not wait for more. While the WAN is the bottleneck
 * blocks grow instead, which costs no time and compresses better.
 * Returns -1 after resetting the stream.
 */
static int
stream_encode(struct wan_stream *s, struct evbuffer *in)
{
	int r = 0;

	while (r == 0 && evbuffer_get_length(s->encq) < ENC_LOW) {
		size_t n = evbuffer_get_length(in);
		struct evbuffer_iovec v;

		if (n == 0) {
			if (s->local_eof && !s->enc_done) {
				r = pc_enc_finish(s->enc, &s->encbuf);
				s->enc_done = true;
			} else if (evbuffer_get_length(s->encq) == 0) {
				r = pc_enc_flush(s->enc, &s->encbuf);
			}
		} else {
			/* the input's first chunk, where it lies: the encoder
			 * holds a record cut between chunks itself */
			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 ||
			    v.iov_len == 0) {
				v.iov_len = n < ENC_CHUNK ? n : ENC_CHUNK;
				v.iov_base = evbuffer_pullup(in,
				    (ev_ssize_t)v.iov_len);
				if (v.iov_base == NULL) {
					r = -1;
					break;
				}
			}
			n = v.iov_len < ENC_CHUNK ? v.iov_len : ENC_CHUNK;
			if (s->cbs.observe != NULL)
				stream_observe(s, in, n);
			r = pc_enc_feed(s->enc, v.iov_base, n, &s->encbuf);
			evbuffer_drain(in, n);
			s->st.local_in += n;
		}
		if (s->encbuf.len > 0) {
			if (evbuffer_add(s->encq, s->encbuf.p, s->encbuf.len) != 0)
				r = -1;
			s->encbuf.len = 0;
		}
		if (n == 0)
			break;
	}
	if (r != 0) {
		wan_stream_reset(s, WAN_RST_ERROR, "out of memory in the encoder");
		return -1;
	}
	return 0;
}

static void
stream_pump(struct wan_stream *s)
{
	struct wan_link *l = s->link;
	struct evbuffer *in, *src;
	size_t len;

	if (s->local == NULL || s->fin_sent || l->dead || l->broken ||
	    l->nready == 0)
		return;
	in = bufferevent_get_input(s->local);
	src = s->enc != NULL ? s->encq : in;
	for (;;) {
		struct wan_conn *c;
		struct rtx *r;
		uint8_t *p;

		if (s->enc != NULL && stream_encode(s, in) != 0)
			return;
		if ((len = evbuffer_get_length(src)) == 0 || s->send_credit == 0)
			break;

		if (l->nunsent > 0 || (c = link_pick_conn(l)) == NULL) {
			l->blocked = true;
			goto out;
		}
		if (l->rtx_bytes >= link_rtx_cap(l) || l->rtx_n >= RTX_DATA_MAX) {
			l->rtx_blocked = true;
			goto out;
		}
		if (l->inflight_cap != 0) {
			uint64_t room = stream_room(s);

			if (room == 0) {
				l->cap_blocked = true;
				l->cap_hits++;
				goto out;
			}
			if (len > room) {
				len = (size_t)room;
				/* a sliver now would cost a TLS record and a
				 * packet of its own: wait for credit instead,
				 * if this stream has bytes in flight whose
				 * credit will wake it (others' may depend on
				 * it moving) */
				if (len < MIN_FRAME &&
				    s->send_credit < l->peer.window) {
					l->cap_blocked = true;
					l->cap_hits++;
					goto out;
				}
			}
		}
		if (len > s->send_credit)
			len = (size_t)s->send_credit;
		if (len > WAN_FRAME_MAX_PAYLOAD)
			len = WAN_FRAME_MAX_PAYLOAD;
		for (int i = 0; i < 2; i++) {
			len = wan_shaper_avail(s->shaper[i], len, &s->waiter);
			if (len == 0) {
				wan_shaper_wait(s->shaper[i], &s->waiter);
				goto out;
			}
		}
		wan_shaper_charge(s->shaper[0], WAN_FRAME_HDR + DATA_SUM + len);
		wan_shaper_charge(s->shaper[1], WAN_FRAME_HDR + DATA_SUM + len);
		if (s->cbs.observe != NULL && s->enc == NULL)
			stream_observe(s, in, len);
		if ((r = rtx_new(l, WAN_DATA, s->id, DATA_SUM + len)) == NULL)
			return;
		p = r->buf + WAN_FRAME_HDR;
		if (evbuffer_remove(src, p + DATA_SUM, len) != (int)len) {
			free(r);
			link_break(l);
			return;
		}
		wm_put_be64(p, XXH3_64bits(p + DATA_SUM, len));
		if (l->fault_corrupt != 0 && --l->fault_corrupt == 0) {
			p[DATA_SUM + len / 2] ^= 0x20;
			log_warnx("fault injection: flipped a bit in stream %u",
			    s->id);
		}
		s->send_credit -= len;
		l->inflight += len;
		if (s->enc == NULL)
			s->st.local_in += len;
		s->st.wan_out += r->len;
		link_push(l, r, r->len - WAN_FRAME_HDR, c);
	}
	if (s->local_eof && evbuffer_get_length(in) == 0 &&
	    evbuffer_get_length(src) == 0 && (s->enc == NULL || s->enc_done)) {
		send_seq(l, WAN_FIN, s->id, NULL, 0);
		s->fin_sent = true;
		s->st.wan_out += WAN_FRAME_HDR;
		stream_check_done(s); /* may free s */
		return;
	}
out:
	stream_read_gate(s, in);
}

static void
local_readcb(struct bufferevent *b, void *arg)
{
	(void)b;
	stream_pump(arg);
}

static int stream_decode(struct wan_stream *s);

static void
local_writecb(struct bufferevent *b, void *arg)
{
	struct wan_stream *s = arg;

	(void)b;
	if (s->dec != NULL) {
		(void)stream_decode(s); /* may reset s */
		return;
	}
	stream_try_shut(s);
}

static void
local_eventcb(struct bufferevent *b, short what, void *arg)
{
	struct wan_stream *s = arg;
	char why[256];

	(void)b;
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();

		snprintf(why, sizeof(why), "hypervisor connection: %s",
		    e ? strerror(e) : "error");
		wan_stream_reset(s, WAN_RST_ERROR, why);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		if (s->cbs.local_end != NULL &&
		    !s->cbs.local_end(s, why, sizeof(why), s->arg)) {
			wan_stream_reset(s, WAN_RST_ERROR, why);
			return;
		}
		s->local_eof = true;
		stream_pump(s);
	}
}

/* Hands n bytes of credit back, in WINDOW frames of at least an eighth of
 * the window, or ACK_SOON when all is (the buffer ran empty); less waits
 * up to FLUSH_MS (link_defer). */
static void
stream_credit(struct wan_stream *s, size_t n, bool all)
{
	struct wan_link *l = s->link;

	s->to_credit += n;
	if (l->dead || s->to_credit == 0)
		return;
	if (s->to_credit >= l->p.window / 8 ||
	    (all && s->to_credit >= ACK_SOON)) {
		send_u32(l, WAN_WINDOW, s->id, (uint32_t)s->to_credit);
		s->recv_unacked -= s->to_credit;
		s->to_credit = 0;
	} else {
		link_defer(l);
	}
}

/*
 * Decodes received bytes into the hypervisor's output while it holds less
 * than DEC_OUT_HIGH, a unit (block) at a time; the encoded bytes a block
 * took are credited back then, so the window bounds what waits on both
 * sides of the decoder. The bytes of a unit that has not fully arrived are
 * credited at once: the sender must be able to complete it whatever the
 * in-flight bound (which may be smaller than a block), and they are at
 * most one unit more. A unit's bytes reach the output only once they
 * match its checksum; a failure resets the stream (fail closed), and so
 * does a FIN before the encoder's END record. Returns -1 if it reset s.
 */
static int
stream_decode(struct wan_stream *s)
{
	struct wan_link *l = s->link;
	struct evbuffer *out;
	bool incomplete = false;
	char why[256];

	if (s->local == NULL || s->dead)
		return 0;
	out = bufferevent_get_output(s->local);
	while (evbuffer_get_length(out) < DEC_OUT_HIGH) {
		size_t avail = evbuffer_get_length(s->decq), olen, peek, k;
		struct evbuffer_iovec v = { NULL, 0 };
		uint8_t *p;
		long need;

		if (avail == 0)
			break;
		peek = avail < PC_BLOCK_HDR ? avail : PC_BLOCK_HDR;
		p = evbuffer_pullup(s->decq, (ev_ssize_t)peek);
		need = p ? pc_dec_next(s->dec, p, peek, &olen, why, sizeof(why)) : -1;
		if (p == NULL)
			snprintf(why, sizeof(why), "out of memory");
		if (need < 0)
			goto fail;
		if (need == 0 || (size_t)need > avail) {
			/* incomplete: credit what came of it */
			incomplete = true;
			stream_credit(s, avail - s->dec_early, true);
			s->dec_early = avail;
			if (l->dead)
				return -1; /* the credit failed the link */
			break;
		}
		if ((p = evbuffer_pullup(s->decq, need)) == NULL ||
		    (olen > 0 && evbuffer_reserve_space(out, (ev_ssize_t)olen,
		    &v, 1) != 1)) {
			snprintf(why, sizeof(why), "out of memory");
			goto fail;
		}
		if (pc_dec_unit(s->dec, p, (size_t)need, v.iov_base, why,
		    sizeof(why)) != 0)
			goto fail;
		if (olen > 0) {
			v.iov_len = olen;
			evbuffer_commit_space(out, &v, 1);
		}
		evbuffer_drain(s->decq, (size_t)need);
		k = s->dec_early < (size_t)need ? s->dec_early : (size_t)need;
		s->dec_early -= k;
		stream_credit(s, (size_t)need - k,
		    evbuffer_get_length(s->decq) == 0);
		if (l->dead)
			return -1; /* the credit failed the link: s is gone */
	}
	/* the peer ended the stream: nothing more will complete a unit */
	if (s->fin_rcvd && !pc_dec_done(s->dec) &&
	    (incomplete || evbuffer_get_length(s->decq) == 0)) {
		/* a clean end, but not the encoder's: never pass it on as
		 * one (the destination would take a truncated stream for a
		 * whole one) */
		snprintf(why, sizeof(why), "the encoded stream ended before "
		    "its end record");
		goto fail;
	}
	stream_try_shut(s);
	return 0;
fail:
	log_warnx("stream %u: decoder: %s", s->id, why);
	{
		char msg[300];

		snprintf(msg, sizeof(msg), "decoder: %s", why);
		wan_stream_reset(s, WAN_RST_PROTO, msg);
	}
	return -1;
}

/* Counts bytes the hypervisor took and hands the credit back. */
static void
local_outcb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct wan_stream *s = arg;

	(void)buf;
	if (info->n_deleted == 0 || s->dead)
		return;
	s->st.local_out += info->n_deleted;
	if (s->dec != NULL)
		return; /* credit goes back as the decoder takes the bytes */
	stream_credit(s, info->n_deleted, info->orig_size == info->n_deleted);
}

static void
stream_hook_local(struct wan_stream *s, struct bufferevent *b)
{
	s->local = b;
	set_abortive_close(bufferevent_getfd(b), true);
	bufferevent_setcb(b, local_readcb, local_writecb, local_eventcb, s);
	bufferevent_setwatermark(b, EV_READ, 0, LOCAL_IN_HIGH);
	bufferevent_set_max_single_read(b, IO_CHUNK);
	bufferevent_set_max_single_write(b, IO_CHUNK);
	s->out_cb = evbuffer_add_cb(bufferevent_get_output(b), local_outcb, s);
	if (s->dec != NULL) /* decode more once the output ran this low */
		bufferevent_setwatermark(b, EV_WRITE, DEC_OUT_HIGH / 2, 0);
	bufferevent_enable(b, EV_READ | EV_WRITE);
}

static void
stream_shaper_ready(void *arg)
{
	stream_pump(arg);
}

void
wan_stream_set_shapers(struct wan_stream *s, struct wan_shaper *a,
    struct wan_shaper *b, const void *group)
{
	/* Set once, before the stream has data to send: rate changes are
	 * made on the buckets themselves (wan_shaper_set_rate). */
	s->shaper[0] = a;
	s->shaper[1] = b;
	s->group = group;
}

static struct wan_stream *
stream_new(struct wan_link *l, uint32_t id)
{
	struct wan_stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->link = l;
	s->id = id;
	s->waiter.cb = stream_shaper_ready;
	s->waiter.arg = s;
	s->send_credit = l->peer.window;
	TAILQ_INSERT_TAIL(&l->streams, s, entry);
	l->st.streams++;
	return s;
}

struct wan_stream *
wan_stream_open(struct wan_link *l, struct bufferevent *bev,
    const struct wan_open *o, const struct wan_stream_cbs *cbs, void *arg)
{
	uint8_t b[WAN_CTRL_MAX];
	struct wan_stream *s;
	int n;

	if (!wan_link_ready(l) || !l->has_peer || l->st.streams >= MAX_STREAMS ||
	    l->next_id > UINT32_MAX - 2 ||
	    (n = wan_open_encode(b, sizeof(b), o)) < 0 ||
	    (s = stream_new(l, l->next_id)) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	l->next_id += 2;
	s->cbs = *cbs;
	s->arg = arg;
	send_seq(l, WAN_OPEN, s->id, b, (size_t)n);
	s->st.wan_out += WAN_FRAME_HDR + (size_t)n;
	stream_hook_local(s, bev);
	return s;
}

void
wan_stream_set_cbs(struct wan_stream *s, const struct wan_stream_cbs *cbs,
    void *arg)
{
	s->cbs = *cbs;
	s->arg = arg;
}

void
wan_stream_attach(struct wan_stream *s, struct bufferevent *bev)
{
	stream_hook_local(s, bev);
	if (s->pending != NULL) {
		evbuffer_add_buffer(bufferevent_get_output(bev), s->pending);
		evbuffer_free(s->pending);
		s->pending = NULL;
	}
	/* The shut cannot end the stream here (nothing was sent yet, so no
	 * FIN); the pump may, so it goes last. */
	if (s->dec != NULL) {
		if (stream_decode(s) != 0)
			return;
	} else {
		stream_try_shut(s);
	}
	stream_pump(s);
}

int
wan_stream_set_encoder(struct wan_stream *s, struct pc_enc *e)
{
	if (s->st.local_in != 0 || s->enc != NULL ||
	    (s->encq = evbuffer_new()) == NULL) {
		pc_enc_free(e);
		return -1;
	}
	s->enc = e;
	return 0;
}

int
wan_stream_set_decoder(struct wan_stream *s, struct pc_dec *d)
{
	if (s->st.wan_in > WAN_FRAME_HDR + WAN_CTRL_MAX || s->dec != NULL ||
	    s->local != NULL || (s->decq = evbuffer_new()) == NULL) {
		pc_dec_free(d);
		return -1;
	}
	s->dec = d;
	return 0;
}

bool
wan_stream_codec_stats(const struct wan_stream *s, struct pc_stats *st)
{
	if (s->enc == NULL)
		return false;
	pc_enc_get_stats(s->enc, st);
	return true;
}

const struct wan_stream_stats *
wan_stream_get_stats(const struct wan_stream *s)
{
	return &s->st;
}



/* ---- receiving frames -------------------------------------------------- */

static void
recv_open(struct wan_link *l, const struct wan_frame_hdr *h, const uint8_t *p)
{
	struct wan_open o;
	struct wan_stream *s;
	char why[256] = "refused";

	/* The peer numbers its streams with the other parity, upward. */
	if (wan_open_decode(p, h->length, &o) != 0 ||
	    (h->stream & 1) == (l->p.dialled ? 1u : 0u) ||
	    h->stream <= l->last_peer_id) {
		link_fail(l, "malformed OPEN");
		return;
	}
	l->last_peer_id = h->stream;
	if (o.flags & ~WAN_OPEN_ENCODED) {
		send_rst(l, h->stream, WAN_RST_REFUSED, "unknown OPEN flags");
		return;
	}
	if (l->st.streams >= MAX_STREAMS) {
		send_rst(l, h->stream, WAN_RST_REFUSED, "too many streams");
		return;
	}
	s = stream_new(l, h->stream);
	if (s == NULL) {
		send_rst(l, h->stream, WAN_RST_REFUSED, "out of memory");
		return;
	}
	s->pending = evbuffer_new();
	s->st.wan_in += WAN_FRAME_HDR + h->length;
	if (s->pending == NULL ||
	    l->cbs.open(l, s, &o, why, sizeof(why), l->arg) != 0) {
		send_rst(l, h->stream, WAN_RST_REFUSED, why);
		s->cbs.closed = NULL; /* the owner refused it: nobody to tell */
		stream_finish(s, WAN_CLOSED_RESET, why);
	}
}

/*
 * DATA: the payload (checksum, then bytes) is at the head of src. The
 * bytes go to the hypervisor only if they match their checksum: a frame
 * damaged anywhere between the two gateways' memories resets the stream
 * (fail closed, invariant 2) instead of reaching the destination QEMU.
 */
static void
recv_data(struct wan_link *l, const struct wan_frame_hdr *h,
    struct evbuffer *src)
{
	struct wan_stream *s = stream_find(l, h->stream);
	size_t len = h->length - DATA_SUM;
	uint8_t sum[DATA_SUM];
	unsigned char *p;

	if (s == NULL || s->fin_rcvd) {
		/* A stream we reset while its data was in flight. */
		evbuffer_drain(src, h->length);
		return;
	}
	if (len > l->p.window - s->recv_unacked) {
		evbuffer_drain(src, h->length);
		wan_stream_reset(s, WAN_RST_PROTO, "peer overran its window");
		return;
	}
	evbuffer_remove(src, sum, sizeof(sum));
	p = evbuffer_pullup(src, (ev_ssize_t)len);
	if (p == NULL) {
		link_fail(l, "out of memory reading a frame");
		return;
	}
	if (XXH3_64bits(p, len) != wm_get_be64(sum)) {
		evbuffer_drain(src, len);
		log_warnx("stream %u: DATA frame %llu fails its checksum",
		    s->id, (unsigned long long)h->seq);
		wan_stream_reset(s, WAN_RST_PROTO,
		    "checksum mismatch: data damaged in the tunnel");
		return;
	}
	s->recv_unacked += len;
	s->st.wan_in += WAN_FRAME_HDR + h->length;
	if (s->dec != NULL) {
		if (evbuffer_remove_buffer(src, s->decq, len) != (int)len) {
			link_fail(l, "out of memory moving stream data");
			return;
		}
		(void)stream_decode(s);
		return;
	}
	if (evbuffer_remove_buffer(src, s->local != NULL ?
	    bufferevent_get_output(s->local) : s->pending, len) != (int)len)
		link_fail(l, "out of memory moving stream data");
}

static void
recv_stream_ctrl(struct wan_link *l, const struct wan_frame_hdr *h,
    const uint8_t *p)
{
	struct wan_stream *s = stream_find(l, h->stream);
	uint32_t credit;

	if (s == NULL)
		return; /* late frame for a stream already gone */
	s->st.wan_in += WAN_FRAME_HDR + h->length;
	switch (h->type) {
	case WAN_FIN:
		s->fin_rcvd = true;
		if (s->dec != NULL)
			(void)stream_decode(s);
		else
			stream_try_shut(s);
		break;
	case WAN_RST: {
		struct wan_rst r;
		char why[300];

		if (wan_rst_decode(p, h->length, &r) != 0)
			snprintf(r.reason, sizeof(r.reason), "(malformed)");
		snprintf(why, sizeof(why), "reset by peer: %s", r.reason);
		stream_finish(s, WAN_CLOSED_RESET, why);
		break;
	}
	case WAN_WINDOW:
		if (wan_u32_decode(p, h->length, &credit) != 0)
			break;
		if (credit > l->peer.window - s->send_credit) {
			wan_stream_reset(s, WAN_RST_PROTO, "peer granted excess credit");
			break;
		}
		s->send_credit += credit;
		l->credited += credit;
		l->inflight = l->inflight > credit ? l->inflight - credit : 0;
		/* far is left as sampled (bytes behind a gap leave it by
		 * the peer's ACK, not by credit); while a stream waits on the
		 * bound, a fresh sample (at most one per FLUSH_MS: it costs
		 * two system calls per connection) may let it go now */
		if (l->cap_blocked && l->inflight >= link_bound(l) &&
		    wm_now_ms() - l->far_ms >= FLUSH_MS)
			link_sample_far(l);
		if (l->cap_blocked && (l->inflight < link_bound(l) ||
		    l->nactive > 1))
			link_pump_all(l);
		else
			stream_pump(s);
		break;
	default:
		break;
	}
}

/* Acts on the next frame in sequence; its payload is at the head of src
 * and is consumed. */
static void
deliver(struct wan_link *l, const struct wan_frame_hdr *h,
    struct evbuffer *src)
{
	uint8_t p[WAN_CTRL_MAX];

	if (h->type == WAN_DATA) {
		if (h->length <= DATA_SUM) {
			link_fail(l, "DATA frame without bytes");
			return;
		}
		recv_data(l, h, src);
		return;
	}
	if (h->length > sizeof(p)) {
		link_fail(l, "oversized control frame");
		return;
	}
	evbuffer_remove(src, p, h->length);
	if (h->type == WAN_OPEN)
		recv_open(l, h, p);
	else
		recv_stream_ctrl(l, h, p);
}

static void
ooo_free(struct wan_link *l, uint64_t seq)
{
	struct ooo **slot = &l->ooo[seq & (OOO_RING - 1)], *o = *slot;

	l->ooo_bytes -= (uint64_t)o->h.length + OOO_ENTRY_COST;
	evbuffer_free(o->payload);
	free(o);
	*slot = NULL;
}

/*
 * Keeps a frame that arrived ahead of a gap, in a ring indexed by seq: no
 * more than OOO_RING frames ahead and the reorder bound in bytes (charged
 * as the sender charges its retransmit buffer), or the peer broke the
 * protocol.
 */
static void
ooo_stash(struct wan_link *l, const struct wan_frame_hdr *h,
    struct evbuffer *src)
{
	uint64_t cost = (uint64_t)h->length + OOO_ENTRY_COST;
	struct ooo **slot, *o;

	if (h->seq - l->recv_next >= OOO_RING) {
		link_fail(l, "peer sent too far ahead of a gap");
		return;
	}
	if (l->ooo == NULL && (l->ooo = calloc(OOO_RING, sizeof(*l->ooo))) == NULL) {
		link_fail(l, "out of memory for the reorder buffer");
		return;
	}
	slot = &l->ooo[h->seq & (OOO_RING - 1)];
	if (*slot != NULL) {
		evbuffer_drain(src, h->length); /* a copy resent */
		return;
	}
	if (l->ooo_bytes + cost > (uint64_t)l->p.reorder + (1u << 20)) {
		link_fail(l, "peer sent past our reorder buffer");
		return;
	}
	o = calloc(1, sizeof(*o));
	if (o == NULL || (o->payload = evbuffer_new()) == NULL ||
	    evbuffer_remove_buffer(src, o->payload, h->length) !=
	    (int)h->length) {
		if (o != NULL && o->payload != NULL)
			evbuffer_free(o->payload);
		free(o);
		link_fail(l, "out of memory holding a frame");
		return;
	}
	o->h = *h;
	l->ooo_bytes += cost;
	*slot = o;
}

static void
send_ack(struct wan_link *l, struct wan_conn *c)
{
	if (l->recv_next == l->ack_sent)
		return;
	if (conn_send_u64(c, WAN_ACK, l->recv_next) != 0)
		return; /* that connection is failing: the next read retries */
	l->ack_sent = l->recv_next;
	l->since_ack = 0;
}

void
link_conn_frame(struct wan_link *l, struct wan_conn *c,
    const struct wan_frame_hdr *h, struct evbuffer *in)
{
	uint8_t p[WAN_CTRL_MAX];
	struct ooo *o;
	uint64_t v;

	if (h->type == WAN_ACK || h->type == WAN_CLOSE) {
		char reason[256], why[300];

		evbuffer_remove(in, p, h->length); /* both bounded */
		if (h->type == WAN_CLOSE) {
			if (wan_str_decode(p, h->length, reason,
			    sizeof(reason)) != 0)
				snprintf(reason, sizeof(reason), "(malformed)");
			snprintf(why, sizeof(why), "peer ended the session: %s",
			    reason);
			link_fail(l, why);
			return;
		}
		if (wan_u64_decode(p, h->length, &v) != 0 || v > l->send_next) {
			link_fail(l, "peer acknowledged frames never sent");
			return;
		}
		link_acked(l, v);
		return;
	}
	if (h->seq < l->recv_next) {
		/* Resent, and we have it: the ACK that would have stopped the
		 * resending may be lost, so acknowledge again. */
		evbuffer_drain(in, h->length);
		l->ack_sent = 0;
		return;
	}
	if (h->seq > l->recv_next) {
		ooo_stash(l, h, in);
		return;
	}
	if (l->ooo != NULL && l->ooo[h->seq & (OOO_RING - 1)] != NULL)
		ooo_free(l, h->seq); /* an earlier copy, held: not needed */
	deliver(l, h, in);
	l->recv_next++;
	l->since_ack += WAN_FRAME_HDR + h->length;
	while (!l->dead && l->ooo != NULL &&
	    (o = l->ooo[l->recv_next & (OOO_RING - 1)]) != NULL) {
		deliver(l, &o->h, o->payload);
		l->since_ack += WAN_FRAME_HDR + o->h.length;
		if (l->dead)
			break; /* the ring goes with the link */
		ooo_free(l, l->recv_next++);
	}
	if (!l->dead && l->since_ack >= ACK_EVERY)
		send_ack(l, c);
}

void
link_conn_read_done(struct wan_link *l, struct wan_conn *c)
{
	if (l->dead)
		return;
	if (l->since_ack >= ACK_SOON)
		send_ack(l, c);
	else if (l->recv_next != l->ack_sent)
		link_defer(l);
}

/* Holds small acknowledgements and credit for at most FLUSH_MS, to go out
 * together: a sender held by the in-flight bound waits no longer. */
static void
link_defer(struct wan_link *l)
{
	struct timeval tv = { 0, FLUSH_MS * 1000 };

	if (!l->dead && !event_pending(l->flushev, EV_TIMEOUT, NULL))
		event_add(l->flushev, &tv);
}

static void
link_flushcb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_link *l = arg;

	(void)fd;
	(void)what;
	if (!l->dead && l->nready > 0)
		link_flush_delayed(l);
}

/* Sends the acknowledgement and the stream credit that waited (at most
 * FLUSH_MS) to go out together with more. */
static void
link_flush_delayed(struct wan_link *l)
{
	struct wan_conn *c;
	struct wan_stream *s;

	if (l->recv_next != l->ack_sent) {
		struct wan_conn *best = NULL;

		TAILQ_FOREACH(c, &l->conns, entry)
			if (c->ready && !c->dead && !c->broken && (best == NULL ||
			    conn_out_len(c) < conn_out_len(best)))
				best = c;
		if (best != NULL)
			send_ack(l, best);
	}
	TAILQ_FOREACH(s, &l->streams, entry) {
		if (s->dead || s->to_credit == 0)
			continue;
		send_u32(l, WAN_WINDOW, s->id, (uint32_t)s->to_credit);
		if (l->dead)
			return; /* that failed the link: the streams are gone */
		s->recv_unacked -= s->to_credit;
		s->to_credit = 0;
	}
}

/* ---- connections ------------------------------------------------------- */

static void
link_send_hello(struct wan_link *l, struct wan_conn *c)
{
	struct wan_hello h = {
		.version = WAN_PROTO_VERSION,
		.window = l->p.window,
		.reorder = l->p.reorder,
		.session = l->session,
		.send_next = l->send_next,
		.recv_next = l->recv_next,
	};
	uint8_t buf[WAN_CTRL_MAX];
	int n;

	if (l->st.up_since_ms == 0 && l->send_next == 1 && l->recv_next == 1)
		h.flags = WAN_HELLO_NEW;
	snprintf(h.site, sizeof(h.site), "%s", l->site);
	n = wan_hello_encode(buf, sizeof(buf), &h);
	if (n >= 0)
		conn_send_ctrl(c, WAN_HELLO, buf, (size_t)n);
}

void
link_conn_tls_up(struct wan_link *l, struct wan_conn *c)
{
	if (!l->dead)
		link_send_hello(l, c);
}

/*
 * The peer's HELLO on c. With another connection up the session simply
 * gains one. After an outage (none up) the two sides compare where they
 * are: the peer must still want only frames we hold, and must not have
 * lost frames it sent us; else the session cannot resume and ends.
 */
void
link_conn_hello(struct wan_link *l, struct wan_conn *c)
{
	const struct wan_hello *h = &c->peer;
	bool resumed;
	char why[320];

	if (!c->p.dialled)
		link_send_hello(l, c);
	if (h->session != l->session) {
		conn_fail(c, "peer answered for another session");
		return;
	}
	if (l->peer_site[0] != '\0' && strcmp(h->site, l->peer_site) != 0) {
		snprintf(why, sizeof(why), "peer announces itself as \"%s\"",
		    h->site);
		conn_fail(c, why);
		return;
	}
	if (l->has_peer && (h->window != l->peer.window ||
	    h->reorder != l->peer.reorder || strcmp(h->site, l->peer.site) != 0)) {
		link_fail(l, "peer changed its parameters within the session");
		return;
	}
	/* A NEW session holds nothing of ours: fine if we have received
	 * nothing and still hold all we sent, else it is not our peer's
	 * session any more (it restarted, or gave it up). */
	if ((h->flags & WAN_HELLO_NEW) &&
	    (l->recv_next > 1 || link_rtx_base(l) > 1)) {
		link_fail(l, "the peer no longer has this session (restarted?)");
		return;
	}
	/* A HELLO may be older than ACKs or frames that crossed it on
	 * another connection, so a peer behind what we know is fine; one
	 * ahead of what we ever sent is not the session we know. */
	if (h->recv_next > l->send_next) {
		snprintf(why, sizeof(why), "cannot resume: peer wants frame "
		    "%llu, we sent up to %llu", (unsigned long long)h->recv_next,
		    (unsigned long long)l->send_next - 1);
		link_fail(l, why);
		return;
	}
	link_acked(l, h->recv_next);
	if (!l->has_peer) {
		l->peer = *h;
		l->has_peer = true;
	}
	c->ready = true;
	c->last_ping_ms = 0;
	l->nready++;
	link_defer(l); /* what was held while no connection could take it */
	resumed = l->st.down_since_ms != 0;
	if (l->st.up_since_ms == 0)
		l->st.up_since_ms = wm_now_ms();
	if (resumed) {
		l->st.resumes++;
		l->st.down_since_ms = 0;
	}
	if (l->cbs.conn_up != NULL)
		l->cbs.conn_up(l, resumed, l->arg);
	if (l->dead)
		return;
	link_flush(l);
	link_pump_all(l);
}

void
link_conn_lost(struct wan_link *l, struct wan_conn *c, const char *why)
{
	struct rtx *r;
	bool was_ready = c->ready;

	TAILQ_REMOVE(&l->conns, c, entry);
	c->link = NULL;
	c->ready = false;
	l->st.bytes_sent += c->bytes_sent;
	l->st.bytes_received += c->bytes_received;
	TAILQ_FOREACH(r, &l->rtx, entry) {
		if (r->conn == c) {
			r->conn = NULL;
			l->nunsent++;
		}
	}
	l->unsent = NULL; /* from the head again */
	if (was_ready && --l->nready == 0) {
		l->st.outages++;
		l->st.down_since_ms = wm_now_ms();
	}
	if (l->dead)
		return; /* its owner already heard down() */
	if (l->cbs.conn_down != NULL)
		l->cbs.conn_down(l, was_ready, why, l->arg);
	if (l->dead)
		return;
	if (l->nready == 0 && l->st.up_since_ms != 0 && l->p.resume_ms == 0)
		link_fail(l, why);
	else
		link_flush(l);
}

void
link_conn_writable(struct wan_link *l, struct wan_conn *c)
{
	(void)c;
	link_flush(l);
	if (l->blocked && l->nunsent == 0)
		link_pump_all(l);
}

void
wan_link_add_conn(struct wan_link *l, struct wan_conn *c)
{
	c->link = l;
	c->keepalive_ms = l->p.keepalive_ms;
	c->timeout_ms = l->p.timeout_ms;
	TAILQ_INSERT_TAIL(&l->conns, c, entry);
	if (l->dead) {
		conn_fail(c, "link closed");
		return;
	}
	if (c->p.dialled) {
		if (c->tls_up)
			link_send_hello(l, c);
		return;
	}
	if (c->hello_rcvd)
		link_conn_hello(l, c);
}

/* ---- the link ---------------------------------------------------------- */

/* Pumps every stream of the link once (after a connection, the in-flight
 * bound or the retransmit buffer opened up again). */
static void
link_pump_all(struct wan_link *l)
{
	struct wan_stream *s;
	unsigned gen;

	/*
	 * A pump may end its stream, and a closed() callback may end others,
	 * so no iterator survives a pump: restart from the head each time and
	 * skip the streams already pumped in this round. A stream that cannot
	 * go on sets the flag that stops the round.
	 */
	struct wan_stream *last = NULL, *t;

	l->blocked = l->cap_blocked = l->rtx_blocked = false;
	gen = ++l->pump_gen;
	for (;;) {
		TAILQ_FOREACH(s, &l->streams, entry)
			if (s->pump_gen != gen)
				break;
		if (s == NULL || l->dead)
			return;
		if (l->blocked || l->cap_blocked || l->rtx_blocked) {
			/* The stream that filled the link goes last next
			 * round, so that streams share the room in turn
			 * (if the pump did not end it). */
			TAILQ_FOREACH(t, &l->streams, entry)
				if (t == last)
					break;
			if (t != NULL) {
				TAILQ_REMOVE(&l->streams, t, entry);
				TAILQ_INSERT_TAIL(&l->streams, t, entry);
			}
			return;
		}
		s->pump_gen = gen;
		last = s;
		stream_pump(s);
	}
}

/*
 * Out of memory while moving stream bytes: a stream may be short of bytes,
 * so nothing more may be delivered on this link. It fails from the loop
 * (this runs inside loops over its streams), which resets every stream on
 * it: fail closed, never a corrupted stream.
 */
static void
link_break(struct wan_link *l)
{
	if (l->broken)
		return;
	l->broken = true;
	event_active(l->breakev, 0, 0);
}

static void
link_breakcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	link_fail(arg, "out of memory moving stream data");
}

static void
link_unblockcb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_link *l = arg;

	(void)fd;
	(void)what;
	if (!l->dead)
		link_pump_all(l);
}

/*
 * What the in-flight bound counts. Bytes that the peer's kernel has
 * acknowledged but the peer has not (its ACK is cumulative, in frame
 * order) wait at the far end for a gap to be repaired: one lost segment
 * holds back what every other connection delivered, for a round trip or
 * more, and at 0.1 % loss on a long fat link there is nearly always such a
 * gap. They add nothing to what QEMU would find still queued when it stops
 * the VM (invariant 5), so they do not count against the bound, up to
 * twice the bound: after a loss on a 1 Gbit/s, 150 ms path they are a
 * round trip of data and more, and with the bound once more as the limit
 * the tunnel still starved its connections of bytes to send now and then
 * (tunnel/1 at 0.1 % loss 850 Mbit/s on average, 883 with twice). Bytes
 * the peer has in order but the destination has not read yet do count: a
 * slow destination is part of the drain rate QEMU must see. The far end's
 * memory has its own limits, the window and the reorder bound.
 */
static uint64_t
link_bound(const struct wan_link *l)
{
	return l->inflight_cap +
	    (l->far < 2 * l->inflight_cap ? l->far : 2 * l->inflight_cap);
}

/* glibc's struct tcp_info ends at tcpi_total_retrans; the kernel's goes on
 * (fields are only ever appended) to tcpi_min_rtt, since Linux 4.10. */
struct wm_tcp_info {
	struct tcp_info ti;
	uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
	uint32_t segs_out, segs_in, notsent_bytes, min_rtt;
};
_Static_assert(offsetof(struct wm_tcp_info, min_rtt) == 148,
    "struct tcp_info is not laid out as the kernel's");

/* The kernel's TCP_INFO of fd, up to tcpi_min_rtt; false if it would not
 * give that much (before Linux 4.10). */
static bool
conn_tcp_info(evutil_socket_t fd, struct wm_tcp_info *t)
{
	socklen_t len = sizeof(*t);

	memset(t, 0, sizeof(*t));
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, t, &len) == 0 &&
	    len >= sizeof(*t);
}

/*
 * What a connection still holds on this side of the WAN, in bytes, into
 * *n: its queue, what the kernel has not sent (tcpi_notsent_bytes), and
 * what it sent that the far end has neither acknowledged nor selectively
 * acknowledged (unacked less sacked segments: a segment past a loss has
 * arrived even though TCP cannot release it yet). One system call. False
 * if the kernel would not say.
 */
static bool
conn_ours(const struct wan_conn *c, uint64_t *n)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	struct wm_tcp_info t;

	*n = conn_out_len(c);
	if (fd < 0)
		return true; /* not connected: nothing in a kernel */
	if (!conn_tcp_info(fd, &t))
		return false;
	*n += (uint64_t)t.notsent_bytes + (uint64_t)t.ti.tcpi_snd_mss *
	    (t.ti.tcpi_unacked > t.ti.tcpi_sacked ?
	    t.ti.tcpi_unacked - t.ti.tcpi_sacked : 0);
	return true;
}

/*
 * What stream s may still send under the bound: what the link has left,
 * or, with other streams active, at least what remains of its fair share.
 * The bound is shared, so without the share a stream whose destination
 * stops reading would keep all of it (up to its window) and starve the
 * others until its idle timeout; with it, each of g active groups (the
 * migrations, wan_stream_set_shapers; a stream without one is a group of
 * its own) can always have bound/g in flight, split evenly among its
 * active streams, and the link at most twice the bound (plus what waits at
 * the far end, link_bound()).
 */
static uint64_t
stream_room(const struct wan_stream *s)
{
	const struct wan_link *l = s->link;
	uint64_t bound = link_bound(l), own = l->peer.window - s->send_credit;
	uint64_t room = l->inflight < bound ? bound - l->inflight : 0;
	uint64_t share = l->nactive > 1 && s->active ?
	    bound / l->ngroups / s->waiter.group_n : 0;

	return share > own && share - own > room ? share - own : room;
}

/*
 * Samples l->far, each head-of-line tick and on credit while a stream
 * waits on the bound: what the peer has not acknowledged (the resend
 * buffer) less what this side still holds (conn_ours). Duplicates count as
 * ours, so this errs low, and so does a kernel that would not say (0).
 * Without a connection nothing is past the WAN; while frames wait for room
 * on the connections, no stream sends anyway, and the last sample stands.
 */
static void
link_sample_far(struct wan_link *l)
{
	uint64_t ours = 0, n, before = link_bound(l);
	uint64_t unacked = l->rtx_bytes - (uint64_t)l->rtx_n * OOO_ENTRY_COST;
	const struct wan_conn *c;

	l->far_ms = wm_now_ms();
	if (l->nready == 0 || unacked == 0) {
		l->far = 0;
		return;
	}
	if (l->nunsent > 0)
		return;
	TAILQ_FOREACH(c, &l->conns, entry) {
		if (!conn_ours(c, &n)) {
			l->far = 0;
			return;
		}
		ours += n;
	}
	l->far = unacked <= ours ? 0 : unacked - ours;
	if (l->far > l->inflight)
		l->far = l->inflight;
	if (l->cap_blocked && link_bound(l) > before &&
	    l->inflight < link_bound(l))
		event_active(l->unblock, 0, 0);
}

/* Counts the streams that are sending or have bytes in flight, and their
 * groups (their fair share of the bound, stream_room); with more than one,
 * streams held back by the bound are tried again, as their share may let
 * them go. */
static void
link_count_active(struct wan_link *l)
{
	struct wan_stream *s, *o;
	unsigned n = 0, groups = 0;

	TAILQ_FOREACH(s, &l->streams, entry) {
		s->active = !s->dead && (s->send_credit < l->peer.window ||
		    (s->encq != NULL && evbuffer_get_length(s->encq) > 0) ||
		    (s->local != NULL && !s->fin_sent &&
		    evbuffer_get_length(bufferevent_get_input(s->local)) > 0));
		s->waiter.group_n = 1;
	}
	/* a migration's few streams: quadratic in them, not in migrations;
	 * a group is counted with its first active stream in list order */
	TAILQ_FOREACH(s, &l->streams, entry) {
		bool first = true, past = false;

		if (!s->active)
			continue;
		n++;
		if (s->group != NULL) {
			TAILQ_FOREACH(o, &l->streams, entry) {
				if (o == s)
					past = true;
				else if (o->active && o->group == s->group) {
					s->waiter.group_n++;
					first = first && past;
				}
			}
		}
		if (first)
			groups++;
	}
	l->nactive = n;
	l->ngroups = groups;
	if (n > 1 && l->cap_blocked)
		event_active(l->unblock, 0, 0);
}

/*
 * Head-of-line repair. Striped frames are delivered in order, so one lost
 * TCP segment on one connection holds back what all the others carried
 * until that connection repairs it (a round trip, or an RTO of seconds).
 * When the oldest unacknowledged frame has waited more than two smoothed
 * round trips of its connection, the frames at the head that went on its
 * connection are sent once more on the least loaded other one; the
 * receiver keeps whichever copy comes first.
 */
static void
link_holcb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_link *l = arg;
	struct rtx *r = TAILQ_FIRST(&l->rtx), *q;
	struct wan_conn *stuck, *c, *best = NULL;
	double rtt = -1;
	size_t moved = 0;

	(void)fd;
	(void)what;
	if (l->dead)
		return;
	link_sample_far(l);
	link_count_active(l);
	if (r == NULL)
		return;
	if (r->seq != l->head_seq || l->nready < 2) {
		l->head_seq = r->seq;
		l->head_ms = wm_now_ms();
		return;
	}
	if (r->conn == NULL || r->reinjected)
		return;
	/* The smoothed RTT of its connection: a PING waits behind the data
	 * queued there, so a frame merely queued is not taken for lost. */
	stuck = r->conn;
	rtt = stuck->rtt_ms;
	/* the ACK may wait FLUSH_MS (link_defer), the check a tick */
	if (rtt < 0 || (double)(wm_now_ms() - l->head_ms) <
	    2 * rtt + HOL_MS + FLUSH_MS)
		return;
	TAILQ_FOREACH(c, &l->conns, entry)
		if (c != stuck && c->ready && !c->dead && !c->broken &&
		    (best == NULL || conn_out_len(c) < conn_out_len(best)))
			best = c;
	if (best == NULL || conn_out_len(best) >= LINK_OUT_HIGH)
		return;
	for (q = r; q != NULL && moved < (1u << 20); q = TAILQ_NEXT(q, entry)) {
		if (q->conn != stuck || q->reinjected)
			continue;
		if (conn_send(best, q->buf, q->len) != 0)
			return;
		q->reinjected = true;
		moved += q->len;
		l->st.bytes_resent += q->len;
	}
}

/*
 * Samples what the kernel knows of c: into c->path_rtt_ms TCP's own
 * minimum RTT (tcpi_min_rtt, from acknowledgements over the last 5
 * minutes), or -1 if the kernel does not say; into c->bbr_bw BBR's estimate
 * of the connection's bottleneck rate, bytes/s (0 with another congestion
 * control), and into c->bbr_startup whether BBR is still in STARTUP (pacing
 * at its high gain, 2.89).
 *
 * The path's RTT comes from the kernel, not from our PINGs: a PING waits
 * behind every byte queued in the connection, and once a transfer had
 * lasted longer than the PING minimum's 30 s window, its sample (600 ms at
 * 250 Mbit/s and 150 ms) became the minimum and the measured in-flight
 * bound four bandwidth-delay products.
 */
static void
conn_sample(struct wan_conn *c)
{
	union tcp_cc_info info;
	struct wm_tcp_info t;
	socklen_t len = sizeof(info);
	char cc[16] = "";
	socklen_t cclen = sizeof(cc) - 1;
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	bool probe_rtt;

	c->bbr_bw = 0;
	c->bbr_startup = c->bbr_probe_bw = c->rto = false;
	c->path_rtt_ms = -1;
	if (fd < 0)
		return;
	if (conn_tcp_info(fd, &t)) {
		if (t.min_rtt != 0 && t.min_rtt != UINT32_MAX)
			c->path_rtt_ms = (double)t.min_rtt / 1000.0;
		c->rto = t.ti.tcpi_ca_state == TCP_CA_Loss;
	}
	if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &cclen) != 0 ||
	    strcmp(cc, "bbr") != 0 ||
	    getsockopt(fd, IPPROTO_TCP, TCP_CC_INFO, &info, &len) != 0 ||
	    len < sizeof(info.bbr))
		return;
	/* Gains are fixed point, 1.0 = 256; STARTUP's is 739, no other
	 * mode's is above 1.25 (320). */
	c->bbr_startup = info.bbr.bbr_pacing_gain > 2 * 256;
	c->bbr_bw = (double)((uint64_t)info.bbr.bbr_bw_hi << 32 |
	    info.bbr.bbr_bw_lo);
	/* PROBE_BW's cwnd gain is 2; PROBE_RTT is the one mode with both
	 * gains 1. BBR dates its minimum RTT anew when a sample is at or
	 * below it (only a lower one shows here: an equal one makes the
	 * next restart early, which costs nothing), and at the end of
	 * PROBE_RTT. */
	c->bbr_probe_bw = info.bbr.bbr_cwnd_gain == 2 * 256;
	probe_rtt = info.bbr.bbr_cwnd_gain == 256 &&
	    info.bbr.bbr_pacing_gain == 256;
	if (probe_rtt)
		c->bbr_refreshes = 0;
	/* Dated longer ago than BBR keeps a minimum: PROBE_RTT came and
	 * went between two ticks, no sooner than the minimum expired; date
	 * it then, at the earliest. */
	if (!probe_rtt && wm_now_ms() > c->bbr_rtt_stamp_ms + RTT_EXPIRED_MS) {
		c->bbr_refreshes = 0;
		c->bbr_rtt_stamp_ms += BBR_MIN_RTT_MS;
	}
	if (probe_rtt ||
	    (double)info.bbr.bbr_min_rtt / 1000.0 < c->bbr_min_rtt_ms)
		c->bbr_rtt_stamp_ms = wm_now_ms();
	c->bbr_min_rtt_ms = (double)info.bbr.bbr_min_rtt / 1000.0;
}

/*
 * BBR leaves STARTUP after three round trips in which the connection was
 * not app-limited and its delivery rate stopped growing. Under the in-
 * flight bound a tunnel connection is app-limited nearly all the time (the
 * bound, not the socket, holds the backlog), so BBR stayed in STARTUP for
 * the connection's life, sending at 2.89 times its estimate whenever the
 * bound let bytes go. It never drained the queue that this left at the
 * bottleneck, so every 10 s its minimum RTT expired and it went to
 * PROBE_RTT (4 segments in flight for 350 ms), then back to STARTUP with
 * what the bound had let pile up meanwhile, 30 MB at 2.89 times the link's
 * rate: the bottleneck's queue overflowed and dropped segments by the
 * thousand.
 *
 * So when the tunnel is held by the bound (the WAN, not the source, is the
 * limit) and its rate has been flat for a second, a connection still in
 * STARTUP is paced for a moment a little below its share of that rate
 * (SO_MAX_PACING_RATE; the highest of the last 10 s, as BBR keeps the rate
 * it saw while paced as its estimate: pacing at 0.9 of the last second's
 * rate, which STARTUP's bursts made uneven, left BBR with 620 Mbit/s on a
 * 1 Gbit/s path and 3 s to climb back). What the bound lets go then waits
 * in the socket, the connection is no longer app-limited, and BBR sees its
 * rate stop growing and moves on to DRAIN and PROBE_BW, where it stays
 * (nothing but a new connection takes it back to STARTUP). The cap is
 * lifted as soon as BBR has left STARTUP, or after PACE_MAX_MS in any
 * case; a connection that did not leave is not paced again for
 * PACE_RETRY_MS.
 *
 * Only a connection whose BBR has already found its part of the rate (at
 * least PACE_FOUND of an equal split) is paced: one that joined a link
 * already running flat (a redial, the next connections of a new session)
 * has an estimate of a few hundred KB/s, and pacing it there would make
 * BBR leave STARTUP with that estimate and take half a minute in PROBE_BW
 * to climb back. What the pacing costs: for a second or so after the
 * tunnel's rate went flat, 5 % of the rate, also for the final burst of a
 * migration that ends in that second. A source slower than the path never
 * holds the tunnel at the bound and is never paced; a destination slower
 * than the path can be (its in-order bytes count against the bound), and
 * BBR then leaves STARTUP at the destination's rate, climbing back at
 * PROBE_BW's pace (1.25 times every 8 round trips) if the destination
 * speeds up.
 */
/* Caps fd's pacing at Bps bytes/s, or lifts the cap (Bps < 0). */
static bool
conn_set_pacing(evutil_socket_t fd, double Bps)
{
	unsigned rate = Bps < 0 ? ~0u : Bps < (double)(UINT32_MAX - 1) ?
	    (unsigned)Bps : UINT32_MAX - 1;

	return setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, &rate,
	    sizeof(rate)) == 0;
}

static void
conn_pace(struct wan_link *l, struct wan_conn *c, double fair_Bps,
    double share_Bps, bool wan_bound, uint64_t now)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (fd < 0)
		return;
	if (c->paced_ms == 0) {
		if (!c->bbr_startup || !wan_bound ||
		    c->bbr_bw < PACE_FOUND * fair_Bps || share_Bps < 1 ||
		    now < c->pace_next_ms)
			return;
		share_Bps *= PACE_GAIN;
		if (share_Bps > c->bbr_bw)
			share_Bps = c->bbr_bw;
		if (conn_set_pacing(fd, share_Bps)) {
			c->paced_ms = now;
			l->st.bbr_paced++;
		}
		c->pace_next_ms = now + PACE_RETRY_MS;
		return;
	}
	/* a restarted connection keeps its cap, its old estimate, while in
	 * STARTUP: if the source cannot keep it busy it never leaves, and
	 * uncapped STARTUP would burst at 2.89 times the rate */
	if (c->bbr_startup &&
	    (c->bbr_refreshing || now - c->paced_ms < PACE_MAX_MS))
		return;
	if (conn_set_pacing(fd, -1))
		c->paced_ms = 0;
	c->bbr_refreshing = false;
}

/*
 * BBR (v1, the kernel's) keeps the lowest RTT it saw for 10 s; when that
 * is older, it goes to PROBE_RTT: 4 segments in flight for 200 ms and a
 * round trip, to see the path with its queue drained. It dates its
 * minimum anew only on a sample at or below it, and that minimum was
 * taken with the queue drained, in PROBE_RTT; under load nearly every
 * sample carries some queue, so a connection busy for minutes spends a
 * third of a second of every 10 idle. At 1 Gbit/s and 150 ms that is 3 %
 * of the goodput, and a tunnel connection (the source's bytes always
 * waiting) met it every 10.5 s: the seconds around each measured 400 to
 * 800 Mbit/s against 950.
 *
 * So a connection that BBR runs in PROBE_BW, while the tunnel moves at
 * least REFRESH_BUSY of BBR's estimate (the connections, not the source,
 * are the limit) and no operator rate is set, is restarted REFRESH_MS
 * after BBR last dated its minimum, before that expires: its congestion
 * control is switched to reno and back (TCP_CONGESTION), and BBR's init
 * takes the kernel's own minimum RTT of the last 5 minutes (tcpi_min_rtt,
 * from every acknowledgement) as its minimum, dated now. It starts again
 * in STARTUP, held by SO_MAX_PACING_RATE at the rate BBR had estimated:
 * STARTUP's 2.89 times the rate would overflow the bottleneck's queue,
 * and a cap below the estimate (conn_pace() sets one for a new
 * connection) would become the new estimate, holding a connection that
 * was still climbing where it was. BBR sees its rate stop growing within
 * a few round trips and is back in PROBE_BW after 0.75 to 1.25 s; the cap
 * stays until it is (a connection the source leaves idle never leaves
 * STARTUP, and keeps the cap). BBR's init leaves the window as it is, but
 * not what BBR had saved of it: during loss recovery BBR holds it at what
 * is in flight for a round trip, then grows it again from there, which at
 * the capped rate is one bandwidth-delay product; after a retransmission
 * timeout it would grow from one segment, so a connection recovering
 * from one is not restarted. Measured with tests/bench/b_goodput.sh
 * (1 Gbit/s, 150 ms, 0.1 % loss, one connection, seconds 5 to 45): 908
 * to 932 Mbit/s with no PROBE_RTT, against 885 to 897 with one every
 * 10.5 s.
 *
 * PROBE_RTT also serves to learn that the path's RTT went up (a reroute):
 * only PROBE_RTT, or the expiry that leads to it, moves BBR's minimum up,
 * and each restart puts the kernel's 5-minute minimum back; meanwhile
 * the old, lower minimum caps the window at twice the rate times the old
 * RTT. So after REFRESH_RUN restarts in a row one PROBE_RTT is left to
 * BBR (about one a minute, 0.5 % of the goodput), and a connection whose
 * BBR then holds a minimum above the kernel's is not restarted until the
 * two agree again (the kernel's window forgets the old path within 5
 * minutes). With an operator rate the connections send below the path's
 * rate and nothing is restarted; nor while the tunnel is not busy, when
 * PROBE_RTT costs little. If the kernel will not switch back to bbr, the
 * connection is dropped and redialled rather than left on reno.
 */
static void
conn_refresh(struct wan_link *l, struct wan_conn *c, bool busy,
    uint64_t now)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (fd < 0 || !busy || !c->bbr_probe_bw || c->paced_ms != 0 ||
	    c->bbr_no_refresh || c->rto || c->bbr_bw < 1 ||
	    c->path_rtt_ms <= 0 || now < c->bbr_rtt_stamp_ms + REFRESH_MS ||
	    c->bbr_refreshes >= REFRESH_RUN ||
	    c->bbr_min_rtt_ms > c->path_rtt_ms * 1.05 + 1.0)
		return;
	if (!conn_set_pacing(fd, c->bbr_bw))
		return;
	c->paced_ms = now; /* conn_pace() lifts the cap */
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4) != 0) {
		c->bbr_no_refresh = true;
		return;
	}
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "bbr", 3) != 0) {
		/* not on reno for its life: a new connection (redialled)
		 * gets BBR or the kernel's default, and the session resends
		 * what this one carried */
		log_warnx("peer %s: switching a connection back to bbr: %s",
		    l->p.peer_site, strerror(errno));
		c->bbr_no_refresh = true;
		conn_break(c, "congestion control could not be set back to "
		    "bbr");
		return;
	}
	c->bbr_refreshing = true;
	c->bbr_startup = true; /* as it now is */
	c->bbr_probe_bw = false;
	c->bbr_rtt_stamp_ms = now;
	c->bbr_refreshes++;
	l->st.bbr_refreshed++;
}

/*
 * Without a configured rate the in-flight bound follows the measured
 * path: the highest delivery rate (credit returned per second) of the last
 * 10 s times the lowest RTT, times a gain that lets the rate grow: 2 while
 * it keeps growing, then 1.5 (room for a destination that returns credit
 * a little later than a PING comes back); or 1.5 times the kernel's BBR
 * estimate of the path, if that is more. QEMU then feels the real drain
 * rate without an operator's figure, and what waits in the tunnel when it
 * stops the VM stays near one bandwidth-delay product (invariant 5).
 *
 * A delivery-rate sample spans the last second (AUTO_SPAN ticks), not one
 * tick: under loss the credit for what waited behind a gap comes back all
 * at once when the gap is repaired, and a 250 ms sample that catches such
 * a burst read twice the path's rate at 0.1 % loss. A bound built on it let
 * BBR, held in STARTUP by the bound itself (app-limited), overfill the
 * bottleneck's queue until it dropped thousands of segments.
 */
static void
link_auto_cap(struct wan_link *l)
{
	uint64_t now = wm_now_ms(), cap;
	double max = 0, gain, rtt = -1, btlbw = 0;
	struct wan_conn *c;
	unsigned old, n = 0;
	bool wan_bound, busy;

	if (l->auto_ms == 0 || now <= l->auto_ms) {
		l->auto_ms = now;
		for (unsigned i = 0; i < AUTO_SPAN; i++) {
			l->span_cred[i] = l->credited;
			l->span_ms[i] = now;
		}
		return;
	}
	/* The oldest entry of the span ring is AUTO_SPAN ticks back (or the
	 * first tick, during the first second). */
	old = l->rate_i % AUTO_SPAN;
	l->rate[l->rate_i % AUTO_SAMPLES] =
	    (double)(l->credited - l->span_cred[old]) * 1000.0 /
	    (double)(now - l->span_ms[old]);
	l->span_cred[old] = l->credited;
	l->span_ms[old] = now;
	l->rate_i++;
	l->auto_ms = now;
	for (unsigned i = 0; i < AUTO_SAMPLES; i++)
		if (l->rate[i] > max)
			max = l->rate[i];
	if (max > l->auto_best * 1.25 || max < l->auto_best / 4) {
		l->auto_best = max;
		l->auto_flat = 0;
	} else {
		l->auto_flat++;
	}
	gain = l->auto_flat < 4 ? 2.0 : 1.5;
	TAILQ_FOREACH(c, &l->conns, entry) {
		if (!c->ready)
			continue;
		conn_sample(c);
		if (conn_min_rtt(c) > 0 && (rtt < 0 || conn_min_rtt(c) < rtt))
			rtt = conn_min_rtt(c);
		btlbw += c->bbr_bw;
		n++;
	}
	/* Held by the bound during this tick, at a rate flat for a second:
	 * each connection's share of the rate is in proportion to BBR's
	 * estimate of it. */
	wan_bound = l->cap_hits != l->cap_hits_tick && l->rate_Bps == 0 &&
	    l->auto_flat >= 4;
	l->cap_hits_tick = l->cap_hits;
	/* Moving at least REFRESH_BUSY of BBR's estimate over the last
	 * second: the connections are the limit (conn_refresh). */
	busy = l->rate_Bps == 0 && btlbw > 0 &&
	    l->rate[(l->rate_i - 1) % AUTO_SAMPLES] >= REFRESH_BUSY * btlbw;
	TAILQ_FOREACH(c, &l->conns, entry) {
		double share = btlbw > 0 ? max * c->bbr_bw / btlbw : 0;

		if (!c->ready)
			continue;
		conn_refresh(l, c, busy, now);
		conn_pace(l, c, max / n, share, wan_bound, now);
	}
	l->path_Bps = btlbw > max ? btlbw : max;
	if (rtt < 0)
		return;
	if (l->rate_Bps != 0) {
		/* The operator's rate: one bandwidth-delay product. */
		cap = (uint64_t)((double)l->rate_Bps * rtt / 1000.0) + (64u << 10);
	} else {
		/* Under loss the credit comes back late (a gap waits for
		 * TCP's repair), which would shrink the bound round after
		 * round; the kernel's BBR estimate of the path does not. */
		if (btlbw * 1.5 > gain * max) {
			max = btlbw;
			gain = 1.5;
		}
		cap = (uint64_t)(gain * max * rtt / 1000.0);
		if (cap < AUTO_MIN_CAP)
			cap = AUTO_MIN_CAP;
	}
	if (cap > l->inflight_cap && l->cap_blocked)
		event_active(l->unblock, 0, 0);
	l->inflight_cap = cap;
}

static void
link_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_link *l = arg;
	char why[128];

	(void)fd;
	(void)what;
	if (!l->dead)
		link_auto_cap(l);
	if (l->dead || l->st.down_since_ms == 0 ||
	    wm_now_ms() - l->st.down_since_ms <= l->p.resume_ms)
		return;
	snprintf(why, sizeof(why), "no connection for %.1f s (resume window)",
	    (double)(wm_now_ms() - l->st.down_since_ms) / 1000.0);
	link_fail(l, why);
}

static void
link_reapcb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_link *l = arg;
	struct rtx *r;
	struct ooo *o;

	(void)fd;
	(void)what;
	while ((r = TAILQ_FIRST(&l->rtx)) != NULL) {
		TAILQ_REMOVE(&l->rtx, r, entry);
		free(r);
	}
	for (size_t i = 0; l->ooo != NULL && i < OOO_RING; i++) {
		if ((o = l->ooo[i]) != NULL) {
			evbuffer_free(o->payload);
			free(o);
		}
	}
	free(l->ooo);
	event_free(l->timer);
	event_free(l->reap);
	event_free(l->unblock);
	event_free(l->breakev);
	event_free(l->holev);
	event_free(l->flushev);
	free(l);
}

void
link_fail(struct wan_link *l, const char *why)
{
	struct wan_stream *s;
	struct wan_conn *c;
	char reason[512];
	uint8_t b[WAN_CTRL_MAX];
	int n;

	if (l->dead)
		return;
	l->dead = true;
	snprintf(reason, sizeof(reason), "tunnel lost: %s", why);
	/* Tell the peer, so that it does not wait out its resume window. */
	n = wan_str_encode(b, sizeof(b), why);
	while ((c = TAILQ_FIRST(&l->conns)) != NULL) {
		TAILQ_REMOVE(&l->conns, c, entry);
		l->st.bytes_sent += c->bytes_sent;
		l->st.bytes_received += c->bytes_received;
		if (n >= 0 && c->tls_up && c->hello_rcvd)
			conn_send_ctrl(c, WAN_CLOSE, b, (size_t)n);
		conn_retire(c);
	}
	l->nready = 0;
	event_del(l->timer);
	event_del(l->holev);
	event_del(l->flushev);
	while ((s = TAILQ_FIRST(&l->streams)) != NULL)
		stream_finish(s, WAN_CLOSED_RESET, reason);
	if (l->cbs.down != NULL)
		l->cbs.down(l, why, l->arg);
	event_active(l->reap, 0, 0);
}

void
wan_link_close(struct wan_link *l, const char *why)
{
	link_fail(l, why);
}

struct wan_link *
wan_link_new(struct event_base *base, const struct wan_link_params *p,
    const struct wan_link_cbs *cbs, void *arg, uint64_t session)
{
	struct wan_link *l = calloc(1, sizeof(*l));
	struct timeval tv = { 0, TICK_MS * 1000 };
	const char *fault = getenv("WANMIGD_FAULT_CORRUPT");

	if (l == NULL)
		return NULL;
	l->base = base;
	l->p = *p;
	snprintf(l->site, sizeof(l->site), "%s", p->site);
	l->p.site = l->site;
	snprintf(l->peer_site, sizeof(l->peer_site), "%s",
	    p->peer_site != NULL ? p->peer_site : "");
	l->p.peer_site = l->peer_site;
	l->cbs = *cbs;
	l->arg = arg;
	l->session = session;
	while (l->session == 0)
		if (RAND_bytes((unsigned char *)&l->session,
		    sizeof(l->session)) != 1)
			l->session = wm_now_us() ^ ((uint64_t)getpid() << 40);
	l->next_id = p->dialled ? 1 : 2;
	l->send_next = l->recv_next = l->ack_sent = 1;
	l->inflight_cap = AUTO_MIN_CAP;
	l->st.rtt_ms = l->st.min_rtt_ms = -1;
	/* Test-only fault knob: flip a bit in the Nth DATA frame this link
	 * sends, after its checksum (tests/integration/test_faults.py). */
	if (fault != NULL)
		l->fault_corrupt = strtoull(fault, NULL, 10);
	TAILQ_INIT(&l->conns);
	TAILQ_INIT(&l->streams);
	TAILQ_INIT(&l->rtx);
	l->timer = event_new(base, -1, EV_PERSIST, link_timercb, l);
	l->reap = event_new(base, -1, 0, link_reapcb, l);
	l->unblock = event_new(base, -1, 0, link_unblockcb, l);
	l->breakev = event_new(base, -1, 0, link_breakcb, l);
	l->holev = event_new(base, -1, EV_PERSIST, link_holcb, l);
	l->flushev = event_new(base, -1, 0, link_flushcb, l);
	if (l->timer == NULL || l->reap == NULL || l->unblock == NULL ||
	    l->breakev == NULL || l->holev == NULL || l->flushev == NULL) {
		if (l->flushev)
			event_free(l->flushev);
		if (l->holev)
			event_free(l->holev);
		if (l->breakev)
			event_free(l->breakev);
		if (l->timer)
			event_free(l->timer);
		if (l->reap)
			event_free(l->reap);
		if (l->unblock)
			event_free(l->unblock);
		free(l);
		return NULL;
	}
	event_add(l->timer, &tv);
	tv.tv_usec = HOL_MS * 1000;
	event_add(l->holev, &tv);
	return l;
}

void
wan_link_set_rate(struct wan_link *l, uint64_t bytes_per_s)
{
	/* The bound follows at the next tick (link_auto_cap), within 250 ms. */
	l->rate_Bps = bytes_per_s;
}

bool
wan_link_ready(const struct wan_link *l)
{
	return l->nready > 0 && !l->dead;
}

uint64_t
wan_link_session(const struct wan_link *l)
{
	return l->session;
}

void
wan_link_get_stats(const struct wan_link *l, struct wan_link_stats *st)
{
	const struct wan_conn *c;

	*st = l->st;
	st->inflight = l->inflight;
	st->inflight_cap = l->inflight_cap;
	st->inflight_far = l->far;
	st->unacked = l->rtx_bytes;
	st->conns = l->nready;
	st->conns_pending = 0;
	st->path_Bps = (uint64_t)l->path_Bps;
	TAILQ_FOREACH(c, &l->conns, entry) {
		st->bytes_sent += c->bytes_sent;
		st->bytes_received += c->bytes_received;
		if (!c->ready) {
			st->conns_pending++;
			continue;
		}
		if (c->rtt_ms >= 0 && (st->rtt_ms < 0 || c->rtt_ms < st->rtt_ms))
			st->rtt_ms = c->rtt_ms;
		if (conn_min_rtt(c) >= 0 &&
		    (st->min_rtt_ms < 0 || conn_min_rtt(c) < st->min_rtt_ms))
			st->min_rtt_ms = conn_min_rtt(c);
	}
}

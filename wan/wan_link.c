/*
 * wan_link.c - one TLS connection to a peer gateway, carrying framed
 * streams (grammar in wan_frame.h, contract in wan.h).
 *
 * Every bufferevent here is created with deferred callbacks, so no user
 * callback runs inside another; objects that die inside a callback are
 * unhooked at once and freed from the loop (a link) or right after their
 * closed() callback (a stream, which nothing else points to by then).
 */
#include "wan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "wm_err.h"
#include "wm_util.h"

#define LINK_OUT_HIGH (4u << 20)   /* stop feeding a link past this */
#define LINK_OUT_LOW (1u << 20)    /* and resume below this */
#define LOCAL_IN_HIGH (256u << 10) /* read-ahead from a hypervisor */
#define HANDSHAKE_MS 10000
#define MAX_STREAMS 256            /* per link: bounds memory to 256 windows */
#define TICK_MS 250                /* housekeeping period */
#define IO_CHUNK (256u << 10)      /* bytes per read or write callback */

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
	unsigned pump_gen;               /* see link_writecb */
	struct wan_shaper *shaper[2];    /* peer rate, migration cap */
	struct wan_shaper_waiter waiter;
	struct wan_stream_cbs cbs;
	void *arg;
	struct wan_stream_stats st;
};

TAILQ_HEAD(wan_stream_list, wan_stream);

struct wan_link {
	struct event_base *base;
	struct bufferevent *bev;
	struct wan_link_params p;
	char site[256];
	struct wan_link_cbs cbs;
	void *arg;
	bool tls_up, ready, dead, blocked;
	struct wan_hello peer;
	uint32_t next_id;                /* our next stream number */
	uint32_t last_peer_id;           /* highest number the peer opened */
	struct wan_stream_list streams;
	struct event *timer;
	struct event *reap;
	struct event *unblock;           /* deferred link_pump_all */
	struct event *breakev;           /* deferred link_fail after ENOMEM */
	bool broken;                     /* a frame may be cut: send nothing */
	uint64_t created_ms, last_rx_ms, last_ping_ms;
	uint64_t min_rtt_stamp_ms;
	uint64_t inflight;               /* sent by all streams, not yet credited */
	uint64_t inflight_cap;           /* 0 = only the streams' windows */
	bool cap_blocked;                /* a stream waits for inflight < cap */
	unsigned pump_gen;
	struct wan_link_stats st;
};

static void link_fail(struct wan_link *l, const char *why);
static void link_break(struct wan_link *l);
static void link_pump_all(struct wan_link *l);
static void stream_pump(struct wan_stream *s);

/* ---- sending frames ---------------------------------------------------- */

static void
send_frame(struct wan_link *l, uint8_t type, uint32_t stream,
    const void *payload, size_t len)
{
	struct wan_frame_hdr h = { type, 0, stream, (uint32_t)len };
	uint8_t hdr[WAN_FRAME_HDR];
	struct evbuffer *out = bufferevent_get_output(l->bev);

	if (l->broken)
		return;
	wan_frame_hdr_encode(hdr, &h);
	if (evbuffer_add(out, hdr, sizeof(hdr)) != 0 ||
	    (len > 0 && evbuffer_add(out, payload, len) != 0)) {
		link_break(l);
		return;
	}
	l->st.bytes_sent += WAN_FRAME_HDR + len;
}

static void
send_u32(struct wan_link *l, uint8_t type, uint32_t stream, uint32_t v)
{
	uint8_t b[4];

	wan_put_be32(b, v);
	send_frame(l, type, stream, b, sizeof(b));
}

static void
send_u64(struct wan_link *l, uint8_t type, uint64_t v)
{
	uint8_t b[8];

	wan_put_be64(b, v);
	send_frame(l, type, 0, b, sizeof(b));
}

static void
send_rst(struct wan_link *l, uint32_t stream, uint16_t code, const char *why)
{
	struct wan_rst r = { .code = code };
	uint8_t b[WAN_CTRL_MAX];
	int n;

	snprintf(r.reason, sizeof(r.reason), "%s", why);
	n = wan_rst_encode(b, sizeof(b), &r);
	if (n >= 0)
		send_frame(l, WAN_RST, stream, b, (size_t)n);
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

	if (s->dead)
		return;
	s->dead = true;
	wan_shaper_cancel(&s->waiter);
	/* What it had in flight will never be credited now; streams held
	 * back by the link's bound may go (from the loop: this may run
	 * inside loops over the streams). */
	if (l->inflight > l->peer.window - s->send_credit)
		l->inflight -= l->peer.window - s->send_credit;
	else
		l->inflight = 0;
	if (l->cap_blocked && l->inflight < l->inflight_cap && !l->dead)
		event_active(l->unblock, 0, 0);
	TAILQ_REMOVE(&l->streams, s, entry);
	l->st.streams--;
	local_release(s, how == WAN_CLOSED_RESET);
	if (s->pending != NULL)
		evbuffer_free(s->pending);
	if (s->cbs.closed != NULL)
		s->cbs.closed(s, how, why, s->arg);
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

/* Moves hypervisor bytes into the tunnel, as far as credit, the shapers
 * and the link's output bound allow; sends FIN after the last byte. */
static void
stream_pump(struct wan_stream *s)
{
	struct wan_link *l = s->link;
	struct evbuffer *in, *out;
	size_t len;

	if (s->local == NULL || s->fin_sent || l->dead || !l->ready ||
	    l->broken)
		return;
	in = bufferevent_get_input(s->local);
	out = bufferevent_get_output(l->bev);
	while ((len = evbuffer_get_length(in)) > 0 && s->send_credit > 0) {
		struct wan_frame_hdr h = { WAN_DATA, 0, s->id, 0 };
		uint8_t hdr[WAN_FRAME_HDR];

		if (evbuffer_get_length(out) >= LINK_OUT_HIGH) {
			l->blocked = true;
			goto out;
		}
		if (l->inflight_cap != 0) {
			if (l->inflight >= l->inflight_cap) {
				l->cap_blocked = true;
				goto out;
			}
			if (len > l->inflight_cap - l->inflight)
				len = (size_t)(l->inflight_cap - l->inflight);
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
		wan_shaper_charge(s->shaper[0], WAN_FRAME_HDR + len);
		wan_shaper_charge(s->shaper[1], WAN_FRAME_HDR + len);
		h.length = (uint32_t)len;
		wan_frame_hdr_encode(hdr, &h);
		if (s->cbs.observe != NULL)
			stream_observe(s, in, len);
		if (evbuffer_add(out, hdr, sizeof(hdr)) != 0 ||
		    evbuffer_remove_buffer(in, out, len) != (int)len) {
			link_break(l);
			return;
		}
		s->send_credit -= len;
		l->inflight += len;
		s->st.local_in += len;
		s->st.wan_out += WAN_FRAME_HDR + len;
		l->st.bytes_sent += WAN_FRAME_HDR + len;
	}
	if (s->local_eof && evbuffer_get_length(in) == 0) {
		send_frame(l, WAN_FIN, s->id, NULL, 0);
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

static void
local_writecb(struct bufferevent *b, void *arg)
{
	(void)b;
	stream_try_shut(arg);
}

static void
local_eventcb(struct bufferevent *b, short what, void *arg)
{
	struct wan_stream *s = arg;
	char why[128];

	(void)b;
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();

		snprintf(why, sizeof(why), "hypervisor connection: %s",
		    e ? strerror(e) : "error");
		wan_stream_reset(s, WAN_RST_ERROR, why);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		s->local_eof = true;
		stream_pump(s);
	}
}

/* Counts bytes the hypervisor took and hands the credit back. */
static void
local_outcb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct wan_stream *s = arg;
	struct wan_link *l = s->link;

	(void)buf;
	if (info->n_deleted == 0 || s->dead)
		return;
	s->st.local_out += info->n_deleted;
	s->to_credit += info->n_deleted;
	if (l->dead)
		return;
	if (s->to_credit >= l->p.window / 8 || info->orig_size ==
	    info->n_deleted) {
		send_u32(l, WAN_WINDOW, s->id, (uint32_t)s->to_credit);
		s->recv_unacked -= s->to_credit;
		s->to_credit = 0;
	}
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
	bufferevent_enable(b, EV_READ | EV_WRITE);
}

static void
stream_shaper_ready(void *arg)
{
	stream_pump(arg);
}

void
wan_stream_set_shapers(struct wan_stream *s, struct wan_shaper *a,
    struct wan_shaper *b)
{
	/* Set once, before the stream has data to send: rate changes are
	 * made on the buckets themselves (wan_shaper_set_rate). */
	s->shaper[0] = a;
	s->shaper[1] = b;
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

	if (!wan_link_ready(l) || l->st.streams >= MAX_STREAMS ||
	    l->next_id > UINT32_MAX - 2 ||
	    (n = wan_open_encode(b, sizeof(b), o)) < 0 ||
	    (s = stream_new(l, l->next_id)) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	l->next_id += 2;
	s->cbs = *cbs;
	s->arg = arg;
	send_frame(l, WAN_OPEN, s->id, b, (size_t)n);
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
	stream_try_shut(s);
	stream_pump(s);
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

/* DATA: the payload is still in the link's input buffer; move it. */
static void
recv_data(struct wan_link *l, const struct wan_frame_hdr *h,
    struct evbuffer *in)
{
	struct wan_stream *s = stream_find(l, h->stream);

	if (s == NULL || s->fin_rcvd) {
		/* A stream we reset while its data was in flight. */
		evbuffer_drain(in, h->length);
		return;
	}
	if (h->length > l->p.window - s->recv_unacked) {
		evbuffer_drain(in, h->length);
		wan_stream_reset(s, WAN_RST_PROTO, "peer overran its window");
		return;
	}
	s->recv_unacked += h->length;
	s->st.wan_in += WAN_FRAME_HDR + h->length;
	if (evbuffer_remove_buffer(in, s->local != NULL ?
	    bufferevent_get_output(s->local) : s->pending, h->length) !=
	    (int)h->length)
		link_break(l);
}

static void
recv_ctrl(struct wan_link *l, const struct wan_frame_hdr *h, const uint8_t *p)
{
	struct wan_stream *s;
	uint32_t credit;
	uint64_t stamp;

	switch (h->type) {
	case WAN_OPEN:
		recv_open(l, h, p);
		return;
	case WAN_PING:
		/* A peer that pings without reading gets no answers. */
		if (wan_u64_decode(p, h->length, &stamp) == 0 &&
		    evbuffer_get_length(bufferevent_get_output(l->bev)) <
		    LINK_OUT_HIGH)
			send_u64(l, WAN_PONG, stamp);
		return;
	case WAN_PONG:
		if (wan_u64_decode(p, h->length, &stamp) == 0 &&
		    stamp <= wm_now_us()) {
			double sample = (double)(wm_now_us() - stamp) / 1000.0;

			l->st.rtt_ms = l->st.rtt_ms < 0 ? sample :
			    0.875 * l->st.rtt_ms + 0.125 * sample;
			/* A PING queues behind our own data, so the smoothed
			 * value grows with what we buffer; the minimum does
			 * not (BBR's min_rtt, refreshed every 30 s). */
			if (l->st.min_rtt_ms < 0 || sample <= l->st.min_rtt_ms ||
			    wm_now_ms() - l->min_rtt_stamp_ms > 30000) {
				l->st.min_rtt_ms = sample;
				l->min_rtt_stamp_ms = wm_now_ms();
			}
		}
		return;
	case WAN_HELLO:
		link_fail(l, "second HELLO");
		return;
	default:
		break;
	}
	s = stream_find(l, h->stream);
	if (s == NULL)
		return; /* late frame for a stream already gone */
	s->st.wan_in += WAN_FRAME_HDR + h->length;
	switch (h->type) {
	case WAN_FIN:
		s->fin_rcvd = true;
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
		l->inflight = l->inflight > credit ? l->inflight - credit : 0;
		if (l->cap_blocked && l->inflight < l->inflight_cap) {
			l->cap_blocked = false;
			link_pump_all(l);
		} else {
			stream_pump(s);
		}
		break;
	default:
		break;
	}
}

static void
recv_hello(struct wan_link *l, const struct wan_frame_hdr *h, const uint8_t *p)
{
	if (h->type != WAN_HELLO || wan_hello_decode(p, h->length, &l->peer) != 0) {
		link_fail(l, "peer did not start with a valid HELLO");
		return;
	}
	if (l->peer.version != WAN_PROTO_VERSION) {
		link_fail(l, "unsupported tunnel protocol version");
		return;
	}
	if (l->peer.window < 65536 || l->peer.site[0] == '\0') {
		link_fail(l, "HELLO with invalid window or site");
		return;
	}
	l->ready = true;
	l->st.up_since_ms = wm_now_ms();
	if (l->cbs.ready != NULL)
		l->cbs.ready(l, &l->peer, l->arg);
}

static void
link_readcb(struct bufferevent *b, void *arg)
{
	struct wan_link *l = arg;
	struct evbuffer *in = bufferevent_get_input(b);
	uint8_t raw[WAN_FRAME_HDR];
	uint8_t payload[WAN_CTRL_MAX];
	struct wan_frame_hdr h;

	l->last_rx_ms = wm_now_ms();
	while (!l->dead && !l->broken) {
		size_t avail = evbuffer_get_length(in);
		int r;

		if (avail < WAN_FRAME_HDR)
			break;
		evbuffer_copyout(in, raw, sizeof(raw));
		r = wan_frame_hdr_decode(raw, sizeof(raw), &h);
		if (r < 0) {
			link_fail(l, "malformed frame header");
			return;
		}
		if (avail < WAN_FRAME_HDR + (size_t)h.length)
			break;
		if (!l->ready && h.type != WAN_HELLO) {
			link_fail(l, "peer did not start with HELLO");
			return;
		}
		evbuffer_drain(in, WAN_FRAME_HDR);
		l->st.bytes_received += WAN_FRAME_HDR + h.length;
		if (h.type == WAN_DATA) {
			recv_data(l, &h, in);
			continue;
		}
		/* wan_frame_hdr_decode bounds every other type to WAN_CTRL_MAX */
		if (h.length > sizeof(payload)) {
			link_fail(l, "oversized control frame");
			return;
		}
		evbuffer_remove(in, payload, h.length);
		if (!l->ready)
			recv_hello(l, &h, payload);
		else
			recv_ctrl(l, &h, payload);
	}
}

/* Pumps every stream of the link once (after the link's output or its
 * in-flight bound opened up again). */
static void
link_pump_all(struct wan_link *l)
{
	struct wan_stream *s;
	unsigned gen;

	/*
	 * A pump may end its stream, and a closed() callback may end others,
	 * so no iterator survives a pump: restart from the head each time and
	 * skip the streams already pumped in this round.
	 */
	gen = ++l->pump_gen;
	for (;;) {
		TAILQ_FOREACH(s, &l->streams, entry)
			if (s->pump_gen != gen)
				break;
		if (s == NULL || l->dead || l->blocked || l->cap_blocked)
			return;
		s->pump_gen = gen;
		stream_pump(s);
	}
}

/*
 * Out of memory while moving stream bytes: a frame may be cut or a stream
 * short of bytes, so nothing more may be sent or delivered on this link.
 * It fails from the loop (this runs inside loops over its streams), which
 * resets every stream on it: fail closed, never a corrupted stream.
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
	if (l->dead || !l->cap_blocked || l->inflight >= l->inflight_cap)
		return;
	l->cap_blocked = false;
	link_pump_all(l);
}

static void
link_writecb(struct bufferevent *b, void *arg)
{
	struct wan_link *l = arg;

	(void)b;
	if (!l->blocked || l->dead)
		return;
	l->blocked = false;
	link_pump_all(l);
}

/* Describes a TLS or socket failure: verification result, then the errors
 * OpenSSL queued on the bufferevent, then errno. */
static const char *
tls_error(struct bufferevent *b, int sockerr, char *buf, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(b);
	long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long e;
	size_t used;

	buf[0] = '\0';
	if (v != X509_V_OK)
		snprintf(buf, len, "certificate verification: %s;",
		    X509_verify_cert_error_string(v));
	while ((e = bufferevent_get_openssl_error(b)) != 0) {
		if (ERR_SYSTEM_ERROR(e))
			continue; /* errno, reported below */
		used = strlen(buf);
		if (used + 2 >= len)
			continue;
		if (used > 0)
			buf[used++] = ' ';
		ERR_error_string_n(e, buf + used, len - used);
	}
	used = strlen(buf);
	if (sockerr != 0 && used + 2 < len)
		snprintf(buf + used, len - used, "%s%s", used ? " " : "",
		    strerror(sockerr));
	if (buf[0] == '\0')
		snprintf(buf, len, "connection closed");
	return buf;
}

static void
link_eventcb(struct bufferevent *b, short what, void *arg)
{
	struct wan_link *l = arg;
	char why[512];

	if (what & BEV_EVENT_CONNECTED) {
		struct wan_hello h = { .version = WAN_PROTO_VERSION };
		uint8_t buf[WAN_CTRL_MAX];
		SSL *ssl = bufferevent_openssl_get_ssl(b);
		int n;

		l->tls_up = true;
		why[0] = '\0';
		if (l->cbs.verify != NULL &&
		    l->cbs.verify(l, ssl, why, sizeof(why), l->arg) != 0) {
			link_fail(l, why[0] ? why : "peer rejected");
			return;
		}
		h.window = l->p.window;
		snprintf(h.site, sizeof(h.site), "%s", l->site);
		n = wan_hello_encode(buf, sizeof(buf), &h);
		if (n < 0) {
			link_fail(l, "cannot encode HELLO");
			return;
		}
		send_frame(l, WAN_HELLO, 0, buf, (size_t)n);
		l->last_rx_ms = wm_now_ms();
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();
		char tls[384];

		snprintf(why, sizeof(why), "%s: %s",
		    l->tls_up ? "connection error" : "connection or TLS handshake failed",
		    tls_error(b, e, tls, sizeof(tls)));
		link_fail(l, why);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		link_fail(l, l->tls_up ? "peer closed the connection" :
		    "peer closed the connection during the TLS handshake");
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		link_fail(l, "timeout");
}

static void
link_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_link *l = arg;
	uint64_t now = wm_now_ms();
	char why[128];

	(void)fd;
	(void)what;
	if (l->dead)
		return;
	if (!l->ready) {
		if (now - l->created_ms > HANDSHAKE_MS)
			link_fail(l, "no TLS handshake and HELLO within 10 s");
		return;
	}
	if (now - l->last_rx_ms > l->p.timeout_ms) {
		snprintf(why, sizeof(why), "peer silent for %.1f s",
		    (double)(now - l->last_rx_ms) / 1000.0);
		link_fail(l, why);
		return;
	}
	if (now - l->last_ping_ms >= l->p.keepalive_ms) {
		l->last_ping_ms = now;
		send_u64(l, WAN_PING, wm_now_us());
	}
}

static void
link_reapcb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_link *l = arg;

	(void)fd;
	(void)what;
	event_free(l->timer);
	event_free(l->reap);
	event_free(l->unblock);
	event_free(l->breakev);
	if (l->bev != NULL)
		bufferevent_free(l->bev);
	free(l);
}

static void
link_fail(struct wan_link *l, const char *why)
{
	struct wan_stream *s;
	char reason[512];

	if (l->dead)
		return;
	l->dead = true;
	l->ready = false;
	snprintf(reason, sizeof(reason), "tunnel lost: %s", why);
	bufferevent_setcb(l->bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(l->bev, EV_READ | EV_WRITE);
	event_del(l->timer);
	while ((s = TAILQ_FIRST(&l->streams)) != NULL)
		stream_finish(s, WAN_CLOSED_RESET, reason);
	if (l->cbs.down != NULL)
		l->cbs.down(l, why, l->arg);
	event_active(l->reap, 0, 0);
}

void
wan_link_close(struct wan_link *l, const char *why)
{
	if (l->dead)
		return;
	if (l->tls_up) {
		/* Best effort close_notify; the peer treats the end as an
		 * error anyway if a stream is still open. */
		SSL *ssl = bufferevent_openssl_get_ssl(l->bev);

		if (ssl != NULL && evbuffer_get_length(bufferevent_get_output(l->bev)) == 0) {
			SSL_shutdown(ssl);
			ERR_clear_error(); /* not another link's error */
		}
	}
	link_fail(l, why);
}

struct wan_link *
wan_link_new(struct event_base *base, struct bufferevent *bev,
    const struct wan_link_params *p, const struct wan_link_cbs *cbs, void *arg)
{
	struct wan_link *l = calloc(1, sizeof(*l));
	struct timeval tv;

	if (l == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	l->base = base;
	l->bev = bev;
	l->p = *p;
	snprintf(l->site, sizeof(l->site), "%s", p->site);
	l->p.site = l->site;
	l->cbs = *cbs;
	l->arg = arg;
	l->next_id = p->dialled ? 1 : 2;
	l->st.rtt_ms = -1;
	l->st.min_rtt_ms = -1;
	l->created_ms = l->last_rx_ms = wm_now_ms();
	TAILQ_INIT(&l->streams);
	l->timer = event_new(base, -1, EV_PERSIST, link_timercb, l);
	l->reap = event_new(base, -1, 0, link_reapcb, l);
	l->unblock = event_new(base, -1, 0, link_unblockcb, l);
	l->breakev = event_new(base, -1, 0, link_breakcb, l);
	if (l->timer == NULL || l->reap == NULL || l->unblock == NULL ||
	    l->breakev == NULL) {
		if (l->breakev)
			event_free(l->breakev);
		if (l->timer)
			event_free(l->timer);
		if (l->reap)
			event_free(l->reap);
		if (l->unblock)
			event_free(l->unblock);
		bufferevent_free(bev);
		free(l);
		return NULL;
	}
	tv.tv_sec = 0;
	tv.tv_usec = TICK_MS * 1000;
	event_add(l->timer, &tv);
	bufferevent_setcb(bev, link_readcb, link_writecb, link_eventcb, l);
	bufferevent_setwatermark(bev, EV_WRITE, LINK_OUT_LOW, 0);
	/* libevent moves at most 16 KiB per read or write callback by
	 * default: at 1 Gbit/s that is 8000 loop turns a second. */
	bufferevent_set_max_single_read(bev, IO_CHUNK);
	bufferevent_set_max_single_write(bev, IO_CHUNK);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return l;
}

void
wan_link_set_inflight_cap(struct wan_link *l, uint64_t bytes)
{
	bool opened = bytes == 0 || bytes > l->inflight_cap;

	l->inflight_cap = bytes;
	if (l->cap_blocked && opened && !l->dead) {
		l->cap_blocked = false;
		link_pump_all(l);
	}
}

bool
wan_link_ready(const struct wan_link *l)
{
	return l->ready && !l->dead;
}


void
wan_link_get_stats(const struct wan_link *l, struct wan_link_stats *st)
{
	*st = l->st;
	st->inflight = l->inflight;
	st->inflight_cap = l->inflight_cap;
}



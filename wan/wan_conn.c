/*
 * wan_conn.c - one TLS connection of a tunnel: handshake, verification,
 * HELLO, framing, keep-alive and RTT. What the frames mean for the
 * session is wan_link.c's business.
 *
 * The bufferevent is created with deferred callbacks, so no user callback
 * runs inside another; a connection that dies inside a callback is
 * unhooked at once and freed from the loop.
 */
#include "wan_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "wm_util.h"

#define RETIRE_MS 1000             /* a retiring connection flushes this long */

size_t
conn_out_len(const struct wan_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

int
conn_send(struct wan_conn *c, const void *buf, size_t len)
{
	if (c->broken || c->dead)
		return -1;
	if (evbuffer_add(bufferevent_get_output(c->bev), buf, len) != 0) {
		conn_break(c, "out of memory queueing a frame");
		return -1;
	}
	c->bytes_sent += len;
	return 0;
}

int
conn_send_ctrl(struct wan_conn *c, uint8_t type, const void *p, size_t len)
{
	struct wan_frame_hdr h = { type, 0, 0, (uint32_t)len, 0 };
	uint8_t buf[WAN_FRAME_HDR + WAN_CTRL_MAX];

	if (len > WAN_CTRL_MAX)
		return -1;
	wan_frame_hdr_encode(buf, &h);
	if (len > 0)
		memcpy(buf + WAN_FRAME_HDR, p, len);
	return conn_send(c, buf, WAN_FRAME_HDR + len);
}

int
conn_send_u64(struct wan_conn *c, uint8_t type, uint64_t v)
{
	uint8_t b[8];

	wm_put_be64(b, v);
	return conn_send_ctrl(c, type, b, sizeof(b));
}

static void
conn_reapcb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_conn *c = arg;

	(void)fd;
	(void)what;
	event_free(c->timer);
	event_free(c->reap);
	event_free(c->breakev);
	bufferevent_free(c->bev);
	free(c);
}

void
conn_fail(struct wan_conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	event_del(c->breakev);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	event_del(c->timer);
	if (c->link != NULL)
		link_conn_lost(c->link, c, why);
	else if (c->cbs.down != NULL)
		c->cbs.down(c, why, c->arg);
	event_active(c->reap, 0, 0);
}

static void
retire_writecb(struct bufferevent *b, void *arg)
{
	struct wan_conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(b)) == 0)
		event_active(c->reap, 0, 0);
}

static void
retire_eventcb(struct bufferevent *b, short what, void *arg)
{
	(void)b;
	(void)what;
	event_active(((struct wan_conn *)arg)->reap, 0, 0);
}

void
conn_retire(struct wan_conn *c)
{
	struct timeval tv = { 0, RETIRE_MS * 1000 };

	if (c->dead)
		return;
	c->dead = true;
	c->link = NULL;
	event_del(c->timer);
	event_del(c->breakev);
	if (!c->tls_up || c->broken || conn_out_len(c) == 0) {
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		event_active(c->reap, 0, 0);
		return;
	}
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_setcb(c->bev, NULL, retire_writecb, retire_eventcb, c);
	event_add(c->reap, &tv);
}

void
wan_conn_close(struct wan_conn *c, const char *why)
{
	conn_fail(c, why);
}

static void
conn_breakcb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_conn *c = arg;

	(void)fd;
	(void)what;
	conn_fail(c, c->break_why);
}

void
conn_break(struct wan_conn *c, const char *why)
{
	if (c->broken)
		return;
	c->broken = true;
	c->break_why = why;
	event_active(c->breakev, 0, 0);
}

/* A protocol error: before HELLO only this connection is at fault; after,
 * the session cannot be trusted and ends. */
static void
conn_proto_error(struct wan_conn *c, const char *why)
{
	if (c->ready && c->link != NULL)
		link_fail(c->link, why);
	else
		conn_fail(c, why);
}

static void
conn_recv_hello(struct wan_conn *c, const struct wan_frame_hdr *h,
    const uint8_t *p)
{
	struct wan_hello *m = &c->peer;

	if (h->type != WAN_HELLO || wan_hello_decode(p, h->length, m) != 0) {
		conn_fail(c, "peer did not start with a valid HELLO");
		return;
	}
	if (m->version != WAN_PROTO_VERSION) {
		conn_fail(c, "unsupported tunnel protocol version");
		return;
	}
	if (m->window < 65536 || m->reorder < (1u << 20) || m->site[0] == '\0' ||
	    m->session == 0 || m->send_next == 0 || m->recv_next == 0) {
		conn_fail(c, "HELLO with invalid window, session or site");
		return;
	}
	c->hello_rcvd = true;
	if (c->link != NULL)
		link_conn_hello(c->link, c);
	else if (c->cbs.hello != NULL)
		c->cbs.hello(c, m, c->arg);
	/* The owner neither took nor closed it: nobody will. */
	if (c->link == NULL && !c->dead)
		conn_fail(c, "connection not taken");
}

static void
conn_recv_pong(struct wan_conn *c, uint64_t stamp)
{
	uint64_t now = wm_now_us();
	double sample;

	if (stamp > now)
		return;
	sample = (double)(now - stamp) / 1000.0;
	c->rtt_ms = c->rtt_ms < 0 ? sample : 0.875 * c->rtt_ms + 0.125 * sample;
	/* A PING queues behind our own data, so the smoothed value grows with
	 * what we buffer. So does the minimum once a transfer outlasts its
	 * 30 s: the link takes the path's RTT from the kernel where it can
	 * (conn_sample), this only where the kernel does not say. */
	if (c->min_rtt_ms < 0 || sample <= c->min_rtt_ms ||
	    wm_now_ms() - c->min_rtt_stamp_ms > 30000) {
		c->min_rtt_ms = sample;
		c->min_rtt_stamp_ms = wm_now_ms();
	}
}

static void
conn_readcb(struct bufferevent *b, void *arg)
{
	struct wan_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(b);
	uint8_t raw[WAN_FRAME_HDR];
	uint8_t payload[WAN_CTRL_MAX];
	struct wan_frame_hdr h;
	uint64_t v;

	c->last_rx_ms = wm_now_ms();
	while (!c->dead && !c->broken) {
		size_t avail = evbuffer_get_length(in);

		if (avail < WAN_FRAME_HDR)
			break;
		evbuffer_copyout(in, raw, sizeof(raw));
		if (wan_frame_hdr_decode(raw, sizeof(raw), &h) < 0) {
			conn_proto_error(c, "malformed frame header");
			return;
		}
		if (avail < WAN_FRAME_HDR + (size_t)h.length)
			break;
		if (!c->hello_rcvd && h.type != WAN_HELLO) {
			conn_fail(c, "peer did not start with HELLO");
			return;
		}
		if (c->hello_rcvd && !c->ready) {
			/* Nothing may follow HELLO before ours went out. */
			conn_fail(c, "frame before the HELLO exchange ended");
			return;
		}
		evbuffer_drain(in, WAN_FRAME_HDR);
		c->bytes_received += WAN_FRAME_HDR + h.length;
		if (wan_frame_sequenced(h.type) || h.type == WAN_ACK ||
		    h.type == WAN_CLOSE) {
			link_conn_frame(c->link, c, &h, in);
			continue;
		}
		/* wan_frame_hdr_decode bounds the rest to WAN_CTRL_MAX */
		if (h.length > sizeof(payload)) {
			conn_proto_error(c, "oversized control frame");
			return;
		}
		evbuffer_remove(in, payload, h.length);
		switch (h.type) {
		case WAN_HELLO:
			if (c->hello_rcvd) {
				conn_proto_error(c, "second HELLO");
				return;
			}
			conn_recv_hello(c, &h, payload);
			break;
		case WAN_PING:
			/* A peer that pings without reading gets no answers. */
			if (wan_u64_decode(payload, h.length, &v) == 0 &&
			    conn_out_len(c) < LINK_OUT_HIGH)
				conn_send_u64(c, WAN_PONG, v);
			break;
		case WAN_PONG:
			if (wan_u64_decode(payload, h.length, &v) == 0)
				conn_recv_pong(c, v);
			break;
		default:
			break;
		}
	}
	if (c->ready && !c->dead && c->link != NULL)
		link_conn_read_done(c->link, c);
}

static void
conn_writecb(struct bufferevent *b, void *arg)
{
	struct wan_conn *c = arg;

	(void)b;
	if (c->ready && !c->dead && c->link != NULL)
		link_conn_writable(c->link, c);
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
conn_eventcb(struct bufferevent *b, short what, void *arg)
{
	struct wan_conn *c = arg;
	char why[512];

	if (what & BEV_EVENT_CONNECTED) {
		c->tls_up = true;
		why[0] = '\0';
		if (c->cbs.verify != NULL &&
		    c->cbs.verify(c, bufferevent_openssl_get_ssl(b), why,
		    sizeof(why), c->arg) != 0) {
			conn_fail(c, why[0] ? why : "peer rejected");
			return;
		}
		c->last_rx_ms = wm_now_ms();
		if (c->p.dialled && c->link != NULL)
			link_conn_tls_up(c->link, c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();
		char tls[384];

		snprintf(why, sizeof(why), "%s: %s",
		    c->tls_up ? "connection error" : "connection or TLS handshake failed",
		    tls_error(b, e, tls, sizeof(tls)));
		conn_fail(c, why);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		conn_fail(c, c->tls_up ? "peer closed the connection" :
		    "peer closed the connection during the TLS handshake");
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		conn_fail(c, "timeout");
}

static void
conn_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_conn *c = arg;
	uint64_t now = wm_now_ms();
	char why[128];

	(void)fd;
	(void)what;
	if (c->dead)
		return;
	if (!c->ready) {
		if (now - c->created_ms > c->p.handshake_ms) {
			snprintf(why, sizeof(why),
			    "no TLS handshake and HELLO within %.1f s",
			    (double)c->p.handshake_ms / 1000.0);
			conn_fail(c, why);
		}
		return;
	}
	if (now - c->last_rx_ms > c->timeout_ms) {
		snprintf(why, sizeof(why), "peer silent for %.1f s",
		    (double)(now - c->last_rx_ms) / 1000.0);
		conn_fail(c, why);
		return;
	}
	if (now - c->last_ping_ms >= c->keepalive_ms) {
		c->last_ping_ms = now;
		conn_send_u64(c, WAN_PING, wm_now_us());
	}
}

struct wan_conn *
wan_conn_new(struct event_base *base, struct bufferevent *bev,
    const struct wan_conn_params *p, const struct wan_conn_cbs *cbs, void *arg)
{
	struct wan_conn *c = calloc(1, sizeof(*c));
	struct timeval tv = { 0, TICK_MS * 1000 };

	if (c == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	c->base = base;
	c->bev = bev;
	c->p = *p;
	c->cbs = *cbs;
	c->arg = arg;
	c->rtt_ms = c->min_rtt_ms = c->path_rtt_ms = -1;
	c->keepalive_ms = 5000;
	c->timeout_ms = 20000;
	c->created_ms = c->last_rx_ms = wm_now_ms();
	c->bbr_rtt_stamp_ms = c->created_ms; /* BBR's init, near enough */
	c->timer = event_new(base, -1, EV_PERSIST, conn_timercb, c);
	c->reap = event_new(base, -1, 0, conn_reapcb, c);
	c->breakev = event_new(base, -1, 0, conn_breakcb, c);
	if (c->timer == NULL || c->reap == NULL || c->breakev == NULL) {
		if (c->timer != NULL)
			event_free(c->timer);
		if (c->reap != NULL)
			event_free(c->reap);
		if (c->breakev != NULL)
			event_free(c->breakev);
		bufferevent_free(bev);
		free(c);
		return NULL;
	}
	event_add(c->timer, &tv);
	bufferevent_setcb(bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_setwatermark(bev, EV_WRITE, LINK_OUT_LOW, 0);
	/* libevent moves at most 16 KiB per read or write callback by
	 * default: at 1 Gbit/s that is 8000 loop turns a second. */
	bufferevent_set_max_single_read(bev, IO_CHUNK);
	bufferevent_set_max_single_write(bev, IO_CHUNK);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return c;
}

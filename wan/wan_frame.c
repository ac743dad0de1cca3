/*
 * wan_frame.c - encoders and validating decoders of the tunnel frames
 * (grammar in wan_frame.h). Decoders treat every byte as hostile.
 */
#include "wan_frame.h"

#include <string.h>

#include "wm_err.h"
#include "wm_util.h"

void
wan_frame_hdr_encode(uint8_t *buf, const struct wan_frame_hdr *h)
{
	buf[0] = h->type;
	buf[1] = h->flags;
	buf[2] = 0;
	buf[3] = 0;
	wm_put_be32(buf + 4, h->stream);
	wm_put_be32(buf + 8, h->length);
	wm_put_be64(buf + 12, h->seq);
}

int
wan_frame_sequenced(uint8_t type)
{
	return type == WAN_OPEN || type == WAN_DATA || type == WAN_FIN ||
	    type == WAN_RST || type == WAN_WINDOW;
}

int
wan_frame_hdr_decode(const uint8_t *buf, size_t len, struct wan_frame_hdr *h)
{
	if (len < WAN_FRAME_HDR)
		return 0;
	h->type = buf[0];
	h->flags = buf[1];
	h->stream = wm_get_be32(buf + 4);
	h->length = wm_get_be32(buf + 8);
	h->seq = wm_get_be64(buf + 12);
	if (h->type == 0 || h->type > WAN_FRAME_TYPE_MAX)
		return WM_ERR_PROTO;
	if ((h->seq != 0) != (wan_frame_sequenced(h->type) != 0))
		return WM_ERR_PROTO;
	if (h->flags != 0 || buf[2] != 0 || buf[3] != 0)
		return WM_ERR_PROTO;
	switch (h->type) {
	case WAN_HELLO:
	case WAN_PING:
	case WAN_PONG:
	case WAN_ACK:
	case WAN_CLOSE:
		if (h->stream != 0)
			return WM_ERR_PROTO;
		break;
	default:
		if (h->stream == 0)
			return WM_ERR_PROTO;
		break;
	}
	switch (h->type) {
	case WAN_DATA:
		if (h->length <= WAN_DATA_SUM ||
		    h->length > WAN_DATA_SUM + WAN_FRAME_MAX_PAYLOAD)
			return WM_ERR_PROTO;
		break;
	case WAN_FIN:
		if (h->length != 0)
			return WM_ERR_PROTO;
		break;
	case WAN_WINDOW:
		if (h->length != 4)
			return WM_ERR_PROTO;
		break;
	case WAN_PING:
	case WAN_PONG:
	case WAN_ACK:
		if (h->length != 8)
			return WM_ERR_PROTO;
		break;
	default:
		if (h->length > WAN_CTRL_MAX)
			return WM_ERR_PROTO;
		break;
	}
	return 1;
}

/* A small cursor over a payload; any overrun marks it bad. */
struct cur {
	const uint8_t *p;
	size_t left;
	int bad;
};

static const uint8_t *
take(struct cur *c, size_t n)
{
	const uint8_t *r = c->p;

	if (c->bad || c->left < n) {
		c->bad = 1;
		return NULL;
	}
	c->p += n;
	c->left -= n;
	return r;
}

static void
take_str(struct cur *c, char *out, size_t cap)
{
	const uint8_t *n = take(c, 1), *s;

	out[0] = '\0';
	if (n == NULL || (s = take(c, *n)) == NULL)
		return;
	if ((size_t)*n >= cap || memchr(s, '\0', *n) != NULL) {
		c->bad = 1;
		return;
	}
	memcpy(out, s, *n);
	out[*n] = '\0';
}

static int
finish(const struct cur *c)
{
	return (c->bad || c->left != 0) ? WM_ERR_PROTO : 0;
}

static int
put_str(uint8_t *buf, size_t cap, size_t *off, const char *s)
{
	size_t n = strlen(s);

	if (n > 255 || *off + 1 + n > cap)
		return WM_ERR_TOOBIG;
	buf[(*off)++] = (uint8_t)n;
	memcpy(buf + *off, s, n);
	*off += n;
	return 0;
}

int
wan_hello_encode(uint8_t *buf, size_t cap, const struct wan_hello *m)
{
	size_t off = 36;

	if (cap < off)
		return WM_ERR_TOOBIG;
	buf[0] = (uint8_t)(m->version >> 8);
	buf[1] = (uint8_t)m->version;
	buf[2] = (uint8_t)(m->flags >> 8);
	buf[3] = (uint8_t)m->flags;
	wm_put_be32(buf + 4, m->window);
	wm_put_be32(buf + 8, m->reorder);
	wm_put_be64(buf + 12, m->session);
	wm_put_be64(buf + 20, m->send_next);
	wm_put_be64(buf + 28, m->recv_next);
	if (put_str(buf, cap, &off, m->site) != 0)
		return WM_ERR_TOOBIG;
	return (int)off;
}

int
wan_hello_decode(const uint8_t *p, size_t len, struct wan_hello *m)
{
	struct cur c = { p, len, 0 };
	const uint8_t *h = take(&c, 36);

	if (h == NULL)
		return WM_ERR_PROTO;
	m->version = (uint16_t)(h[0] << 8 | h[1]);
	m->flags = (uint16_t)(h[2] << 8 | h[3]);
	m->window = wm_get_be32(h + 4);
	m->reorder = wm_get_be32(h + 8);
	m->session = wm_get_be64(h + 12);
	m->send_next = wm_get_be64(h + 20);
	m->recv_next = wm_get_be64(h + 28);
	take_str(&c, m->site, sizeof(m->site));
	return finish(&c);
}

int
wan_str_encode(uint8_t *buf, size_t cap, const char *str)
{
	size_t off = 0;

	if (put_str(buf, cap, &off, str) != 0)
		return WM_ERR_TOOBIG;
	return (int)off;
}

int
wan_str_decode(const uint8_t *p, size_t len, char *out, size_t cap)
{
	struct cur c = { p, len, 0 };

	take_str(&c, out, cap);
	return finish(&c);
}

int
wan_open_encode(uint8_t *buf, size_t cap, const struct wan_open *m)
{
	size_t off = 10;

	if (cap < off)
		return WM_ERR_TOOBIG;
	wm_put_be64(buf, m->migration);
	buf[8] = (uint8_t)(m->index >> 8);
	buf[9] = (uint8_t)m->index;
	if (put_str(buf, cap, &off, m->route) != 0 ||
	    put_str(buf, cap, &off, m->target) != 0 || off >= cap)
		return WM_ERR_TOOBIG;
	buf[off++] = m->flags;
	return (int)off;
}

int
wan_open_decode(const uint8_t *p, size_t len, struct wan_open *m)
{
	struct cur c = { p, len, 0 };
	const uint8_t *h = take(&c, 10);

	if (h == NULL)
		return WM_ERR_PROTO;
	m->migration = wm_get_be64(h);
	m->index = (uint16_t)(h[8] << 8 | h[9]);
	take_str(&c, m->route, sizeof(m->route));
	take_str(&c, m->target, sizeof(m->target));
	if (!c.bad && (m->route[0] == '\0' || m->target[0] == '\0'))
		return WM_ERR_PROTO;
	m->flags = 0;
	if (!c.bad && c.left > 0) {
		/* unknown flags are the receiver's to refuse, per stream */
		h = take(&c, 1);
		if (h == NULL)
			return WM_ERR_PROTO;
		m->flags = h[0];
	}
	return finish(&c);
}

int
wan_rst_encode(uint8_t *buf, size_t cap, const struct wan_rst *m)
{
	size_t off = 2;

	if (cap < off)
		return WM_ERR_TOOBIG;
	buf[0] = (uint8_t)(m->code >> 8);
	buf[1] = (uint8_t)m->code;
	if (put_str(buf, cap, &off, m->reason) != 0)
		return WM_ERR_TOOBIG;
	return (int)off;
}

int
wan_rst_decode(const uint8_t *p, size_t len, struct wan_rst *m)
{
	struct cur c = { p, len, 0 };
	const uint8_t *h = take(&c, 2);

	if (h == NULL)
		return WM_ERR_PROTO;
	m->code = (uint16_t)(h[0] << 8 | h[1]);
	take_str(&c, m->reason, sizeof(m->reason));
	return finish(&c);
}

int
wan_u32_decode(const uint8_t *p, size_t len, uint32_t *v)
{
	if (len != 4)
		return WM_ERR_PROTO;
	*v = wm_get_be32(p);
	return 0;
}

int
wan_u64_decode(const uint8_t *p, size_t len, uint64_t *v)
{
	if (len != 8)
		return WM_ERR_PROTO;
	*v = wm_get_be64(p);
	return 0;
}

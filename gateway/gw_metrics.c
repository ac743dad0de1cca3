/*
 * gw_metrics.c - the Prometheus endpoint (`metrics = ADDR:PORT` in [site])
 * and the cumulative per-route counters behind it.
 *
 * Counters: the daemon keeps only the last GW_HISTORY finished migrations,
 * so sums over that history would go down; instead every migration adds its
 * final figures here when it finishes (gw_metrics_mig_finished, called from
 * gw_mig.c), keyed by (route, peer, direction). A scrape adds the live
 * figures of the running migrations, which only grow and which equal the
 * final figures at the moment they move here: every series is monotonic.
 * The number of keys is bounded (GW_METRICS_MAX_SERIES; inbound route names
 * come from the peer): past it, figures go to route="_other".
 *
 * The endpoint: a minimal HTTP/1.x responder on the event loop. One request
 * per connection (GET or HEAD of /metrics; "/" names it; anything else 404,
 * other methods 405), then close. A request head is bounded to
 * GW_METRICS_MAX_REQUEST bytes and GW_METRICS_TIMEOUT_S seconds, and at
 * most GW_METRICS_MAX_CONNS connections are served at once (more are
 * closed on accept). Bound only when configured; a reload rebinds when the
 * address changes and drops the listener when the key is removed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "gw.h"
#include "gw_metrics_fmt.h"
#include "wm_err.h"
#include "wm_log.h"

#define GW_METRICS_MAX_REQUEST 8192
#define GW_METRICS_TIMEOUT_S 5
#define GW_METRICS_MAX_CONNS 16
#define GW_METRICS_MAX_SERIES 256
#define GW_TEXT_PLAIN "text/plain; charset=utf-8"

struct gw_metrics_conn {
	TAILQ_ENTRY(gw_metrics_conn) entry;
	struct gw_metrics *mx;
	struct bufferevent *bev;
};
TAILQ_HEAD(gw_metrics_conn_list, gw_metrics_conn);

/* Final figures of finished migrations of one (route, peer, direction). */
struct gw_metrics_key {
	char route[CONF_NAME_MAX];
	char peer[CONF_NAME_MAX];
	bool inbound;
	uint64_t completed, failed;
	uint64_t raw, ret, wan;
};

struct gw_metrics {
	struct gw *gw;
	struct evconnlistener *lev;
	struct wm_addr addr;
	struct gw_metrics_conn_list conns;
	unsigned nconns;
	struct gw_metrics_key *keys;
	size_t nkeys;
};

static struct gw_metrics *
metrics_get(struct gw *gw)
{
	if (gw->metrics == NULL) {
		gw->metrics = calloc(1, sizeof(*gw->metrics));
		if (gw->metrics == NULL)
			return NULL;
		gw->metrics->gw = gw;
		TAILQ_INIT(&gw->metrics->conns);
	}
	return gw->metrics;
}

/* Copies a name for use as a label: printable ASCII only. */
static void
label_copy(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i] != '\0'; i++)
		dst[i] = (src[i] > 0x20 && src[i] < 0x7f) ? src[i] : '_';
	dst[i] = '\0';
}

static struct gw_metrics_key *
key_find(struct gw_metrics *mx, const char *route, const char *peer,
    bool inbound, bool create)
{
	struct gw_metrics_key *k;
	char r[CONF_NAME_MAX], p[CONF_NAME_MAX];

	label_copy(r, sizeof(r), route);
	label_copy(p, sizeof(p), peer);
	for (size_t i = 0; i < mx->nkeys; i++) {
		k = &mx->keys[i];
		if (k->inbound == inbound && strcmp(k->route, r) == 0 &&
		    strcmp(k->peer, p) == 0)
			return k;
	}
	if (!create)
		return NULL;
	/* Past the bound, one "_other" key per (peer, direction) takes the
	 * figures; peers are bounded by the configuration. */
	if (mx->nkeys >= GW_METRICS_MAX_SERIES && strcmp(r, "_other") != 0)
		return key_find(mx, "_other", peer, inbound, true);
	k = realloc(mx->keys, (mx->nkeys + 1) * sizeof(*k));
	if (k == NULL)
		return NULL;
	mx->keys = k;
	k = &mx->keys[mx->nkeys++];
	memset(k, 0, sizeof(*k));
	memcpy(k->route, r, sizeof(r));
	memcpy(k->peer, p, sizeof(p));
	k->inbound = inbound;
	return k;
}

void
gw_metrics_mig_finished(struct gw *gw, const struct gw_mig *m)
{
	struct gw_metrics *mx = metrics_get(gw);
	struct gw_metrics_key *k;
	uint64_t fwd, ret, wan;

	if (mx != NULL &&
	    (k = key_find(mx, m->route, m->peer, m->inbound, true)) != NULL) {
		gw_mig_totals(m, &fwd, &ret, &wan);
		if (m->state == GW_MIG_COMPLETED)
			k->completed++;
		else
			k->failed++;
		k->raw += fwd;
		k->ret += ret;
		k->wan += wan;
	}
	gw_notify_update(gw);
}

/* ---- snapshot ---------------------------------------------------------- */

struct snap {
	struct gw_metrics_snapshot s;
	struct gw_metrics_peer *peers;
	struct gw_metrics_route *routes;
	char (*names)[CONF_NAME_MAX];   /* storage for labels of live series */
	size_t nnames;
};

static struct gw_metrics_route *
snap_route(struct snap *sn, const char *route, const char *peer, bool inbound)
{
	const char *dir = inbound ? "in" : "out";
	struct gw_metrics_route *r;

	for (size_t i = 0; i < sn->s.nroutes; i++) {
		r = &sn->routes[i];
		if (strcmp(r->route, route) == 0 && strcmp(r->peer, peer) == 0 &&
		    strcmp(r->direction, dir) == 0)
			return r;
	}
	r = &sn->routes[sn->s.nroutes++];
	memset(r, 0, sizeof(*r));
	r->route = route;
	r->peer = peer;
	r->direction = dir;
	return r;
}

static const char *
snap_name(struct snap *sn, const char *name)
{
	char *s = sn->names[sn->nnames++];

	label_copy(s, CONF_NAME_MAX, name);
	return s;
}

static void
snap_peer(struct gw_peer *p, struct gw_metrics_peer *mp)
{
	struct gw_peer_totals t;

	gw_peer_totals(p, &t);
	memset(mp, 0, sizeof(*mp));
	mp->name = p->name;
	mp->bytes_sent = t.sent;
	mp->bytes_received = t.rcvd;
	mp->connects = p->connects;
	mp->disconnects = p->disconnects;
	mp->connected = t.best != NULL;
	mp->streams = t.streams;
	mp->links = t.links;
	mp->outages = t.outages;
	mp->resumes = t.resumes;
	mp->bytes_resent = t.resent;
	mp->rtt_s = t.best != NULL && t.best_st.rtt_ms >= 0 ?
	    t.best_st.rtt_ms / 1000.0 : -1;
}

static void
snap_free(struct snap *sn)
{
	free(sn->peers);
	free(sn->routes);
	free(sn->names);
}

static int
snap_take(struct gw *gw, struct snap *sn)
{
	struct gw_metrics *mx = gw->metrics;
	const struct conf *c = gw->conf;
	struct gw_peer *p;
	struct gw_mig *m;
	size_t npeers = 0, nact = 0, nmax;

	memset(sn, 0, sizeof(*sn));
	TAILQ_FOREACH(p, &gw->peers, entry)
		npeers++;
	TAILQ_FOREACH(m, &gw->migs, entry)
		if (m->state == GW_MIG_ACTIVE)
			nact++;
	nmax = mx->nkeys + nact + c->nroutes;
	sn->peers = calloc(npeers + 1, sizeof(*sn->peers));
	sn->routes = calloc(nmax + 1, sizeof(*sn->routes));
	sn->names = calloc(2 * (nact + c->nroutes) + 1, sizeof(*sn->names));
	if (sn->peers == NULL || sn->routes == NULL || sn->names == NULL) {
		snap_free(sn);
		return WM_ERR_NOMEM;
	}
	sn->s.site = c->site.name;
	sn->s.version = WANMIG_VERSION;
	sn->s.start_time_s = (double)gw->started_wall;
	sn->s.migrations_active = nact;
	TAILQ_FOREACH(p, &gw->peers, entry)
		snap_peer(p, &sn->peers[sn->s.npeers++]);
	sn->s.peers = sn->peers;
	/* Configured outbound routes show from the start, at zero. */
	for (size_t i = 0; i < c->nroutes; i++)
		snap_route(sn, snap_name(sn, c->routes[i].name),
		    snap_name(sn, c->routes[i].peer), false);
	for (size_t i = 0; i < mx->nkeys; i++) {
		const struct gw_metrics_key *k = &mx->keys[i];
		struct gw_metrics_route *r = snap_route(sn, k->route, k->peer,
		    k->inbound);

		r->completed += k->completed;
		r->failed += k->failed;
		r->bytes_raw += k->raw;
		r->bytes_return += k->ret;
		r->bytes_wan += k->wan;
	}
	TAILQ_FOREACH(m, &gw->migs, entry) {
		const struct gw_metrics_key *k;
		struct gw_metrics_route *r;
		uint64_t fwd, ret, wan;

		if (m->state != GW_MIG_ACTIVE)
			continue;
		/* Same key (or "_other") as the migration will get when done. */
		k = key_find(mx, m->route, m->peer, m->inbound, false);
		if (k == NULL && mx->nkeys >= GW_METRICS_MAX_SERIES)
			r = snap_route(sn, "_other", snap_name(sn, m->peer),
			    m->inbound);
		else
			r = snap_route(sn, snap_name(sn, m->route),
			    snap_name(sn, m->peer), m->inbound);
		gw_mig_totals(m, &fwd, &ret, &wan);
		r->bytes_raw += fwd;
		r->bytes_return += ret;
		r->bytes_wan += wan;
	}
	sn->s.routes = sn->routes;
	return 0;
}

char *
gw_metrics_text(struct gw *gw, size_t *lenp)
{
	struct snap sn;
	char *text;

	if (metrics_get(gw) == NULL || snap_take(gw, &sn) != 0)
		return NULL;
	text = gw_metrics_fmt_text(&sn.s, lenp);
	snap_free(&sn);
	return text;
}

/* ---- HTTP -------------------------------------------------------------- */

static void
conn_free(struct gw_metrics_conn *mc)
{
	TAILQ_REMOVE(&mc->mx->conns, mc, entry);
	mc->mx->nconns--;
	bufferevent_free(mc->bev);
	free(mc);
}

static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_free(arg);
}

static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_free(arg); /* the whole reply is out: close */
}

static void
conn_reply(struct gw_metrics_conn *mc, int code, const char *reason,
    const char *ctype, const char *extra, const char *body, size_t len,
    bool head_only)
{
	struct evbuffer *out = bufferevent_get_output(mc->bev);

	bufferevent_disable(mc->bev, EV_READ);
	bufferevent_setcb(mc->bev, NULL, conn_writecb, conn_eventcb, mc);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sCache-Control: no-store\r\n"
	    "Connection: close\r\n\r\n", code, reason, ctype, len,
	    extra != NULL ? extra : "");
	if (!head_only && len > 0)
		evbuffer_add(out, body, len);
}

static void
conn_error(struct gw_metrics_conn *mc, int code, const char *reason,
    const char *extra, bool head_only)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "%d %s\n", code, reason);

	conn_reply(mc, code, reason, GW_TEXT_PLAIN, extra, body, (size_t)n,
	    head_only);
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct gw_metrics_conn *mc = arg;
	struct gw *gw = mc->mx->gw;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct gw_metrics_request req;
	size_t len = evbuffer_get_length(in);
	const char *buf = (const char *)evbuffer_pullup(in, -1);
	bool head;
	int rc;

	if (buf == NULL && len > 0) {
		conn_error(mc, 431, "Request Header Fields Too Large", NULL, false);
		return;
	}
	rc = gw_metrics_fmt_request_parse(buf, len, GW_METRICS_MAX_REQUEST, &req);
	if (rc == 0)
		return;
	if (rc == WM_ERR_TOOBIG) {
		conn_error(mc, 431, "Request Header Fields Too Large", NULL, false);
		return;
	}
	if (rc < 0) {
		conn_error(mc, 400, "Bad Request", NULL, false);
		return;
	}
	head = req.method == GW_METRICS_HEAD;
	if (req.method == GW_METRICS_OTHER) {
		conn_error(mc, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
		    false);
	} else if (strcmp(req.path, "/metrics") == 0) {
		size_t tlen;
		char *text = gw_metrics_text(gw, &tlen);

		if (text == NULL) {
			conn_error(mc, 500, "Internal Server Error", NULL, head);
			return;
		}
		conn_reply(mc, 200, "OK", GW_METRICS_CONTENT_TYPE, NULL, text,
		    tlen, head);
		free(text);
	} else if (strcmp(req.path, "/") == 0) {
		static const char hint[] = "wanmigd: metrics at /metrics\n";

		conn_reply(mc, 200, "OK", GW_TEXT_PLAIN, NULL, hint,
		    sizeof(hint) - 1, head);
	} else {
		conn_error(mc, 404, "Not Found", NULL, head);
	}
}

static void
metrics_acceptcb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct gw_metrics *mx = arg;
	struct gw_metrics_conn *mc;
	struct timeval tv = { GW_METRICS_TIMEOUT_S, 0 };

	(void)lev;
	(void)sa;
	(void)salen;
	if (mx->nconns >= GW_METRICS_MAX_CONNS ||
	    (mc = calloc(1, sizeof(*mc))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	mc->mx = mx;
	mc->bev = bufferevent_socket_new(mx->gw->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (mc->bev == NULL) {
		evutil_closesocket(fd);
		free(mc);
		return;
	}
	TAILQ_INSERT_TAIL(&mx->conns, mc, entry);
	mx->nconns++;
	bufferevent_setcb(mc->bev, conn_readcb, NULL, conn_eventcb, mc);
	bufferevent_set_timeouts(mc->bev, &tv, &tv);
	bufferevent_setwatermark(mc->bev, EV_READ, 0, GW_METRICS_MAX_REQUEST);
	bufferevent_enable(mc->bev, EV_READ);
}

static bool
same_addr(const struct wm_addr *a, const struct wm_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void
listener_close(struct gw_metrics *mx)
{
	if (mx->lev != NULL) {
		evconnlistener_free(mx->lev);
		mx->lev = NULL;
	}
}

int
gw_metrics_listen(struct gw *gw)
{
	const struct conf_site *cs = &gw->conf->site;
	struct gw_metrics *mx = metrics_get(gw);
	struct evconnlistener *lev;
	char a[WM_ADDRSTRLEN];

	if (mx == NULL)
		return -1;
	if (!cs->has_metrics) {
		if (mx->lev != NULL)
			log_info("metrics endpoint closed");
		listener_close(mx);
		return 0;
	}
	if (mx->lev != NULL && same_addr(&mx->addr, &cs->metrics))
		return 0;
	wm_addr_format((const struct sockaddr *)&cs->metrics.ss, a, sizeof(a));
	/* A new port can be bound before the old one goes; the same port on
	 * another address (e.g. 127.0.0.1 -> *) needs the old one gone. */
	listener_close(mx);
	lev = evconnlistener_new_bind(gw->base, metrics_acceptcb, mx,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
	    16, (const struct sockaddr *)&cs->metrics.ss, (int)cs->metrics.len);
	if (lev != NULL)
		gw_listener_guard(gw, lev);
	if (lev == NULL) {
		log_err("cannot listen for metrics on %s", a);
		return -1;
	}
	mx->lev = lev;
	mx->addr = cs->metrics;
	log_info("metrics endpoint http://%s/metrics", a);
	return 0;
}

void
gw_metrics_close(struct gw *gw)
{
	struct gw_metrics *mx = gw->metrics;
	struct gw_metrics_conn *mc;

	if (mx == NULL)
		return;
	listener_close(mx);
	while ((mc = TAILQ_FIRST(&mx->conns)) != NULL)
		conn_free(mc);
	free(mx->keys);
	free(mx);
	gw->metrics = NULL;
}

struct evconnlistener *
gw_metrics_listener(struct gw *gw)
{
	return gw->metrics != NULL ? gw->metrics->lev : NULL;
}

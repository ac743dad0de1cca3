/*
 * gw_peer.c - peers: the WAN listener, dialling with backoff, and the
 * identity check that binds a TLS connection to a configured peer.
 *
 * A peer with an address gets one tunnel session from us, carried by
 * `streams` TLS connections dialled one after the other. A lost
 * connection is re-dialled (backoff from 0.5 s, doubling, at most 1 s
 * while the session waits to resume, else 30 s) and the session resumes
 * where it stopped. Any peer may also dial us: each of its sessions is a
 * link here, found again by its id when it reconnects. New migrations
 * prefer the session we dialled.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>

#include "cr_tls.h"
#include "gw.h"
#include "wm_log.h"

static void peer_dial(struct gw_peer *p);

struct gw_peer *
gw_peer_find(struct gw *gw, const char *name)
{
	struct gw_peer *p;

	TAILQ_FOREACH(p, &gw->peers, entry)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

struct gw_link *
gw_peer_link(struct gw_peer *p)
{
	struct gw_link *gl, *best = NULL;

	TAILQ_FOREACH(gl, &p->links, entry) {
		if (gl->wl == NULL || !wan_link_ready(gl->wl))
			continue;
		if (best == NULL || (gl->dialled && !best->dialled))
			best = gl;
	}
	return best;
}

bool
gw_peer_connected(struct gw_peer *p)
{
	return gw_peer_link(p) != NULL;
}

static void
dial_schedule(struct gw_peer *p)
{
	struct wan_link_stats st;
	uint64_t max = GW_DIAL_BACKOFF_MAX_MS;
	struct timeval tv;

	if (p->removed || p->gw->stopping)
		return;
	/* A session that was up holds migrations: redial fast. */
	if (p->dialling != NULL && p->dialling->wl != NULL) {
		wan_link_get_stats(p->dialling->wl, &st);
		if (st.up_since_ms != 0)
			max = GW_RESUME_BACKOFF_MAX_MS;
	}
	if (p->backoff_ms > max)
		p->backoff_ms = max;
	tv.tv_sec = (time_t)(p->backoff_ms / 1000);
	tv.tv_usec = (suseconds_t)(p->backoff_ms % 1000) * 1000;
	evtimer_add(p->dial_timer, &tv);
	p->backoff_ms *= 2;
	if (p->backoff_ms > max)
		p->backoff_ms = max;
}

static struct wan_link_params
link_params(struct gw *gw, const struct conf_peer *cp, bool dialled)
{
	struct wan_link_params lp = {
		.site = gw->conf->site.name,
		.peer_site = cp->name,
		.window = (uint32_t)gw->conf->site.window,
		.reorder = (uint32_t)cp->resume_buffer,
		.keepalive_ms = cp->keepalive_ms,
		.timeout_ms = cp->timeout_ms,
		.resume_ms = cp->resume_window_ms,
		.dialled = dialled,
	};

	return lp;
}

/* ---- link callbacks ---------------------------------------------------- */

static void
link_conn_up(struct wan_link *wl, bool resumed, void *arg)
{
	struct gw_link *gl = arg;
	struct gw_peer *p = gl->peer;
	struct wan_link_stats st;

	wan_link_get_stats(wl, &st);
	p->connects++;
	if (gl->dialled)
		p->backoff_ms = GW_DIAL_BACKOFF_MIN_MS;
	p->last_error[0] = '\0';
	if (resumed)
		log_info("peer %s: session resumed (%s, %s), %u connection(s)",
		    p->name, gl->remote, gl->dialled ? "dialled" : "accepted",
		    st.conns);
	else
		log_info("peer %s connected (%s, %s), %u connection(s)", p->name,
		    gl->remote, gl->dialled ? "dialled" : "accepted", st.conns);
	if (gl->dialled)
		peer_dial(p); /* the next stripe, if any is missing */
}

static void
link_conn_down(struct wan_link *wl, bool was_up, const char *why, void *arg)
{
	struct gw_link *gl = arg;
	struct gw_peer *p = gl->peer;
	struct wan_link_stats st;

	wan_link_get_stats(wl, &st);
	snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	if (was_up && st.conns == 0) {
		p->disconnects++;
		log_warnx("peer %s (%s): last connection lost: %s; the session "
		    "waits to resume", p->name, gl->remote, why);
	} else if (was_up) {
		log_warnx("peer %s (%s): connection lost: %s; %u left",
		    p->name, gl->remote, why, st.conns);
	} else {
		log_warnx("peer %s (%s): %s", p->name, gl->remote, why);
	}
	if (gl->dialled && p->dialling == gl)
		dial_schedule(p);
}

static int
link_open(struct wan_link *wl, struct wan_stream *ws, const struct wan_open *o,
    char *why, size_t whylen, void *arg)
{
	(void)wl;
	return gw_mig_remote_open(arg, ws, o, why, whylen);
}

static void
link_down(struct wan_link *wl, const char *why, void *arg)
{
	struct gw_link *gl = arg;
	struct gw_peer *p = gl->peer;
	struct wan_link_stats st;

	wan_link_get_stats(wl, &st);
	gl->wl = NULL;
	p->bytes_sent += st.bytes_sent;
	p->bytes_received += st.bytes_received;
	p->outages += st.outages;
	p->resumes += st.resumes;
	snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	if (st.up_since_ms != 0)
		log_warnx("peer %s (%s): session ended: %s", p->name, gl->remote,
		    why);
	TAILQ_REMOVE(&p->links, gl, entry);
	if (p->dialling == gl) {
		p->dialling = NULL;
		dial_schedule(p);
	}
	free(gl);
}

static const struct wan_link_cbs link_cbs = {
	.open = link_open,
	.conn_up = link_conn_up,
	.conn_down = link_conn_down,
	.down = link_down,
};

static struct gw_link *
link_create(struct gw_peer *p, const struct conf_peer *cp, bool dialled,
    uint64_t session, const char *remote)
{
	struct gw *gw = p->gw;
	struct wan_link_params lp = link_params(gw, cp, dialled);
	struct gw_link *gl = calloc(1, sizeof(*gl));

	if (gl == NULL)
		return NULL;
	gl->gw = gw;
	gl->peer = p;
	gl->dialled = dialled;
	snprintf(gl->remote, sizeof(gl->remote), "%s", remote);
	gl->wl = wan_link_new(gw->base, &lp, &link_cbs, gl, session);
	if (gl->wl == NULL) {
		free(gl);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&p->links, gl, entry);
	return gl;
}

/* ---- dialling ---------------------------------------------------------- */

static int
dconn_verify(struct wan_conn *c, SSL *ssl, char *why, size_t whylen,
    void *arg)
{
	struct gw_peer *p = arg;
	char subj[256];

	(void)c;
	/* The handshake already checked the name; check again, it costs
	 * nothing. */
	if (cr_tls_peer_is(ssl, p->name))
		return 0;
	snprintf(why, whylen, "certificate %s is not peer %s",
	    cr_tls_peer_subject(ssl, subj, sizeof(subj)), p->name);
	return -1;
}

static const struct wan_conn_cbs dconn_cbs = {
	.verify = dconn_verify,
};

/*
 * Makes sure our session with the peer exists and dials its next missing
 * connection: one handshake at a time, up to `streams` connections.
 */
static void
peer_dial(struct gw_peer *p)
{
	struct gw *gw = p->gw;
	const struct conf_peer *cp = conf_peer_find(gw->conf, p->name);
	struct wan_conn_params cpar = { GW_HANDSHAKE_MS, true };
	struct wan_link_stats st;
	struct bufferevent *bev;
	struct wan_conn *c;
	char remote[WM_ADDRSTRLEN];
	SSL *ssl;

	if (cp == NULL || !cp->has_address || gw->stopping || p->removed)
		return;
	wm_addr_format((const struct sockaddr *)&cp->address.ss, remote,
	    sizeof(remote));
	if (p->dialling == NULL) {
		p->dialling = link_create(p, cp, true, 0, remote);
		if (p->dialling == NULL) {
			dial_schedule(p);
			return;
		}
	}
	wan_link_get_stats(p->dialling->wl, &st);
	if (st.conns + st.conns_pending >= cp->streams || st.conns_pending > 0)
		return;
	ssl = cr_tls_new(gw->tls, p->name);
	if (ssl == NULL) {
		dial_schedule(p);
		return;
	}
	bev = bufferevent_openssl_socket_new(gw->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		dial_schedule(p);
		return;
	}
	if (bufferevent_socket_connect(bev, (const struct sockaddr *)&cp->address.ss,
	    (int)cp->address.len) != 0) {
		snprintf(p->last_error, sizeof(p->last_error), "connect %s: %s",
		    remote, strerror(errno));
		log_debug("peer %s: %s", p->name, p->last_error);
		bufferevent_free(bev);
		dial_schedule(p);
		return;
	}
	gw_tune_tcp(bufferevent_getfd(bev));
	gw_tune_wan(bufferevent_getfd(bev), cp->congestion);
	c = wan_conn_new(gw->base, bev, &cpar, &dconn_cbs, p);
	if (c == NULL) {
		dial_schedule(p);
		return;
	}
	snprintf(p->dialling->remote, sizeof(p->dialling->remote), "%s", remote);
	wan_link_add_conn(p->dialling->wl, c);
}

static void
dial_timercb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	peer_dial(arg);
}

/* ---- accepting --------------------------------------------------------- */

static void
pconn_free(struct gw_pconn *pc)
{
	TAILQ_REMOVE(&pc->gw->pending, pc, entry);
	free(pc);
}

static int
pconn_verify(struct wan_conn *c, SSL *ssl, char *why, size_t whylen,
    void *arg)
{
	struct gw_pconn *pc = arg;
	struct gw *gw = pc->gw;
	struct gw_peer *p;
	char subj[256];

	(void)c;
	TAILQ_FOREACH(p, &gw->peers, entry) {
		if (!p->removed && cr_tls_peer_is(ssl, p->name)) {
			const struct conf_peer *cp = conf_peer_find(gw->conf,
			    p->name);

			pc->peer = p;
			if (cp != NULL)
				gw_tune_wan(SSL_get_fd(ssl), cp->congestion);
			return 0;
		}
	}
	snprintf(why, whylen, "certificate %s matches no configured peer",
	    cr_tls_peer_subject(ssl, subj, sizeof(subj)));
	return -1;
}

/*
 * The peer named its session: the connection joins that session, or a new
 * one. A new session from the peer replaces the ones it had (it restarted
 * or gave them up): those cannot resume, so they end now rather than at
 * the end of their resume window.
 */
static void
pconn_hello(struct wan_conn *c, const struct wan_hello *h, void *arg)
{
	struct gw_pconn *pc = arg;
	struct gw_peer *p = pc->peer;
	const struct conf_peer *cp = p ? conf_peer_find(pc->gw->conf, p->name) : NULL;
	struct gw_link *gl, *next, *found = NULL;
	unsigned others = 0;

	if (p == NULL || cp == NULL) {
		wan_conn_close(c, "peer no longer configured");
		return;
	}
	if (strcmp(h->site, p->name) != 0) {
		log_warnx("peer %s (%s) announces itself as \"%s\"; dropped",
		    p->name, pc->remote, h->site);
		wan_conn_close(c, "site name in HELLO does not match certificate");
		return;
	}
	for (gl = TAILQ_FIRST(&p->links); gl != NULL; gl = next) {
		next = TAILQ_NEXT(gl, entry);
		if (gl->dialled || gl->wl == NULL)
			continue;
		if (wan_link_session(gl->wl) == h->session)
			found = gl;
		else if (h->flags & WAN_HELLO_NEW)
			wan_link_close(gl->wl, "peer started a new session");
		else
			others++;
	}
	/* A peer dials one session at a time (plus one it is giving up):
	 * more would only be a way to make us hold their buffers. */
	if (found == NULL && others >= GW_ACCEPTED_MAX) {
		wan_conn_close(c, "too many sessions from this peer");
		return;
	}
	if (found == NULL)
		found = link_create(p, cp, false, h->session, pc->remote);
	if (found == NULL) {
		wan_conn_close(c, "out of memory"); /* pconn_down frees pc */
		return;
	}
	snprintf(found->remote, sizeof(found->remote), "%s", pc->remote);
	pconn_free(pc); /* the link reports on c from now on */
	wan_link_add_conn(found->wl, c);
}

static void
pconn_down(struct wan_conn *c, const char *why, void *arg)
{
	struct gw_pconn *pc = arg;

	(void)c;
	if (pc == NULL)
		return;
	if (pc->peer != NULL)
		log_warnx("peer %s (%s): %s", pc->peer->name, pc->remote, why);
	else
		log_warnx("connection from %s refused: %s", pc->remote, why);
	pconn_free(pc);
}

static const struct wan_conn_cbs pconn_cbs = {
	.verify = pconn_verify,
	.hello = pconn_hello,
	.down = pconn_down,
};

static void
wan_acceptcb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct gw *gw = arg;
	struct wan_conn_params cpar = { GW_HANDSHAKE_MS, false };
	struct bufferevent *bev;
	struct gw_pconn *pc;
	unsigned npending = 0;
	SSL *ssl;

	(void)lev;
	(void)salen;
	TAILQ_FOREACH(pc, &gw->pending, entry)
		npending++;
	/* Unidentified connections cost a socket and a TLS state for up to
	 * the handshake timeout: bound them, or anyone who reaches the WAN
	 * port could exhaust our descriptors. */
	if (gw->stopping || npending >= GW_PENDING_MAX) {
		if (npending >= GW_PENDING_MAX)
			log_debug("%d handshakes pending; connection refused",
			    GW_PENDING_MAX);
		evutil_closesocket(fd);
		return;
	}
	pc = calloc(1, sizeof(*pc));
	ssl = cr_tls_new(gw->tls, NULL);
	if (pc == NULL || ssl == NULL) {
		free(pc);
		SSL_free(ssl);
		evutil_closesocket(fd);
		return;
	}
	gw_tune_tcp(fd);
	pc->gw = gw;
	wm_addr_format(sa, pc->remote, sizeof(pc->remote));
	bev = bufferevent_openssl_socket_new(gw->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		free(pc);
		return;
	}
	TAILQ_INSERT_TAIL(&gw->pending, pc, entry);
	pc->conn = wan_conn_new(gw->base, bev, &cpar, &pconn_cbs, pc);
	if (pc->conn == NULL)
		pconn_free(pc);
}

int
gw_wan_listen(struct gw *gw)
{
	const struct conf_site *s = &gw->conf->site;
	char a[WM_ADDRSTRLEN];

	if (gw->wan_lev != NULL) {
		if (s->has_listen && s->listen.len == gw->wan_listen.len &&
		    memcmp(&s->listen.ss, &gw->wan_listen.ss, s->listen.len) == 0)
			return 0;
		evconnlistener_free(gw->wan_lev);
		gw->wan_lev = NULL;
	}
	if (!s->has_listen)
		return 0;
	gw->wan_lev = evconnlistener_new_bind(gw->base, wan_acceptcb, gw,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    64, (const struct sockaddr *)&s->listen.ss, (int)s->listen.len);
	wm_addr_format((const struct sockaddr *)&s->listen.ss, a, sizeof(a));
	if (gw->wan_lev == NULL) {
		log_err("cannot listen for peers on %s", a);
		return -1;
	}
	gw->wan_listen = s->listen;
	gw_listener_guard(gw, gw->wan_lev);
	log_info("listening for peers on %s", a);
	return 0;
}

/* ---- configuration ----------------------------------------------------- */

/* Closes the links of a removed peer that carry no stream any more. */
static void
peer_close_idle(struct gw_peer *p)
{
	struct gw_link *gl, *next;

	for (gl = TAILQ_FIRST(&p->links); gl != NULL; gl = next) {
		struct wan_link_stats st;

		next = TAILQ_NEXT(gl, entry);
		if (gl->wl == NULL)
			continue;
		wan_link_get_stats(gl->wl, &st);
		if (st.streams == 0)
			wan_link_close(gl->wl, "peer removed from the configuration");
	}
}

int
gw_peers_apply(struct gw *gw)
{
	struct gw_peer *p;
	size_t i;

	TAILQ_FOREACH(p, &gw->peers, entry)
		p->removed = conf_peer_find(gw->conf, p->name) == NULL;
	for (i = 0; i < gw->conf->npeers; i++) {
		const struct conf_peer *cp = &gw->conf->peers[i];

		p = gw_peer_find(gw, cp->name);
		if (p == NULL) {
			p = calloc(1, sizeof(*p));
			if (p == NULL)
				return -1;
			p->gw = gw;
			snprintf(p->name, sizeof(p->name), "%s", cp->name);
			TAILQ_INIT(&p->links);
			p->backoff_ms = GW_DIAL_BACKOFF_MIN_MS;
			p->dial_timer = evtimer_new(gw->base, dial_timercb, p);
			p->shaper = wan_shaper_new(gw->base, cp->bandwidth_bps);
			if (p->dial_timer == NULL || p->shaper == NULL) {
				if (p->dial_timer != NULL)
					event_free(p->dial_timer);
				wan_shaper_free(p->shaper);
				free(p);
				return -1;
			}
			TAILQ_INSERT_TAIL(&gw->peers, p, entry);
		}
		/* The file's rate wins at every (re)load. */
		p->rate_overridden = false;
		wan_shaper_set_rate(p->shaper, cp->bandwidth_bps);
		if (cp->has_address && !evtimer_pending(p->dial_timer, NULL))
			peer_dial(p); /* a new peer, or more streams */
	}
	/* Removed peers: stop dialling; their links close when idle (now,
	 * or later from gw_rates_tick). */
	TAILQ_FOREACH(p, &gw->peers, entry) {
		if (!p->removed)
			continue;
		evtimer_del(p->dial_timer);
		peer_close_idle(p);
	}
	return 0;
}

void
gw_peers_free(struct gw *gw)
{
	struct gw_peer *p;
	struct gw_link *gl;
	struct gw_pconn *pc;

	if (gw->wan_lev != NULL) {
		evconnlistener_free(gw->wan_lev);
		gw->wan_lev = NULL;
	}
	/* The close functions run link_down() and pconn_down(), which unlink
	 * and free gl and pc. */
	while ((pc = TAILQ_FIRST(&gw->pending)) != NULL)
		wan_conn_close(pc->conn, "shutting down");
	while ((p = TAILQ_FIRST(&gw->peers)) != NULL) {
		while ((gl = TAILQ_FIRST(&p->links)) != NULL)
			wan_link_close(gl->wl, "shutting down");
		TAILQ_REMOVE(&gw->peers, p, entry);
		event_free(p->dial_timer);
		wan_shaper_free(p->shaper);
		free(p);
	}
}

/* ---- rates ------------------------------------------------------------- */

void
gw_peer_totals(struct gw_peer *p, struct gw_peer_totals *t)
{
	struct gw_link *gl;

	memset(t, 0, sizeof(*t));
	t->sent = p->bytes_sent;
	t->rcvd = p->bytes_received;
	t->outages = p->outages;
	t->resumes = p->resumes;
	t->best = gw_peer_link(p);
	TAILQ_FOREACH(gl, &p->links, entry) {
		struct wan_link_stats st;

		if (gl->wl == NULL)
			continue;
		wan_link_get_stats(gl->wl, &st);
		t->sent += st.bytes_sent;
		t->rcvd += st.bytes_received;
		t->resent += st.bytes_resent;
		t->streams += st.streams;
		t->outages += st.outages;
		t->resumes += st.resumes;
		if (st.down_since_ms != 0)
			t->resuming = true;
		if (wan_link_ready(gl->wl)) {
			t->links++;
			t->conns += st.conns;
		}
		if (gl == t->best)
			t->best_st = st;
	}
}

void
gw_rates_tick(struct gw *gw)
{
	struct gw_peer *p;
	struct gw_mig *m;

	TAILQ_FOREACH(p, &gw->peers, entry) {
		uint64_t rate_Bps = wan_shaper_rate(p->shaper) / 8;
		struct gw_peer_totals t;
		struct gw_link *gl;

		if (p->removed)
			peer_close_idle(p); /* its last migrations may have ended */

		/* The in-flight bound of each tunnel follows the peer's rate
		 * (a runtime change included): see wan_link_set_rate. */
		TAILQ_FOREACH(gl, &p->links, entry)
			if (gl->wl != NULL)
				wan_link_set_rate(gl->wl, rate_Bps);
		gw_peer_totals(p, &t);
		p->rate_sent_bps = (t.sent - p->rate_prev_sent) * 8;
		p->rate_rcvd_bps = (t.rcvd - p->rate_prev_rcvd) * 8;
		p->rate_prev_sent = t.sent;
		p->rate_prev_rcvd = t.rcvd;
	}
	TAILQ_FOREACH(m, &gw->migs, entry) {
		uint64_t fwd, ret, wan;

		if (m->state != GW_MIG_ACTIVE)
			break;
		gw_mig_totals(m, &fwd, &ret, &wan);
		m->rate_wan_bps = (wan - m->rate_prev_wan) * 8;
		m->rate_prev_wan = wan;
	}
	gw_mig_idle_tick(gw);
}

int
gw_set_peer_rate(struct gw *gw, const char *peer, uint64_t bps, char *err,
    size_t errlen)
{
	struct gw_peer *p = gw_peer_find(gw, peer);
	char r[32];

	if (p == NULL || p->removed) {
		snprintf(err, errlen, "no peer named \"%s\"", peer);
		return -1;
	}
	wan_shaper_set_rate(p->shaper, bps);
	p->rate_overridden = true;
	log_info("peer %s: bandwidth set to %s at run time", p->name,
	    wm_rate_format(bps, r, sizeof(r)));
	return 0;
}

uint64_t
gw_peer_rate_Bps(struct gw *gw, const char *name)
{
	struct gw_peer *p = gw_peer_find(gw, name);
	struct gw_link *gl = p ? gw_peer_link(p) : NULL;
	struct wan_link_stats st;
	uint64_t bps = p && p->shaper ? wan_shaper_rate(p->shaper) : 0;

	if (bps != 0)
		return bps / 8;
	if (gl == NULL || gl->wl == NULL)
		return 0;
	wan_link_get_stats(gl->wl, &st);
	return st.path_Bps;
}

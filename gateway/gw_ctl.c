/*
 * gw_ctl.c - the control socket (protocol in gw_ctl_proto.h) and the
 * status document behind `wanmig status`.
 *
 * The socket is created with mode 0600 in a folder made 0755 if missing;
 * a stale socket is replaced, a live one (another daemon) is an error.
 * Each client gets GW_CTL_TIMEOUT_S to send its request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "gw.h"
#include "gw_ctl_proto.h"
#include "gw_rarp.h"
#include "wm_err.h"
#include "wm_log.h"

#define GW_CTL_TIMEOUT_S 5

static void
add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void
add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static void
add_time(struct json_object *o, const char *k, time_t t)
{
	char buf[32];
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	add_str(o, k, buf);
}

static struct json_object *
peer_json(struct gw_peer *p)
{
	struct json_object *o = json_object_new_object();
	const struct conf_peer *cp = conf_peer_find(p->gw->conf, p->name);
	const struct wan_link_stats *st;
	struct gw_peer_totals t;
	char a[WM_ADDRSTRLEN];

	gw_peer_totals(p, &t);
	st = &t.best_st;
	add_str(o, "name", p->name);
	if (cp != NULL && cp->has_address)
		add_str(o, "address", wm_addr_format(
		    (const struct sockaddr *)&cp->address.ss, a, sizeof(a)));
	json_object_object_add(o, "connected",
	    json_object_new_boolean(t.best != NULL));
	json_object_object_add(o, "rtt_ms", t.best != NULL && st->rtt_ms >= 0 ?
	    json_object_new_double(st->rtt_ms) : NULL);
	if (t.best != NULL) {
		add_str(o, "remote", t.best->remote);
		add_u64(o, "connected_s", (wm_now_ms() - st->up_since_ms) / 1000);
		json_object_object_add(o, "min_rtt_ms", st->min_rtt_ms >= 0 ?
		    json_object_new_double(st->min_rtt_ms) : NULL);
		add_u64(o, "inflight_bytes", st->inflight);
		add_u64(o, "inflight_cap_bytes", st->inflight_cap);
		add_u64(o, "inflight_far_bytes", st->inflight_far);
		add_u64(o, "resend_buffer_bytes", st->unacked);
		add_u64(o, "bbr_paced", st->bbr_paced);
		add_u64(o, "bbr_refreshed", st->bbr_refreshed);
	}
	add_u64(o, "links", t.links);
	add_u64(o, "connections", t.conns);
	add_u64(o, "streams", t.streams);
	json_object_object_add(o, "resuming", json_object_new_boolean(t.resuming));
	add_u64(o, "outages", t.outages);
	add_u64(o, "resumes", t.resumes);
	add_u64(o, "bytes_resent", t.resent);
	add_u64(o, "bytes_sent", t.sent);
	add_u64(o, "bytes_received", t.rcvd);
	add_u64(o, "rate_limit_bps", wan_shaper_rate(p->shaper));
	add_u64(o, "rate_sent_bps", p->rate_sent_bps);
	add_u64(o, "rate_received_bps", p->rate_rcvd_bps);
	add_u64(o, "connects", p->connects);
	add_u64(o, "disconnects", p->disconnects);
	if (p->removed)
		json_object_object_add(o, "removed", json_object_new_boolean(1));
	if (p->last_error[0] != '\0')
		add_str(o, "last_error", p->last_error);
	return o;
}

/* What the page codec did for an outbound migration. */
static struct json_object *
codec_json(const struct gw_mig *m)
{
	struct json_object *o = json_object_new_object();
	struct json_object *pages = json_object_new_object();
	struct pc_stats st;

	gw_mig_codec(m, &st);
	add_str(o, "algo", pc_algo_name(m->algo));
	for (int c = 0; c < PC_NCLASS; c++)
		add_u64(pages, pc_class_name((enum pc_class)c), st.pages[c]);
	json_object_object_add(o, "pages", pages);
	add_u64(o, "raw_bytes", st.raw_bytes);
	add_u64(o, "wan_bytes", st.enc_bytes);
	json_object_object_add(o, "ratio", json_object_new_double(
	    st.raw_bytes ? (double)st.enc_bytes / (double)st.raw_bytes : 0));
	add_u64(o, "blocks", st.blocks);
	add_u64(o, "blocks_skipped", st.blocks_skipped);
	if (st.opaque)
		add_str(o, "opaque_from", st.opaque_why);
	return o;
}

static struct json_object *
mig_json(struct gw_mig *m)
{
	struct json_object *o = json_object_new_object();
	uint64_t fwd, ret, wan, end;
	const struct gw_stream *gs;
	unsigned open = 0;

	gw_mig_totals(m, &fwd, &ret, &wan);
	TAILQ_FOREACH(gs, &m->streams, entry)
		open++;
	end = m->state == GW_MIG_ACTIVE ? wm_now_ms() : m->ended_ms;
	add_u64(o, "id", m->id);
	add_str(o, "direction", m->inbound ? "in" : "out");
	add_str(o, "route", m->route);
	add_str(o, "peer", m->peer);
	add_str(o, "source", m->source);
	add_str(o, "target", m->target);
	add_str(o, "state", gw_mig_state_name(m->state));
	add_u64(o, "streams", m->nstreams);
	add_u64(o, "streams_open", open);
	add_u64(o, "bytes_in", fwd);
	add_u64(o, "bytes_return", ret);
	add_u64(o, "bytes_wan", wan);
	if (m->state == GW_MIG_ACTIVE)
		add_u64(o, "rate_wan_bps", m->rate_wan_bps);
	if (m->cap != NULL)
		add_u64(o, "rate_limit_bps", wan_shaper_rate(m->cap));
	add_time(o, "started", m->started_wall);
	json_object_object_add(o, "elapsed_s",
	    json_object_new_double((double)(end - m->started_ms) / 1000.0));
	if (m->inbound) {
		add_u64(o, "remote_id", m->remote_id);
		if (m->state == GW_MIG_COMPLETED)
			json_object_object_add(o, "confirmed",
			    json_object_new_boolean(m->confirmed));
	}
	if (m->state == GW_MIG_FAILED)
		add_str(o, "error", m->error);
	json_object_object_add(o, "encoded", json_object_new_boolean(m->encoded));
	if (m->encoded && !m->inbound)
		json_object_object_add(o, "codec", codec_json(m));
	if (m->announce != NULL)
		json_object_object_add(o, "announce", gw_rarp_mig_json(m));
	return o;
}

struct json_object *
gw_status_json(struct gw *gw)
{
	struct json_object *o = json_object_new_object();
	struct json_object *peers = json_object_new_array();
	struct json_object *migs = json_object_new_array();
	struct json_object *routes = json_object_new_array();
	struct gw_peer *p;
	struct gw_mig *m;
	char a[WM_ADDRSTRLEN];

	add_str(o, "site", gw->conf->site.name);
	add_str(o, "version", WANMIG_VERSION);
	add_u64(o, "pid", (uint64_t)getpid());
	add_time(o, "started", gw->started_wall);
	json_object_object_add(o, "stopping", json_object_new_boolean(gw->stopping));
	add_u64(o, "migrations_completed", gw->mig_completed);
	add_u64(o, "migrations_failed", gw->mig_failed);
	TAILQ_FOREACH(p, &gw->peers, entry)
		json_object_array_add(peers, peer_json(p));
	for (size_t i = 0; i < gw->conf->nroutes; i++) {
		const struct conf_route *cr = &gw->conf->routes[i];
		struct json_object *r = json_object_new_object();

		add_str(r, "name", cr->name);
		add_str(r, "listen", wm_addr_format(
		    (const struct sockaddr *)&cr->listen.ss, a, sizeof(a)));
		add_str(r, "peer", cr->peer);
		add_str(r, "target", wm_addr_format(
		    (const struct sockaddr *)&cr->target.ss, a, sizeof(a)));
		json_object_array_add(routes, r);
	}
	TAILQ_FOREACH(m, &gw->migs, entry)
		json_object_array_add(migs, mig_json(m));
	json_object_object_add(o, "peers", peers);
	json_object_object_add(o, "routes", routes);
	json_object_object_add(o, "migrations", migs);
	return o;
}

/* ---- the socket -------------------------------------------------------- */

static void
ctl_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void
ctl_writecb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	/* The reply is out: one request per connection. */
	bufferevent_free(bev);
}

static void
ctl_reply(struct bufferevent *bev, char *line)
{
	if (line == NULL) {
		bufferevent_free(bev);
		return;
	}
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, ctl_writecb, ctl_eventcb, NULL);
	bufferevent_write(bev, line, strlen(line));
	free(line);
}

static void
ctl_readcb(struct bufferevent *bev, void *arg)
{
	struct gw *gw = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr eol;
	enum gw_ctl_cmd cmd;
	char req[GW_CTL_MAX_REQUEST + 1], err[256];
	size_t len;

	eol = evbuffer_search(in, "\n", 1, NULL);
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) > GW_CTL_MAX_REQUEST)
			ctl_reply(bev, gw_ctl_reply_format(NULL, WM_ERR_TOOBIG,
			    "request too long"));
		return;
	}
	len = (size_t)eol.pos + 1;
	if (len > sizeof(req) - 1) {
		ctl_reply(bev, gw_ctl_reply_format(NULL, WM_ERR_TOOBIG,
		    "request too long"));
		return;
	}
	evbuffer_remove(in, req, len);
	req[len] = '\0';
	if (gw_ctl_request_parse(req, len, &cmd, err, sizeof(err)) != 0) {
		ctl_reply(bev, gw_ctl_reply_format(NULL, WM_ERR_PROTO, err));
		return;
	}
	switch (cmd) {
	case GW_CTL_STATUS:
		ctl_reply(bev, gw_ctl_reply_format(gw_status_json(gw), 0, NULL));
		break;
	case GW_CTL_SET: {
		struct gw_ctl_set set;
		int rc;

		if (gw_ctl_set_parse(req, len, &set, err, sizeof(err)) != 0) {
			ctl_reply(bev, gw_ctl_reply_format(NULL, WM_ERR_PROTO, err));
			break;
		}
		rc = set.route ?
		    gw_set_route_rate(gw, set.name, set.bandwidth_bps, err,
		    sizeof(err)) :
		    gw_set_peer_rate(gw, set.name, set.bandwidth_bps, err,
		    sizeof(err));
		ctl_reply(bev, rc == 0 ? gw_ctl_reply_format(NULL, 0, NULL) :
		    gw_ctl_reply_format(NULL, WM_ERR_NOTFOUND, err));
		break;
	}
	case GW_CTL_RELOAD:
		gw_notify_reloading(gw);
		if (gw_reload(gw) != 0)
			ctl_reply(bev, gw_ctl_reply_format(NULL, WM_ERR_CONFIG,
			    "configuration rejected; the daemon's log has the "
			    "errors; the previous configuration stays in force"));
		else
			ctl_reply(bev, gw_ctl_reply_format(NULL, 0, NULL));
		gw_notify_ready(gw);
		break;
	}
}

static void
ctl_acceptcb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct gw *gw = arg;
	struct bufferevent *bev;
	struct timeval tv = { GW_CTL_TIMEOUT_S, 0 };

	(void)lev;
	(void)sa;
	(void)salen;
	bev = bufferevent_socket_new(gw->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, ctl_readcb, NULL, ctl_eventcb, gw);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_setwatermark(bev, EV_READ, 0, GW_CTL_MAX_REQUEST + 1);
	bufferevent_enable(bev, EV_READ);
}

/* True if a daemon answers on path. */
static bool
socket_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return false;
	alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return alive;
}

int
gw_ctl_listen(struct gw *gw)
{
	const char *path = gw->conf->site.control;
	struct sockaddr_un sun;
	char dir[PATH_MAX], *slash;
	mode_t old;

	if (gw->ctl_lev != NULL && strcmp(gw->ctl_path, path) == 0)
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_errx("control socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			log_err("cannot create %s", dir);
			return -1;
		}
	}
	if (socket_alive(&sun)) {
		log_errx("another daemon answers on %s", path);
		return -1;
	}
	unlink(path);
	old = umask(0077);
	struct evconnlistener *lev = evconnlistener_new_bind(gw->base,
	    ctl_acceptcb, gw, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	    (const struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (lev == NULL) {
		log_err("cannot listen on control socket %s", path);
		return -1;
	}
	gw_ctl_close(gw);
	gw->ctl_lev = lev;
	gw_listener_guard(gw, lev);
	snprintf(gw->ctl_path, sizeof(gw->ctl_path), "%s", path);
	log_info("control socket %s", path);
	return 0;
}

void
gw_ctl_close(struct gw *gw)
{
	if (gw->ctl_lev == NULL)
		return;
	evconnlistener_free(gw->ctl_lev);
	gw->ctl_lev = NULL;
	unlink(gw->ctl_path);
}

/*
 * gw_mig.c - migrations: the hypervisor connections of one live migration,
 * relayed as streams over one peer link.
 *
 * Outbound (source site): every connection a source hypervisor opens to a
 * route while one of its migrations is active joins that migration (QEMU's
 * multifd channels), numbered in arrival order, all on the same link.
 *
 * Inbound (destination site): the far gateway connects to the target in
 * exactly that order, one connect at a time, because QEMU 7.2 takes the
 * first connection it accepts as the main channel.
 *
 * Fail closed: when one stream of a migration is reset, every other stream
 * of it is reset too, at both sites, so neither QEMU can mistake a partial
 * migration for a finished one; the source VM keeps running.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gw.h"
#include "gw_rarp.h"
#include "wm_log.h"

static void mig_connect_next(struct gw_mig *m);

const char *
gw_mig_state_name(enum gw_mig_state s)
{
	switch (s) {
	case GW_MIG_ACTIVE:
		return "active";
	case GW_MIG_COMPLETED:
		return "completed";
	case GW_MIG_FAILED:
		return "failed";
	}
	return "unknown";
}

static bool
same_host(const struct wm_addr *a, const struct sockaddr *sa)
{
	const struct sockaddr *x = (const struct sockaddr *)&a->ss;

	if (x->sa_family != sa->sa_family)
		return false;
	if (sa->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)x)->sin_addr,
		    &((const struct sockaddr_in *)sa)->sin_addr,
		    sizeof(struct in_addr)) == 0;
	return memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr,
	    &((const struct sockaddr_in6 *)sa)->sin6_addr,
	    sizeof(struct in6_addr)) == 0;
}

static void
reset_fd(evutil_socket_t fd)
{
	struct linger lg = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	evutil_closesocket(fd);
}

static void
mig_free(struct gw_mig *m)
{
	gw_rarp_mig_cleanup(m);
	wan_shaper_free(m->cap);
	free(m);
}

/* Keeps at most GW_HISTORY finished migrations. */
static void
history_trim(struct gw *gw)
{
	struct gw_mig *m, *prev;

	for (m = TAILQ_LAST(&gw->migs, gw_mig_list);
	    m != NULL && gw->nhistory > GW_HISTORY; m = prev) {
		prev = TAILQ_PREV(m, gw_mig_list, entry);
		if (m->state == GW_MIG_ACTIVE)
			continue;
		TAILQ_REMOVE(&gw->migs, m, entry);
		gw->nhistory--;
		mig_free(m);
	}
}

static struct gw_mig *
mig_new(struct gw *gw, bool inbound, const char *route, const char *peer)
{
	struct gw_mig *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->gw = gw;
	m->id = ++gw->next_mig_id;
	m->inbound = inbound;
	snprintf(m->route, sizeof(m->route), "%s", route);
	snprintf(m->peer, sizeof(m->peer), "%s", peer);
	m->state = GW_MIG_ACTIVE;
	m->started_wall = time(NULL);
	m->started_ms = wm_now_ms();
	TAILQ_INIT(&m->streams);
	TAILQ_INSERT_HEAD(&gw->migs, m, entry);
	return m;
}

/* Sums the byte counters of a migration, live streams included. */
void
gw_mig_totals(const struct gw_mig *m, uint64_t *fwd, uint64_t *ret, uint64_t *wan)
{
	const struct gw_stream *gs;

	*fwd = m->bytes_fwd;
	*ret = m->bytes_ret;
	*wan = m->bytes_wan;
	TAILQ_FOREACH(gs, &m->streams, entry) {
		const struct wan_stream_stats *st;

		if (gs->ws == NULL)
			continue;
		st = wan_stream_get_stats(gs->ws);
		*fwd += m->inbound ? st->local_out : st->local_in;
		*ret += m->inbound ? st->local_in : st->local_out;
		*wan += st->wan_out + st->wan_in;
	}
}

static void
codec_add(struct pc_stats *sum, const struct pc_stats *s)
{
	for (int c = 0; c < PC_NCLASS; c++)
		sum->pages[c] += s->pages[c];
	sum->raw_bytes += s->raw_bytes;
	sum->enc_bytes += s->enc_bytes;
	sum->blocks += s->blocks;
	sum->blocks_skipped += s->blocks_skipped;
	if (s->opaque && !sum->opaque) {
		sum->opaque = true;
		memcpy(sum->opaque_why, s->opaque_why, sizeof(sum->opaque_why));
	}
}

void
gw_mig_codec(const struct gw_mig *m, struct pc_stats *st)
{
	const struct gw_stream *gs;
	struct pc_stats s;

	*st = m->codec;
	TAILQ_FOREACH(gs, &m->streams, entry)
		if (gs->ws != NULL && wan_stream_codec_stats(gs->ws, &s))
			codec_add(st, &s);
}

static void
mig_finish_if_empty(struct gw_mig *m)
{
	struct gw *gw = m->gw;
	uint64_t fwd, ret, wan;
	double secs;

	if (!TAILQ_EMPTY(&m->streams))
		return;
	if (m->state == GW_MIG_ACTIVE && m->inbound && m->rp.shut &&
	    m->rp.shut_value != 0) {
		m->state = GW_MIG_FAILED;
		snprintf(m->error, sizeof(m->error), "the destination QEMU "
		    "reported a failed load (return path SHUT %" PRIu32 ")",
		    m->rp.shut_value);
	} else if (m->state == GW_MIG_ACTIVE && m->inbound && m->rp.seen &&
	    !m->rp.shut && !m->rp.lost) {
		/* With a return path, a destination that loaded the state
		 * always says SHUT before it closes: this one failed (the
		 * source stopped mid-stream, or the load failed). */
		m->state = GW_MIG_FAILED;
		snprintf(m->error, sizeof(m->error), "the destination QEMU "
		    "closed without confirming the load (no SHUT on the "
		    "return path)");
	}
	if (m->state == GW_MIG_ACTIVE) {
		m->state = GW_MIG_COMPLETED;
		m->confirmed = m->inbound && m->rp.shut;
	}
	m->ended_ms = wm_now_ms();
	m->link = NULL;
	/* m->cap is freed with m, never here: this may run inside the cap's
	 * own timer callback (a stream it woke sent its last bytes). */
	gw_mig_totals(m, &fwd, &ret, &wan);
	secs = (double)(m->ended_ms - m->started_ms) / 1000.0;
	if (m->state == GW_MIG_COMPLETED) {
		gw->mig_completed++;
		log_info("migration %" PRIu64 " (%s %s, %s -> %s): completed in "
		    "%.1f s, %" PRIu64 " bytes forward, %" PRIu64 " back, %"
		    PRIu64 " on the WAN", m->id, m->inbound ? "from" : "to",
		    m->peer, m->inbound ? m->peer : m->source, m->target, secs,
		    fwd, ret, wan);
		/* Every stream closed cleanly and the destination QEMU said
		 * it loaded the state: the VM runs here now. Without that
		 * word (no return path) nothing proves it: a source that
		 * stopped mid-stream also ends cleanly, so no announcement. */
		if (m->inbound && m->confirmed)
			gw_rarp_mig_completed(m);
		else if (m->inbound)
			log_info("migration %" PRIu64 ": not announced: without "
			    "the return path (QEMU capability return-path) the "
			    "destination's success is not confirmed", m->id);
	} else {
		gw->mig_failed++;
		log_warnx("migration %" PRIu64 " (%s %s, %s -> %s): failed after "
		    "%.1f s: %s", m->id, m->inbound ? "from" : "to", m->peer,
		    m->inbound ? m->peer : m->source, m->target, secs, m->error);
	}
	gw_metrics_mig_finished(gw, m); /* cumulative counters, STATUS= */
	/* Finished migrations move behind the active ones, newest first. */
	TAILQ_REMOVE(&gw->migs, m, entry);
	{
		struct gw_mig *x;

		TAILQ_FOREACH(x, &gw->migs, entry)
			if (x->state != GW_MIG_ACTIVE)
				break;
		if (x != NULL)
			TAILQ_INSERT_BEFORE(x, m, entry);
		else
			TAILQ_INSERT_TAIL(&gw->migs, m, entry);
	}
	gw->nhistory++;
	history_trim(gw);
}

/* Fails a migration: every stream of it is reset at both ends. */
static void
mig_fail(struct gw_mig *m, const char *why)
{
	struct gw_stream *gs;

	if (m->state != GW_MIG_ACTIVE)
		return;
	m->state = GW_MIG_FAILED;
	wm_strcut(m->error, sizeof(m->error), why);
	/* Each reset runs stream_closed(), which unlinks gs; the last one
	 * finishes m, so look at the list before each turn. */
	while ((gs = TAILQ_FIRST(&m->streams)) != NULL) {
		bool last = TAILQ_NEXT(gs, entry) == NULL;

		wan_stream_reset(gs->ws, WAN_RST_ERROR, why);
		if (last)
			return;
	}
	/* Called from the close of its only stream: nothing left to reset. */
	mig_finish_if_empty(m);
}

static void
stream_closed(struct wan_stream *ws, enum wan_close_how how, const char *why,
    void *arg)
{
	struct gw_stream *gs = arg;
	struct gw_mig *m = gs->mig;
	const struct wan_stream_stats *st = wan_stream_get_stats(ws);
	struct pc_stats cs;

	if (wan_stream_codec_stats(ws, &cs))
		codec_add(&m->codec, &cs);
	m->gw->codec_mem_used -= gs->codec_mem;
	m->bytes_fwd += m->inbound ? st->local_out : st->local_in;
	m->bytes_ret += m->inbound ? st->local_in : st->local_out;
	m->bytes_wan += st->wan_out + st->wan_in;
	if (gs->connecting != NULL) {
		/* The destination may have accepted already: make the close a
		 * reset, so it never sees a clean end of an empty stream. */
		struct linger lg = { 1, 0 };
		evutil_socket_t fd = bufferevent_getfd(gs->connecting);

		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		bufferevent_free(gs->connecting);
		gs->connecting = NULL;
		m->connect_busy = false;
	}
	gs->ws = NULL;
	TAILQ_REMOVE(&m->streams, gs, entry);
	log_debug("migration %" PRIu64 " stream %u: %s (%s)", m->id,
	    (unsigned)gs->index, how == WAN_CLOSED_CLEAN ? "closed" : "reset", why);
	free(gs);
	if (how == WAN_CLOSED_RESET && m->state == GW_MIG_ACTIVE) {
		char reason[300];

		snprintf(reason, sizeof(reason), "%s", why);
		mig_fail(m, reason);
		return;
	}
	mig_finish_if_empty(m);
	if (m->inbound && m->state == GW_MIG_ACTIVE)
		mig_connect_next(m);
}

/*
 * Follows the destination's return path on an inbound main channel
 * (grammar in docs/qemu-migration-format.md, section 7) until its SHUT.
 * Anything it cannot follow ends the observation: the migration then stays
 * unconfirmed, which only means it is not announced.
 */
static bool
rp_observe(struct wan_stream *ws, const uint8_t *p, size_t len, void *arg)
{
	struct gw_mig *m = ((struct gw_stream *)arg)->mig;

	(void)ws;
	while (len > 0 && !m->rp.done) {
		if (m->rp.hlen < 4) {
			m->rp.hdr[m->rp.hlen++] = *p++;
			len--;
			if (m->rp.hlen < 4)
				continue;
			m->rp.type = (uint16_t)(m->rp.hdr[0] << 8 | m->rp.hdr[1]);
			m->rp.len = (uint16_t)(m->rp.hdr[2] << 8 | m->rp.hdr[3]);
			m->rp.left = m->rp.len;
			m->rp.blen = 0;
			/* 1..7 known; 5 (RECV_BITMAP) carries data outside
			 * its length; the source allows at most 512 bytes. */
			if (m->rp.type == 0 || m->rp.type > 7 || m->rp.type == 5 ||
			    m->rp.len > 512 || (m->rp.type == 1 && m->rp.len != 4)) {
				m->rp.done = m->rp.lost = true;
				break;
			}
		} else {
			size_t k = len < m->rp.left ? len : m->rp.left;

			if (m->rp.type == 1)
				for (size_t i = 0; i < k && m->rp.blen < 4; i++)
					m->rp.body[m->rp.blen++] = p[i];
			p += k;
			len -= k;
			m->rp.left = (uint16_t)(m->rp.left - k);
		}
		if (m->rp.hlen == 4 && m->rp.left == 0) {
			m->rp.seen = true;
			if (m->rp.type == 1) {
				m->rp.shut = true;
				m->rp.shut_value = (uint32_t)m->rp.body[0] << 24 |
				    (uint32_t)m->rp.body[1] << 16 |
				    (uint32_t)m->rp.body[2] << 8 | m->rp.body[3];
				m->rp.done = true; /* SHUT is the last message */
			}
			m->rp.hlen = 0;
		}
	}
	return !m->rp.done;
}

/*
 * The destination QEMU closed its end of the main channel. With a return
 * path it says SHUT 0 first when it loaded the state; closing without it,
 * or with a failure code, means the load failed. That end must not reach
 * the source gateway as a clean one (which would count the migration as
 * completed there): reset the stream instead.
 */
static bool
rp_local_end(struct wan_stream *ws, char *why, size_t whylen, void *arg)
{
	struct gw_mig *m = ((struct gw_stream *)arg)->mig;

	(void)ws;
	if (!m->rp.seen || m->rp.lost || (m->rp.shut && m->rp.shut_value == 0))
		return true;
	if (m->rp.shut)
		snprintf(why, whylen, "the destination QEMU reported a failed "
		    "load (return path SHUT %" PRIu32 ")", m->rp.shut_value);
	else
		snprintf(why, whylen, "the destination QEMU closed without "
		    "confirming the load (no SHUT on the return path)");
	return false;
}

static const struct wan_stream_cbs stream_cbs = { .closed = stream_closed };
static const struct wan_stream_cbs main_in_cbs = {
	.closed = stream_closed,
	.observe = rp_observe,
	.local_end = rp_local_end,
};

static struct gw_stream *
stream_new(struct gw_mig *m)
{
	struct gw_stream *gs = calloc(1, sizeof(*gs));

	if (gs == NULL)
		return NULL;
	gs->mig = m;
	gs->index = m->nstreams++;
	TAILQ_INSERT_TAIL(&m->streams, gs, entry);
	return gs;
}

/* ---- outbound ---------------------------------------------------------- */

/* What a codec with these caches may hold at most: the caches, zstd's
 * window (as large as the dedup cache), and a few MiB of blocks and
 * contexts (measured on a real stream with the 64m defaults: encoder
 * 197.8 MiB, decoder 193.6 MiB, against 200 here). */
static uint64_t
codec_need(uint64_t xbzrle_cache, uint64_t dedup_cache, bool zstd)
{
	return xbzrle_cache + (zstd ? 2 : 1) * dedup_cache + (8u << 20);
}

/*
 * Whether a stream toward peer goes through the page codec, and with what.
 * Only the main channel (the first connection) is parsed for pages; the
 * others (multifd) are compressed as they are. With codec = none, a stream
 * the caches cannot help (multifd, or both caches at 0) is relayed as it
 * is.
 */
static bool
codec_wanted(struct gw *gw, const char *peer, bool main_channel,
    struct pc_params *pp)
{
	const struct conf_peer *cp = conf_peer_find(gw->conf, peer);

	memset(pp, 0, sizeof(*pp));
	if (cp == NULL || (cp->codec == CONF_CODEC_NONE &&
	    (!main_channel || (cp->xbzrle_cache == 0 && cp->dedup_cache == 0))))
		return false; /* nothing the codec could do for it */
	switch (cp->codec) {
	case CONF_CODEC_NONE:
		pp->algo = PC_ALGO_NONE;
		break;
	case CONF_CODEC_LZ4:
		pp->algo = PC_ALGO_LZ4;
		break;
	case CONF_CODEC_ZSTD:
		pp->algo = PC_ALGO_ZSTD;
		break;
	default:
		pp->algo = pc_algo_auto(gw_peer_rate_Bps(gw, peer));
		break;
	}
	pp->level = 1;
	pp->parse = main_channel;
	pp->xbzrle_cache = main_channel ? cp->xbzrle_cache : 0;
	pp->dedup_cache = main_channel ? cp->dedup_cache : 0;
	return true;
}

void
gw_mig_accept(struct gw *gw, struct gw_route *r, evutil_socket_t fd,
    const struct sockaddr *sa, int salen)
{
	const struct conf_route *cr = conf_route_find(gw->conf, r->name);
	struct gw_peer *peer = gw_peer_find(gw, cr->peer);
	struct gw_link *gl = peer ? gw_peer_link(peer) : NULL;
	struct gw_mig *m;
	struct gw_stream *gs;
	struct bufferevent *bev;
	struct wan_open o;
	struct pc_params pp;
	char src[WM_ADDRSTRLEN];

	(void)salen;
	wm_addr_format(sa, src, sizeof(src));
	TAILQ_FOREACH(m, &gw->migs, entry) {
		if (m->state != GW_MIG_ACTIVE)
			break;
		if (!m->inbound && strcmp(m->route, r->name) == 0 &&
		    same_host(&m->source_addr, sa) && m->link != NULL &&
		    m->link->wl != NULL)
			break;
	}
	if (m != NULL && m->state != GW_MIG_ACTIVE)
		m = NULL;
	if (m == NULL) {
		if (gl == NULL) {
			log_warnx("route %s: connection from %s refused: peer %s "
			    "is not connected", r->name, src, cr->peer);
			reset_fd(fd);
			return;
		}
		m = mig_new(gw, false, r->name, cr->peer);
		if (m == NULL) {
			reset_fd(fd);
			return;
		}
		m->link = gl;
		m->cap = wan_shaper_new(gw->base, r->cap_overridden ?
		    r->cap_bps : cr->bandwidth_bps);
		if (m->cap == NULL) {
			reset_fd(fd);
			m->state = GW_MIG_FAILED;
			snprintf(m->error, sizeof(m->error), "out of memory");
			mig_finish_if_empty(m);
			return;
		}
		memcpy(&m->source_addr.ss, sa, (size_t)salen);
		m->source_addr.len = (socklen_t)salen;
		snprintf(m->source, sizeof(m->source), "%s", src);
		m->target_addr = cr->target;
		wm_addr_format((const struct sockaddr *)&cr->target.ss, m->target,
		    sizeof(m->target));
		log_info("migration %" PRIu64 ": %s -> route %s -> peer %s -> %s",
		    m->id, src, r->name, cr->peer, m->target);
	}
	gs = stream_new(m);
	if (gs == NULL) {
		reset_fd(fd);
		mig_fail(m, "out of memory");
		return;
	}
	gw_tune_tcp(fd);
	{
		/* What the kernel may hold for us from the source QEMU: small,
		 * so that QEMU's writes block when the tunnel does instead of
		 * filling an autotuned buffer of megabytes at LAN speed. */
		int rcvbuf = GW_SOURCE_RCVBUF;

		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	}
	bev = bufferevent_socket_new(gw->base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	memset(&o, 0, sizeof(o));
	o.migration = m->id;
	o.index = gs->index;
	snprintf(o.route, sizeof(o.route), "%s", r->name);
	snprintf(o.target, sizeof(o.target), "%s", m->target);
	if (codec_wanted(gw, cr->peer, gs->index == 0, &pp)) {
		uint64_t need = codec_need(pp.xbzrle_cache, pp.dedup_cache,
		    pp.algo == PC_ALGO_ZSTD);

		if (gw->codec_mem_used + need > gw->conf->site.codec_memory) {
			/* degrade, do not fail: the stream goes as it is */
			log_warnx("migration %" PRIu64 ": the codec-memory budget "
			    "is spent (%" PRIu64 " MiB in use): connection %u "
			    "goes without the codec", m->id,
			    gw->codec_mem_used >> 20, (unsigned)gs->index);
		} else {
			o.flags |= WAN_OPEN_ENCODED;
			m->encoded = true;
			if (gs->index == 0)
				m->algo = pp.algo;
			gw->codec_mem_used += need;
			gs->codec_mem = need;
		}
	}
	gs->ws = bev ? wan_stream_open(m->link->wl, bev, &o, &stream_cbs, gs) : NULL;
	if (gs->ws != NULL)
		wan_stream_set_shapers(gs->ws, peer->shaper, m->cap, m);
	if (gs->ws != NULL && (o.flags & WAN_OPEN_ENCODED)) {
		struct pc_enc *e = pc_enc_new(&pp);

		/* the OPEN went out: without the encoder the stream is void */
		if (e == NULL || wan_stream_set_encoder(gs->ws, e) != 0) {
			wan_stream_reset(gs->ws, WAN_RST_ERROR,
			    "out of memory for the encoder");
			return;
		}
	}
	if (gs->ws == NULL) {
		if (bev == NULL)
			reset_fd(fd);
		TAILQ_REMOVE(&m->streams, gs, entry);
		gw->codec_mem_used -= gs->codec_mem;
		free(gs);
		if (TAILQ_EMPTY(&m->streams)) {
			m->state = GW_MIG_FAILED;
			snprintf(m->error, sizeof(m->error), "cannot open a stream");
			mig_finish_if_empty(m);
		} else {
			mig_fail(m, "cannot open a stream");
		}
		return;
	}
	if (gs->index > 0)
		log_info("migration %" PRIu64 ": connection %u from %s",
		    m->id, (unsigned)gs->index, src);
}

/* ---- inbound ----------------------------------------------------------- */

static void
connect_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct gw_stream *gs = arg;
	struct gw_mig *m = gs->mig;
	char why[300];

	if (what & BEV_EVENT_CONNECTED) {
		gw_tune_tcp(bufferevent_getfd(bev));
		bufferevent_set_timeouts(bev, NULL, NULL);
		gs->connecting = NULL;
		gs->attached = true;
		m->connect_busy = false;
		log_debug("migration %" PRIu64 " stream %u: connected to %s",
		    m->id, (unsigned)gs->index, m->target);
		/* Attach first: a failing next connect fails the migration
		 * and frees gs. Then the next may start, since this one is
		 * established and the destination accepts them in order. m
		 * outlives its end (history keeps it). */
		wan_stream_attach(gs->ws, bev);
		if (m->state == GW_MIG_ACTIVE)
			mig_connect_next(m);
		return;
	}
	snprintf(why, sizeof(why), "connect to %s: %s", m->target,
	    (what & BEV_EVENT_TIMEOUT) ? "timed out" :
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	log_warnx("migration %" PRIu64 ": %s", m->id, why);
	wan_stream_reset(gs->ws, WAN_RST_REFUSED, why);
}

/* Connects the next stream of the migration once the previous one is up. */
static void
mig_connect_next(struct gw_mig *m)
{
	struct gw *gw = m->gw;
	struct gw_stream *gs;
	struct timeval tv = { GW_CONNECT_TIMEOUT_S, 0 };
	struct bufferevent *bev;

	if (m->connect_busy || m->state != GW_MIG_ACTIVE)
		return;
	TAILQ_FOREACH(gs, &m->streams, entry)
		if (!gs->attached)
			break;
	if (gs == NULL)
		return;
	bev = bufferevent_socket_new(gw->base, -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		wan_stream_reset(gs->ws, WAN_RST_REFUSED, "out of memory");
		return;
	}
	bufferevent_setcb(bev, NULL, NULL, connect_eventcb, gs);
	bufferevent_set_timeouts(bev, NULL, &tv);
	gs->connecting = bev;
	m->connect_busy = true;
	if (bufferevent_socket_connect(bev,
	    (const struct sockaddr *)&m->target_addr.ss,
	    (int)m->target_addr.len) != 0) {
		char why[300];

		snprintf(why, sizeof(why), "connect to %s: %s", m->target,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		log_warnx("migration %" PRIu64 ": %s", m->id, why);
		wan_stream_reset(gs->ws, WAN_RST_REFUSED, why);
	}
}

int
gw_mig_remote_open(struct gw_link *gl, struct wan_stream *ws,
    const struct wan_open *o, char *why, size_t whylen)
{
	struct gw *gw = gl->gw;
	struct gw_peer *peer = gl->peer;
	const struct conf_peer *cp = conf_peer_find(gw->conf, peer->name);
	struct gw_mig *m;
	struct gw_stream *gs;
	struct wm_addr target;
	char tgt[WM_ADDRSTRLEN];
	uint64_t need = 0;

	if (gw->stopping || peer->removed || cp == NULL) {
		snprintf(why, whylen, "gateway %s is not accepting migrations",
		    gw->conf->site.name);
		return -1;
	}
	if (wm_addr_parse(o->target, &target) != 0) {
		snprintf(why, whylen, "bad target \"%s\"", o->target);
		log_warnx("peer %s: route %s: %s", peer->name, o->route, why);
		return -1;
	}
	wm_addr_format((const struct sockaddr *)&target.ss, tgt, sizeof(tgt));
	if (!wm_cidr_match_any(cp->targets, cp->ntargets,
	    (const struct sockaddr *)&target.ss)) {
		snprintf(why, whylen, "target %s is not in the targets that "
		    "site %s allows for peer %s", o->target, gw->conf->site.name,
		    peer->name);
		log_warnx("peer %s: route %s: refused: %s", peer->name, o->route,
		    why);
		return -1;
	}
	if (o->flags & WAN_OPEN_ENCODED) {
		/* The sender's caches may not exceed ours (the decoder checks
		 * its preface against these), and all codecs together not
		 * the site's codec-memory. Only the main channel (the first
		 * connection) has caches. Settled before a migration is made
		 * for the stream: a refusal leaves nothing behind. */
		struct pc_dec_limits lim = {
			o->index == 0 ? cp->xbzrle_cache : 0,
			o->index == 0 ? cp->dedup_cache : 0,
		};
		struct pc_dec *d;
		const char *fault = getenv("WANMIGD_FAULT_DECODER");

		need = codec_need(lim.xbzrle_cache, lim.dedup_cache, true);
		if (gw->codec_mem_used + need > gw->conf->site.codec_memory) {
			snprintf(why, whylen, "site %s: the codec-memory budget "
			    "is spent (%" PRIu64 " MiB in use, this stream needs "
			    "%" PRIu64 ")", gw->conf->site.name,
			    gw->codec_mem_used >> 20, need >> 20);
			log_warnx("peer %s: route %s: refused: %s", peer->name,
			    o->route, why);
			return -1;
		}
		d = pc_dec_new(&lim);
		/* Test-only fault knob: the decoder's cache reads go bad
		 * from that unit on (tests/integration/test_migrate.py). */
		if (d != NULL && fault != NULL && o->index == 0) {
			pc_dec_set_fault(d, strtoull(fault, NULL, 10));
			log_warnx("fault injection: the decoder's caches of "
			    "migration %" PRIu64 " go bad after unit %s",
			    o->migration, fault);
		}
		if (d == NULL || wan_stream_set_decoder(ws, d) != 0) {
			snprintf(why, whylen, "out of memory for the decoder");
			return -1;
		}
		gw->codec_mem_used += need;
	}
	TAILQ_FOREACH(m, &gw->migs, entry) {
		if (m->state != GW_MIG_ACTIVE)
			break;
		if (m->inbound && m->link == gl && m->remote_id == o->migration)
			break;
	}
	if (m != NULL && m->state != GW_MIG_ACTIVE)
		m = NULL;
	if (m == NULL) {
		if (o->index != 0) {
			snprintf(why, whylen, "connection %u of an unknown migration",
			    (unsigned)o->index);
			goto refuse;
		}
		m = mig_new(gw, true, o->route, peer->name);
		if (m == NULL) {
			snprintf(why, whylen, "out of memory");
			goto refuse;
		}
		m->remote_id = o->migration;
		m->link = gl;
		m->target_addr = target;
		snprintf(m->target, sizeof(m->target), "%s", tgt);
		snprintf(m->source, sizeof(m->source), "%s", peer->name);
		log_info("migration %" PRIu64 ": from peer %s (route %s, their "
		    "id %" PRIu64 ") -> %s", m->id, peer->name, o->route,
		    o->migration, o->target);
	} else if (o->index != m->nstreams || strcmp(tgt, m->target) != 0) {
		snprintf(why, whylen, "connection %u out of order or to another "
		    "target", (unsigned)o->index);
		goto refuse;
	}
	gs = stream_new(m);
	if (gs == NULL) {
		/* m may be new and now without streams: it fails at once */
		snprintf(why, whylen, "out of memory");
		if (TAILQ_EMPTY(&m->streams)) {
			m->state = GW_MIG_FAILED;
			snprintf(m->error, sizeof(m->error), "out of memory");
			mig_finish_if_empty(m);
		}
		goto refuse;
	}
	gs->ws = ws;
	gs->codec_mem = need;
	if (o->flags & WAN_OPEN_ENCODED)
		m->encoded = true;
	/* The first connection is QEMU's main channel: the return path. */
	wan_stream_set_cbs(ws, gs->index == 0 ? &main_in_cbs : &stream_cbs, gs);
	wan_stream_set_shapers(ws, peer->shaper, NULL, m);
	mig_connect_next(m);
	return 0;
refuse:
	gw->codec_mem_used -= need;
	return -1;
}

/* ---- whole-daemon helpers ---------------------------------------------- */

size_t
gw_mig_active_count(struct gw *gw)
{
	struct gw_mig *m;
	size_t n = 0;

	TAILQ_FOREACH(m, &gw->migs, entry)
		if (m->state == GW_MIG_ACTIVE)
			n++;
	return n;
}

/* The active outbound migration stuck past its bound, if any. */
static struct gw_mig *
mig_idle_find(struct gw *gw, uint64_t now, char *why, size_t whylen)
{
	struct gw_mig *m;

	TAILQ_FOREACH(m, &gw->migs, entry) {
		const struct conf_route *cr;
		uint64_t fwd, ret, wan;

		if (m->state != GW_MIG_ACTIVE)
			break; /* active ones come first */
		if (m->inbound)
			continue;
		gw_mig_totals(m, &fwd, &ret, &wan);
		/* An outage is the resume window's business, not ours. */
		if (fwd + ret != m->idle_prev || m->idle_since_ms == 0 ||
		    m->link == NULL || m->link->wl == NULL ||
		    !wan_link_ready(m->link->wl)) {
			m->idle_prev = fwd + ret;
			m->idle_since_ms = now;
			continue;
		}
		cr = conf_route_find(gw->conf, m->route);
		if (cr != NULL && now - m->idle_since_ms > cr->idle_timeout_ms) {
			snprintf(why, whylen, "no data moved for %.0f s "
			    "(idle-timeout of route %s)",
			    (double)(now - m->idle_since_ms) / 1000.0, m->route);
			return m;
		}
	}
	return NULL;
}

void
gw_mig_idle_tick(struct gw *gw)
{
	uint64_t now = wm_now_ms();
	struct gw_mig *m;
	char why[256];

	/* mig_fail reorders the list: look again after each. */
	while ((m = mig_idle_find(gw, now, why, sizeof(why))) != NULL) {
		log_warnx("migration %" PRIu64 ": %s", m->id, why);
		mig_fail(m, why);
	}
}

void
gw_mig_abort_all(struct gw *gw, const char *why)
{
	struct gw_mig *m;

	/* mig_fail reorders the list; start over after each. */
	for (;;) {
		TAILQ_FOREACH(m, &gw->migs, entry)
			if (m->state == GW_MIG_ACTIVE)
				break;
		if (m == NULL)
			return;
		mig_fail(m, why);
	}
}

void
gw_migs_free(struct gw *gw)
{
	struct gw_mig *m;

	gw_mig_abort_all(gw, "gateway stopped");
	while ((m = TAILQ_FIRST(&gw->migs)) != NULL) {
		TAILQ_REMOVE(&gw->migs, m, entry);
		mig_free(m);
	}
}


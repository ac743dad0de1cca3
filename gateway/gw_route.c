/*
 * gw_route.c - route listeners: where hypervisors send their migrations.
 *
 * A route listens on a local address, admits sources from its `allow`
 * networks only, and hands each connection to gw_mig.c. On reload a route
 * whose listen address is unchanged keeps its socket, so a hypervisor
 * never sees the listener blink.
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "wm_log.h"

static void
route_acceptcb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct gw_route *r = arg;
	struct gw *gw = r->gw;
	const struct conf_route *cr = conf_route_find(gw->conf, r->name);
	char a[WM_ADDRSTRLEN];

	(void)lev;
	wm_addr_format(sa, a, sizeof(a));
	if (cr == NULL || gw->stopping) {
		evutil_closesocket(fd);
		return;
	}
	if (!wm_cidr_match_any(cr->allow, cr->nallow, sa)) {
		log_warnx("route %s: connection from %s refused: not in allow",
		    r->name, a);
		evutil_closesocket(fd);
		return;
	}
	gw_mig_accept(gw, r, fd, sa, salen);
}

static struct gw_route *
route_find(struct gw *gw, const char *name)
{
	struct gw_route *r;

	TAILQ_FOREACH(r, &gw->routes, entry)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

static void
route_free(struct gw_route *r)
{
	if (r->lev != NULL)
		evconnlistener_free(r->lev);
	free(r);
}

int
gw_routes_apply(struct gw *gw)
{
	struct gw_route *r, *next;
	char a[WM_ADDRSTRLEN];
	int rc = 0;

	TAILQ_FOREACH(r, &gw->routes, entry)
		r->seen = false;
	for (size_t i = 0; i < gw->conf->nroutes; i++) {
		const struct conf_route *cr = &gw->conf->routes[i];

		r = route_find(gw, cr->name);
		if (r != NULL && r->listen.len == cr->listen.len &&
		    memcmp(&r->listen.ss, &cr->listen.ss, cr->listen.len) == 0) {
			r->seen = true;
			r->cap_overridden = false; /* the file wins at reload */
			continue;
		}
		if (r != NULL) {
			TAILQ_REMOVE(&gw->routes, r, entry);
			route_free(r);
		}
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return -1;
		r->gw = gw;
		r->seen = true;
		snprintf(r->name, sizeof(r->name), "%s", cr->name);
		r->listen = cr->listen;
		wm_addr_format((const struct sockaddr *)&cr->listen.ss, a, sizeof(a));
		r->lev = evconnlistener_new_bind(gw->base, route_acceptcb, r,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
		    64, (const struct sockaddr *)&cr->listen.ss, (int)cr->listen.len);
		if (r->lev == NULL) {
			log_err("route %s: cannot listen on %s", cr->name, a);
			free(r);
			rc = -1;
			continue;
		}
		gw_listener_guard(gw, r->lev);
		log_info("route %s: listening on %s for peer %s", cr->name, a,
		    cr->peer);
		TAILQ_INSERT_TAIL(&gw->routes, r, entry);
	}
	for (r = TAILQ_FIRST(&gw->routes); r != NULL; r = next) {
		next = TAILQ_NEXT(r, entry);
		if (!r->seen) {
			log_info("route %s: removed", r->name);
			TAILQ_REMOVE(&gw->routes, r, entry);
			route_free(r);
		}
	}
	return rc;
}

int
gw_set_route_rate(struct gw *gw, const char *route, uint64_t bps, char *err,
    size_t errlen)
{
	struct gw_route *r = route_find(gw, route);
	struct gw_mig *m;
	char buf[32];

	if (r == NULL) {
		snprintf(err, errlen, "no route named \"%s\"", route);
		return -1;
	}
	r->cap_overridden = true;
	r->cap_bps = bps;
	TAILQ_FOREACH(m, &gw->migs, entry) {
		if (m->state != GW_MIG_ACTIVE)
			break;
		if (!m->inbound && m->cap != NULL && strcmp(m->route, route) == 0)
			wan_shaper_set_rate(m->cap, bps);
	}
	log_info("route %s: per-migration bandwidth set to %s at run time",
	    route, wm_rate_format(bps, buf, sizeof(buf)));
	return 0;
}

void
gw_routes_free(struct gw *gw)
{
	struct gw_route *r;

	while ((r = TAILQ_FIRST(&gw->routes)) != NULL) {
		TAILQ_REMOVE(&gw->routes, r, entry);
		route_free(r);
	}
}

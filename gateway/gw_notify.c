/*
 * gw_notify.c - wanmigd under systemd (Type=notify): READY=1 once every
 * listener is up, RELOADING=1 / READY=1 around a reload, STOPPING=1 on
 * SIGTERM, a one-line STATUS= kept current, and WATCHDOG=1 at half the
 * period the manager asks for (WatchdogSec=) from the event loop, so a
 * stuck loop is noticed. Does nothing when $NOTIFY_SOCKET is unset.
 * The protocol itself is in gw_sdnotify.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"
#include "gw_sdnotify.h"
#include "wm_log.h"

#define GW_NOTIFY_STATUS_MS 5000

struct gw_notify {
	struct event *timer;
	uint64_t watchdog_us;
	char status[256];       /* last STATUS= sent */
	bool failed;            /* a send failed: said once in the log */
};

static void
notify_send(struct gw *gw, const char *msg)
{
	int rc = gw_sdnotify_send(msg);

	if (rc < 0 && gw->notify != NULL && !gw->notify->failed) {
		gw->notify->failed = true;
		log_warn("cannot notify systemd at %s", getenv("NOTIFY_SOCKET"));
	}
}

static void
status_text(struct gw *gw, char *buf, size_t len)
{
	struct gw_peer *p;
	size_t peers = 0, up = 0;

	TAILQ_FOREACH(p, &gw->peers, entry) {
		peers++;
		if (gw_peer_connected(p))
			up++;
	}
	snprintf(buf, len, "site %s: %zu/%zu peers up; migrations: %zu active, "
	    "%" PRIu64 " completed, %" PRIu64 " failed%s", gw->conf->site.name,
	    up, peers, gw_mig_active_count(gw), gw->mig_completed,
	    gw->mig_failed, gw->stopping ? "; stopping" : "");
}

void
gw_notify_update(struct gw *gw)
{
	struct gw_notify *n = gw->notify;
	char st[256], msg[300];

	if (n == NULL)
		return;
	status_text(gw, st, sizeof(st));
	if (strcmp(st, n->status) == 0)
		return;
	snprintf(n->status, sizeof(n->status), "%s", st);
	snprintf(msg, sizeof(msg), "STATUS=%s", st);
	notify_send(gw, msg);
}

static void
notify_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct gw *gw = arg;

	(void)fd;
	(void)what;
	if (gw->notify->watchdog_us > 0)
		notify_send(gw, "WATCHDOG=1");
	gw_notify_update(gw);
}

void
gw_notify_ready(struct gw *gw)
{
	struct gw_notify *n = gw->notify;
	char st[256], msg[400];

	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	if (n == NULL) {
		uint64_t ms = GW_NOTIFY_STATUS_MS;
		struct timeval tv;

		n = gw->notify = calloc(1, sizeof(*n));
		if (n == NULL)
			return;
		n->watchdog_us = gw_sdnotify_watchdog_usec((long)getpid());
		if (n->watchdog_us > 0 && n->watchdog_us / 2000 < ms)
			ms = n->watchdog_us / 2000 > 0 ? n->watchdog_us / 2000 : 1;
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		n->timer = event_new(gw->base, -1, EV_PERSIST, notify_timercb, gw);
		if (n->timer != NULL)
			event_add(n->timer, &tv);
	}
	status_text(gw, st, sizeof(st));
	snprintf(n->status, sizeof(n->status), "%s", st);
	snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%ld\nSTATUS=%s",
	    (long)getpid(), st);
	notify_send(gw, msg);
}

void
gw_notify_reloading(struct gw *gw)
{
	struct timespec ts;
	char msg[128];

	if (gw->notify == NULL)
		return;
	/* systemd >= 253 wants the time the reload began (Type=notify-reload);
	 * older ones ignore the field. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64
	    "\nSTATUS=reloading %s", (uint64_t)ts.tv_sec * 1000000u +
	    (uint64_t)ts.tv_nsec / 1000u, "the configuration");
	notify_send(gw, msg);
}

void
gw_notify_stopping(struct gw *gw)
{
	char st[256], msg[300];

	if (gw->notify == NULL)
		return;
	status_text(gw, st, sizeof(st));
	snprintf(gw->notify->status, sizeof(gw->notify->status), "%s", st);
	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", st);
	notify_send(gw, msg);
}

void
gw_notify_free(struct gw *gw)
{
	if (gw->notify == NULL)
		return;
	if (gw->notify->timer != NULL)
		event_free(gw->notify->timer);
	free(gw->notify);
	gw->notify = NULL;
}

/*
 * wan_shape.c - token buckets with FIFO waiters (contract in wan_shape.h).
 *
 * Tokens are bytes. The bucket refills continuously from a monotonic clock
 * (no periodic tick while idle); after an idle spell it holds at most 20 ms
 * of the rate (at least two quanta), so a new sender never starts with a
 * burst the WAN queue would have to absorb. While senders wait, tokens
 * that accrue because the loop woke late (a busy CPU) are kept, up to
 * 200 ms, so the long-run rate is the configured one. A timer fires when
 * the first waiter can be served.
 */
#include "wan_shape.h"

#include <stdlib.h>

#include "wm_util.h"

TAILQ_HEAD(wan_waiter_list, wan_shaper_waiter);

struct wan_shaper {
	struct event *timer;
	uint64_t rate_Bps;           /* bytes per second, 0 = unlimited */
	int64_t tokens;              /* may dip below 0 by one frame */
	int64_t depth;
	uint64_t last_us;
	struct wan_waiter_list waiters;
	const struct wan_shaper_waiter *serving; /* whose turn it is */
	int64_t turn_left;
};

static void
refill(struct wan_shaper *sh)
{
	uint64_t now = wm_now_us();
	uint64_t dt = now - sh->last_us;
	int64_t cap = TAILQ_EMPTY(&sh->waiters) ? sh->depth : 10 * sh->depth;

	if (sh->rate_Bps == 0) {
		sh->last_us = now;
		return;
	}
	if (dt > 10000000)
		dt = 10000000;
	/* Whole bytes only; the remainder of the interval stays on the
	 * clock, so nothing is lost to rounding however often this runs. */
	uint64_t add = dt * sh->rate_Bps / 1000000;
	if (add == 0)
		return;
	sh->last_us += add * 1000000 / sh->rate_Bps;
	if (now - sh->last_us > 10000000)
		sh->last_us = now;
	sh->tokens += (int64_t)add;
	if (sh->tokens > cap)
		sh->tokens = cap;
}

static void
arm(struct wan_shaper *sh)
{
	struct timeval tv = { 0, 1000 };
	int64_t need;

	if (TAILQ_EMPTY(&sh->waiters) || sh->rate_Bps == 0) {
		tv.tv_usec = 0;
		if (!TAILQ_EMPTY(&sh->waiters))
			evtimer_add(sh->timer, &tv);
		return;
	}
	need = (int64_t)WAN_SHAPE_QUANTUM - sh->tokens;
	if (need > 0) {
		uint64_t us = (uint64_t)need * 1000000u / sh->rate_Bps;

		tv.tv_sec = (time_t)(us / 1000000u);
		tv.tv_usec = (suseconds_t)(us % 1000000u);
		if (tv.tv_sec == 0 && tv.tv_usec < 200)
			tv.tv_usec = 200;
	} else {
		tv.tv_usec = 0;
	}
	evtimer_add(sh->timer, &tv);
}

static void
timercb(evutil_socket_t fd, short what, void *arg)
{
	struct wan_shaper *sh = arg;
	struct wan_shaper_waiter *w;
	unsigned turns = 0;

	(void)fd;
	(void)what;
	refill(sh);
	/* Turns in FIFO order, each a whole quantum (split within a group),
	 * while the bucket holds one: a turn never gets the crumbs another
	 * left, or shares would drift apart. A waiter that still has data
	 * queues itself again at the tail. The bound guards against one
	 * re-queueing without sending. */
	while ((sh->rate_Bps == 0 || sh->tokens >= (int64_t)WAN_SHAPE_QUANTUM) &&
	    turns++ < 4096 &&
	    (w = TAILQ_FIRST(&sh->waiters)) != NULL) {
		TAILQ_REMOVE(&sh->waiters, w, entry);
		w->sh = NULL;
		sh->serving = w;
		sh->turn_left = WAN_SHAPE_QUANTUM /
		    (w->group_n > 1 ? (int64_t)w->group_n : 1);
		w->cb(w->arg);
		sh->serving = NULL;
	}
	arm(sh);
}

struct wan_shaper *
wan_shaper_new(struct event_base *base, uint64_t rate_bps)
{
	struct wan_shaper *sh = calloc(1, sizeof(*sh));

	if (sh == NULL)
		return NULL;
	sh->timer = evtimer_new(base, timercb, sh);
	if (sh->timer == NULL) {
		free(sh);
		return NULL;
	}
	TAILQ_INIT(&sh->waiters);
	sh->last_us = wm_now_us();
	wan_shaper_set_rate(sh, rate_bps);
	sh->tokens = sh->depth;
	return sh;
}

void
wan_shaper_free(struct wan_shaper *sh)
{
	struct wan_shaper_waiter *w;

	if (sh == NULL)
		return;
	while ((w = TAILQ_FIRST(&sh->waiters)) != NULL) {
		TAILQ_REMOVE(&sh->waiters, w, entry);
		w->sh = NULL;
	}
	event_free(sh->timer);
	free(sh);
}

void
wan_shaper_set_rate(struct wan_shaper *sh, uint64_t rate_bps)
{
	refill(sh);
	if (rate_bps > UINT64_C(1000000000000))
		rate_bps = UINT64_C(1000000000000); /* 1 Tbit/s: no overflow */
	/* A tiny rate stays a rate: 0 bytes/s would mean unlimited. */
	sh->rate_Bps = rate_bps == 0 ? 0 : (rate_bps < 8 ? 1 : rate_bps / 8);
	sh->depth = (int64_t)(sh->rate_Bps / 50);
	if (sh->depth < 2 * (int64_t)WAN_SHAPE_QUANTUM)
		sh->depth = 2 * (int64_t)WAN_SHAPE_QUANTUM;
	if (sh->tokens > sh->depth)
		sh->tokens = sh->depth;
	/* Waiters of a bucket that became unlimited go at once. */
	if (!TAILQ_EMPTY(&sh->waiters)) {
		evtimer_del(sh->timer);
		arm(sh);
	}
}

uint64_t
wan_shaper_rate(const struct wan_shaper *sh)
{
	return sh->rate_Bps * 8;
}


size_t
wan_shaper_avail(struct wan_shaper *sh, size_t want,
    const struct wan_shaper_waiter *w)
{
	int64_t limit;

	if (sh == NULL || sh->rate_Bps == 0)
		return want;
	refill(sh);
	if (sh->serving != NULL) {
		if (sh->serving != w)
			return 0;
		limit = sh->turn_left; /* the bucket held a quantum at the start */
	} else if (!TAILQ_EMPTY(&sh->waiters)) {
		return 0; /* others queued first */
	} else {
		/* nobody waits: a member of a group of n takes no more than
		 * 1/n of a turn before it queues, or a migration of n
		 * streams would come n times as often */
		limit = sh->tokens;
		if (w != NULL && w->group_n > 1 &&
		    limit > (int64_t)WAN_SHAPE_QUANTUM / w->group_n)
			limit = (int64_t)WAN_SHAPE_QUANTUM / w->group_n;
	}
	if (limit <= 0)
		return 0;
	return (int64_t)want < limit ? want : (size_t)limit;
}

void
wan_shaper_charge(struct wan_shaper *sh, size_t n)
{
	if (sh == NULL)
		return;
	if (sh->rate_Bps == 0)
		return;
	sh->tokens -= (int64_t)n;
	if (sh->serving != NULL)
		sh->turn_left -= (int64_t)n;
}

void
wan_shaper_wait(struct wan_shaper *sh, struct wan_shaper_waiter *w)
{
	if (w->sh == sh)
		return;
	wan_shaper_cancel(w);
	w->sh = sh;
	TAILQ_INSERT_TAIL(&sh->waiters, w, entry);
	if (!evtimer_pending(sh->timer, NULL))
		arm(sh);
}

void
wan_shaper_cancel(struct wan_shaper_waiter *w)
{
	if (w->sh == NULL)
		return;
	TAILQ_REMOVE(&w->sh->waiters, w, entry);
	w->sh = NULL;
}

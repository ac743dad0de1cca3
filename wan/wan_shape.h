/*
 * wan_shape.h - token buckets for the tunnel: one per peer (the link rate an
 * operator pays for), optionally one per migration (a route's cap).
 *
 * A stream that wants to send asks every bucket it is subject to how much
 * it may send now (wan_shaper_avail), sends the least of the answers and
 * charges each bucket (wan_shaper_charge). When a bucket says 0 the stream
 * queues its waiter on it and is called back when tokens are there again.
 * Once anyone waits, the bucket serves strictly in turn: only the waiter
 * being called back may take tokens, at most WAN_SHAPE_QUANTUM a turn, and
 * a newcomer queues behind. A waiter of a group of n that send (the
 * streams of one migration: QEMU's main channel and its multifd channels)
 * takes 1/n of a quantum a turn, so migrations sharing a bucket get equal
 * shares however many connections each opened. (Its frames are 1/n as
 * large then: a turn of a whole quantum one round in n measured 53/47
 * against 51/49 with three streams to one, the three finding the queue
 * empty more often.)
 *
 * Rates change at run time (wan_shaper_set_rate) and take effect at the
 * next refill, within milliseconds.
 */
#ifndef WM_WAN_WAN_SHAPE_H
#define WM_WAN_WAN_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>

#define WAN_SHAPE_QUANTUM (16u << 10)

struct wan_shaper;

struct wan_shaper_waiter {
	TAILQ_ENTRY(wan_shaper_waiter) entry;
	struct wan_shaper *sh;       /* where it is queued, NULL if not */
	void (*cb)(void *arg);       /* tokens are back: try again */
	void *arg;
	unsigned group_n;            /* the owner's group (a migration) has so
	                                many members that send, itself
	                                included; 0 or 1: all alone */
};

/* A bucket of rate_bps bits per second (0 = unlimited). NULL on ENOMEM. */
struct wan_shaper *wan_shaper_new(struct event_base *base, uint64_t rate_bps);
/* Frees a bucket; its waiters are dropped (not called). NULL accepted. */
void wan_shaper_free(struct wan_shaper *sh);
void wan_shaper_set_rate(struct wan_shaper *sh, uint64_t rate_bps);
uint64_t wan_shaper_rate(const struct wan_shaper *sh);

/*
 * How many bytes the owner of waiter w may send now, at most want. 0 means
 * wait: queue w with wan_shaper_wait. Unlimited buckets (and NULL) always
 * grant want.
 */
size_t wan_shaper_avail(struct wan_shaper *sh, size_t want,
    const struct wan_shaper_waiter *w);
/* Takes n bytes from the bucket (may run it negative by one frame). */
void wan_shaper_charge(struct wan_shaper *sh, size_t n);
/* Queues w (no-op if already queued on sh); cb runs from the loop. */
void wan_shaper_wait(struct wan_shaper *sh, struct wan_shaper_waiter *w);
/* Removes w from whatever bucket it waits on. */
void wan_shaper_cancel(struct wan_shaper_waiter *w);

#endif

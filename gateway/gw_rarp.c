/*
 * gw_rarp.c - sends a completed inbound migration's announcement on the
 * site's L2 segment (see gw_rarp.h for what and why).
 *
 * All frames are built once, when the migration completes, from a copy of
 * the [announce] section (a reload during the rounds changes nothing).
 * They go through one AF_PACKET SOCK_RAW socket bound to no protocol (it
 * receives nothing), non-blocking: a full device queue costs a frame, never
 * the event loop. Rounds are timed from round 0's planned time, not from
 * the previous callback, so timer latency does not accumulate.
 *
 * The state hangs off its migration (m->announce) and dies with it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"
#include "gw_rarp.h"
#include "wm_log.h"

enum gw_rarp_state {
	GW_RARP_SKIPPED,	/* nothing configured for this migration */
	GW_RARP_SENDING,	/* rounds still due */
	GW_RARP_DONE,		/* every round went (see errors) */
	GW_RARP_FAILED,		/* could not send at all (see error) */
};

struct gw_rarp_frame {
	size_t len;
	uint8_t b[GW_RARP_FRAME_MAX];
};

struct gw_rarp {
	struct gw_mig *mig;		/* owner */
	enum gw_rarp_state state;
	char section[CONF_NAME_MAX];	/* the [announce] section used */
	char ifname[CONF_IFNAME_MAX];
	uint16_t vlan;
	struct gw_rarp_sched sched;
	struct conf_mac *macs;		/* copies of the section's lists */
	size_t nmacs;
	struct conf_ip *ips;
	size_t nips;
	struct gw_rarp_frame *frames;	/* one round, in sending order */
	size_t nframes;
	int fd;
	struct sockaddr_ll to;
	struct event *timer;
	uint32_t rounds_sent;
	uint64_t frames_sent, send_errors;
	uint64_t start_ms;		/* monotonic, round 0 */
	uint64_t first_wall_ms, last_wall_ms;
	char error[160];
};

static const char *
rarp_state_name(enum gw_rarp_state s)
{
	switch (s) {
	case GW_RARP_SKIPPED:
		return "skipped";
	case GW_RARP_SENDING:
		return "sending";
	case GW_RARP_DONE:
		return "done";
	case GW_RARP_FAILED:
		return "failed";
	}
	return "unknown";
}

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *
mac_format(const uint8_t *b, char *buf, size_t len)
{
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2],
	    b[3], b[4], b[5]);
	return buf;
}

/* Closes the socket and drops the timer; the record stays for status. */
static void
rarp_stop(struct gw_rarp *r)
{
	if (r->timer != NULL) {
		event_free(r->timer);
		r->timer = NULL;
	}
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
	free(r->frames);
	r->frames = NULL;
}

/* Gives up on r: what failed, with errno's text. */
static void
rarp_fail(struct gw_rarp *r, const char *what)
{
	snprintf(r->error, sizeof(r->error), "%s: %s", what, strerror(errno));
	r->state = GW_RARP_FAILED;
	log_warnx("migration %" PRIu64 ": announcement on %s not sent: %s",
	    r->mig->id, r->ifname, r->error);
	rarp_stop(r);
}

/* Sends one round: every frame once. */
static void
rarp_round(struct gw_rarp *r)
{
	uint64_t errs = 0;
	int first_errno = 0;

	for (size_t i = 0; i < r->nframes; i++) {
		ssize_t n = sendto(r->fd, r->frames[i].b, r->frames[i].len,
		    MSG_DONTWAIT, (const struct sockaddr *)&r->to,
		    sizeof(r->to));

		if (n == (ssize_t)r->frames[i].len) {
			r->frames_sent++;
		} else {
			if (errs++ == 0)
				first_errno = n < 0 ? errno : EMSGSIZE;
		}
	}
	r->last_wall_ms = wall_ms();
	if (r->rounds_sent++ == 0)
		r->first_wall_ms = r->last_wall_ms;
	if (errs > 0) {
		r->send_errors += errs;
		snprintf(r->error, sizeof(r->error), "round %u: %" PRIu64
		    " of %zu frames not sent: %s", r->rounds_sent, errs,
		    r->nframes, strerror(first_errno));
		log_warnx("migration %" PRIu64 ": announcement on %s: %s",
		    r->mig->id, r->ifname, r->error);
	}
}

static void
rarp_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_rarp *r = arg;
	uint64_t due, now;
	struct timeval tv;

	(void)fd;
	(void)what;
	rarp_round(r);
	if (r->rounds_sent >= r->sched.rounds) {
		r->state = GW_RARP_DONE;
		log_info("migration %" PRIu64 ": announced %zu MAC%s and %zu "
		    "address%s on %s%s: %u rounds, %" PRIu64 " frames, %" PRIu64
		    " errors", r->mig->id, r->nmacs, r->nmacs == 1 ? "" : "s",
		    r->nips, r->nips == 1 ? "" : "es", r->ifname,
		    r->vlan != 0 ? " (tagged)" : "", r->rounds_sent,
		    r->frames_sent, r->send_errors);
		rarp_stop(r);
		return;
	}
	/* Aim at the planned time of the next round, not "now + delay". */
	due = r->start_ms + gw_rarp_offset_ms(&r->sched, r->rounds_sent);
	now = wm_now_ms();
	due = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(due / 1000);
	tv.tv_usec = (suseconds_t)(due % 1000) * 1000;
	evtimer_add(r->timer, &tv);
}

/* Builds one round's frames: per MAC its RARP, then its addresses. */
static int
rarp_build(struct gw_rarp *r)
{
	r->frames = calloc(r->nmacs + r->nips, sizeof(*r->frames));
	if (r->frames == NULL)
		return -1;
	for (size_t i = 0; i < r->nmacs; i++) {
		const uint8_t *mac = r->macs[i].b;
		struct gw_rarp_frame *f = &r->frames[r->nframes++];

		f->len = gw_rarp_build_rarp(f->b, mac, r->vlan);
		for (size_t j = 0; j < r->nips; j++) {
			const struct conf_ip *ip = &r->ips[j];

			if (ip->mac != i)
				continue;
			f = &r->frames[r->nframes++];
			if (ip->family == AF_INET)
				f->len = gw_rarp_build_garp(f->b, mac, ip->addr,
				    r->vlan);
			else
				f->len = gw_rarp_build_na(f->b, mac, ip->addr,
				    r->vlan);
		}
	}
	return 0;
}

/* Copies what to announce and where from the configuration in force. */
static int
rarp_configure(struct gw_rarp *r, const struct conf *c,
    const struct conf_announce *a)
{
	const struct conf_site *s = &c->site;

	snprintf(r->section, sizeof(r->section), "%s", a->name);
	snprintf(r->ifname, sizeof(r->ifname), "%s", a->interface[0] != '\0' ?
	    a->interface : s->announce_interface);
	r->vlan = (uint16_t)(a->has_vlan ? a->vlan : s->announce_vlan);
	r->sched.rounds = s->announce_rounds;
	r->sched.initial_ms = s->announce_initial_ms;
	r->sched.step_ms = s->announce_step_ms;
	r->sched.max_ms = s->announce_max_ms;
	r->macs = calloc(a->nmacs, sizeof(*r->macs));
	r->ips = calloc(a->nips > 0 ? a->nips : 1, sizeof(*r->ips));
	if (r->macs == NULL || r->ips == NULL)
		return -1;
	memcpy(r->macs, a->macs, a->nmacs * sizeof(*r->macs));
	if (a->nips > 0)
		memcpy(r->ips, a->ips, a->nips * sizeof(*r->ips));
	r->nmacs = a->nmacs;
	r->nips = a->nips;
	return 0;
}

void
gw_rarp_mig_completed(struct gw_mig *m)
{
	struct gw *gw = m->gw;
	const struct conf_announce *a;
	struct gw_rarp *r;
	unsigned ifindex;

	if (!m->inbound || m->state != GW_MIG_COMPLETED || m->announce != NULL)
		return;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_warnx("migration %" PRIu64 ": no memory to announce it",
		    m->id);
		return;
	}
	r->mig = m;
	r->fd = -1;
	m->announce = r;
	a = conf_announce_find(gw->conf, m->route, m->peer);
	if (a == NULL) {
		r->state = GW_RARP_SKIPPED;
		snprintf(r->error, sizeof(r->error), "no [announce %s] section "
		    "for peer %s", m->route, m->peer);
		log_debug("migration %" PRIu64 ": nothing to announce (%s)",
		    m->id, r->error);
		return;
	}
	if (rarp_configure(r, gw->conf, a) != 0 || rarp_build(r) != 0) {
		errno = ENOMEM;
		rarp_fail(r, "frames");
		return;
	}
	r->state = GW_RARP_SENDING;
	if ((ifindex = if_nametoindex(r->ifname)) == 0) {
		rarp_fail(r, "no such interface");
		return;
	}
	r->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->fd < 0) {
		rarp_fail(r, "AF_PACKET socket");
		return;
	}
	r->to.sll_family = AF_PACKET;
	r->to.sll_ifindex = (int)ifindex;
	r->to.sll_halen = ETH_ALEN;
	memset(r->to.sll_addr, 0xff, ETH_ALEN);
	r->timer = evtimer_new(gw->base, rarp_timercb, r);
	if (r->timer == NULL) {
		errno = ENOMEM;
		rarp_fail(r, "timer");
		return;
	}
	log_info("migration %" PRIu64 ": completed here; announcing %zu MAC%s "
	    "and %zu address%s on %s vlan %u ([announce %s]: %u rounds)",
	    m->id, r->nmacs, r->nmacs == 1 ? "" : "s", r->nips,
	    r->nips == 1 ? "" : "es", r->ifname, (unsigned)r->vlan, r->section,
	    r->sched.rounds);
	/* Round 0 goes now, as QEMU's does. */
	r->start_ms = wm_now_ms();
	rarp_timercb(-1, 0, r);
}

void
gw_rarp_mig_cleanup(struct gw_mig *m)
{
	struct gw_rarp *r = m->announce;

	if (r == NULL)
		return;
	if (r->state == GW_RARP_SENDING)
		log_warnx("migration %" PRIu64 ": announcement cut after %u of "
		    "%u rounds", m->id, r->rounds_sent, r->sched.rounds);
	rarp_stop(r);
	free(r->macs);
	free(r->ips);
	free(r);
	m->announce = NULL;
}

/* "2024-05-01T12:00:00.123Z" */
static struct json_object *
json_wall_ms(uint64_t ms)
{
	char buf[40], frac[8];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf) - 6, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(frac, sizeof(frac), ".%03uZ", (unsigned)(ms % 1000));
	strncat(buf, frac, sizeof(buf) - strlen(buf) - 1);
	return json_object_new_string(buf);
}

struct json_object *
gw_rarp_mig_json(const struct gw_mig *m)
{
	const struct gw_rarp *r = m->announce;
	struct json_object *o, *macs, *ips;
	char buf[INET6_ADDRSTRLEN];

	if (r == NULL)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "state",
	    json_object_new_string(rarp_state_name(r->state)));
	if (r->state == GW_RARP_SKIPPED) {
		json_object_object_add(o, "reason",
		    json_object_new_string(r->error));
		return o;
	}
	json_object_object_add(o, "section", json_object_new_string(r->section));
	json_object_object_add(o, "interface", json_object_new_string(r->ifname));
	json_object_object_add(o, "vlan", json_object_new_int(r->vlan));
	macs = json_object_new_array();
	for (size_t i = 0; i < r->nmacs; i++)
		json_object_array_add(macs, json_object_new_string(
		    mac_format(r->macs[i].b, buf, sizeof(buf))));
	json_object_object_add(o, "macs", macs);
	ips = json_object_new_array();
	for (size_t i = 0; i < r->nips; i++)
		if (inet_ntop(r->ips[i].family, r->ips[i].addr, buf,
		    sizeof(buf)) != NULL)
			json_object_array_add(ips, json_object_new_string(buf));
	json_object_object_add(o, "addresses", ips);
	json_object_object_add(o, "rounds", json_object_new_int64(
	    r->sched.rounds));
	json_object_object_add(o, "rounds_sent", json_object_new_int64(
	    r->rounds_sent));
	json_object_object_add(o, "frames_per_round", json_object_new_int64(
	    (int64_t)(r->nmacs + r->nips)));
	json_object_object_add(o, "frames_sent", json_object_new_uint64(
	    r->frames_sent));
	json_object_object_add(o, "send_errors", json_object_new_uint64(
	    r->send_errors));
	if (r->rounds_sent > 0) {
		json_object_object_add(o, "first", json_wall_ms(r->first_wall_ms));
		json_object_object_add(o, "last", json_wall_ms(r->last_wall_ms));
	}
	if (r->error[0] != '\0')
		json_object_object_add(o, "error",
		    json_object_new_string(r->error));
	return o;
}

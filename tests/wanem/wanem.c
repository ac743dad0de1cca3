/*
 * wanem.c - a small userspace WAN link emulator for the wanmig tests.
 *
 * Bridges two interfaces at L2 through AF_PACKET sockets and applies, per
 * direction, a drop-tail queue in front of a rate-limited link, a one-way
 * propagation delay, random loss and an on/off switch.  The kernel here has
 * no netem qdisc, hence this.
 *
 * Model, per direction, for a frame of L bytes (the whole Ethernet frame as
 * seen by AF_PACKET, without FCS) arriving at time t:
 *
 *	link down                        -> dropped (drop_down)
 *	random() < loss                  -> dropped (drop_loss)
 *	queued bytes + L > queue limit   -> dropped (drop_queue)
 *	start   = max(t, link_free)
 *	txdone  = start + (L + overhead) * 8 / rate      (link_free = txdone)
 *	deliver = max(txdone + delay, previous deliver)   (no reordering)
 *
 * "Queued" counts the frames whose serialization has not finished.  A frame
 * whose delivery time comes while the link is down is dropped as well, so
 * cutting the link also loses what is in flight.
 *
 * Receive side: a TPACKET_V2 mmap ring per interface, outgoing frames
 * ignored (PACKET_IGNORE_OUTGOING, with a pkttype check as a fallback).
 * Frames are copied into a per-direction byte ring (bounded memory) and sent
 * with sendmmsg() on a second packet socket bound to the other interface,
 * bypassing the qdisc.  One thread serves both directions: idle, it sleeps
 * in ppoll() until a frame arrives or the next deadline; while frames flow
 * it wakes every --slack-us (50 us) and handles what is due in batches, so
 * a frame leaves at most that late while the rate over time stays exact.
 * --spin-us busy-polls instead when the next deadline is that close.
 *
 * Runtime control: SIGUSR1 = link down, SIGUSR2 = link up, SIGHUP = print
 * stats, SIGINT/SIGTERM = print stats and exit; and with --control PATH a
 * UNIX datagram socket taking "down [ab|ba]", "up [ab|ba]", "stats",
 * "set delay-ms|rate|loss|queue VALUE [ab|ba]" and "quit".  The same binary
 * is the client: wanem --ctl PATH COMMAND...
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef PACKET_QDISC_BYPASS
#define PACKET_QDISC_BYPASS 20
#endif

#define NSEC_PER_SEC	1000000000LL
#define TX_BATCH	64
#define RX_BUDGET	256
#define REC_WRAP	UINT32_MAX
#define CTL_MAX		512
#define NDIR		2

/* Per-direction parameters; the negative/unset markers are resolved late. */
struct params {
	int64_t delay_ns;
	uint64_t rate_bps;	/* 0: unlimited */
	double loss;
	uint64_t qlimit_bytes;	/* 0: none (then qlimit_pkts applies) */
	uint64_t qlimit_pkts;	/* 0: none */
};

struct counters {
	uint64_t rx_frames, rx_bytes;
	uint64_t tx_frames, tx_bytes;
	uint64_t drop_queue, drop_loss, drop_down;
	uint64_t drop_ring, drop_mem, drop_err;
};

/* A record in the byte ring; the frame follows it. */
struct rec {
	uint32_t len;		/* frame length, or REC_WRAP */
	uint32_t size;		/* whole record, 8-aligned */
	int64_t txdone;
	int64_t deliver;
};

struct ring {
	uint8_t *buf;
	size_t cap;
	size_t head, tail, used;
	size_t count;		/* records */
	size_t qhead;		/* first record not yet serialized */
	uint64_t qbytes, qpkts;
};

struct dir {
	const char *name;	/* "ab" or "ba" */
	const char *in_if, *out_if;
	struct params p;
	bool down;
	int rx_fd, tx_fd;
	uint8_t *rx_map;
	size_t rx_map_len;
	unsigned rx_frames, rx_frame_size, rx_idx;
	size_t max_frame;
	struct ring q;
	int64_t link_free;
	int64_t last_deliver;
	uint64_t ser_rem;
	uint64_t rng[4];
	struct counters c;
	bool warned_big;
};

struct opts {
	const char *if_a, *if_b;
	const char *control;
	uint64_t seed;
	unsigned overhead;
	int64_t spin_ns;
	int64_t slack_ns;
	uint64_t mem_bytes;
	unsigned ring_frames;
	double down_at, down_for;
	bool verbose;
};

static struct dir dirs[NDIR];
static struct opts opt;
static int ctl_fd = -1;
static int sig_fd = -1;
static bool quit;

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wanem: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

/* xoshiro256** seeded by splitmix64. */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
rng_next(uint64_t *s)
{
	uint64_t r = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static double
rng_uniform(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* ---- argument parsing ------------------------------------------------ */

static int
parse_double(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v == v && v - v == 0))
		return -1;
	*out = v;
	return 0;
}

/* Splits "250mbit" into a number and a lower-case unit. */
static int
split_unit(const char *s, double *num, char *unit, size_t unitlen)
{
	char *end;
	size_t i;

	errno = 0;
	*num = strtod(s, &end);
	if (errno != 0 || end == s || !(*num - *num == 0) || *num < 0)
		return -1;
	for (i = 0; end[i] != '\0'; i++) {
		if (i + 1 >= unitlen)
			return -1;
		unit[i] = (char)((end[i] >= 'A' && end[i] <= 'Z') ?
		    end[i] - 'A' + 'a' : end[i]);
	}
	unit[i] = '\0';
	return 0;
}

/*
 * Rate in bit/s: "1000000", "250mbit", "1gbit", "500k" (k/m/g = 10^3..9
 * bit/s), "12mbps" (bytes per second, as tc spells it), "0" = unlimited.
 */
static int
parse_rate(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		double mult;
	} units[] = {
		{ "", 1 }, { "bit", 1 }, { "k", 1e3 }, { "kbit", 1e3 },
		{ "m", 1e6 }, { "mbit", 1e6 }, { "g", 1e9 }, { "gbit", 1e9 },
		{ "bps", 8 }, { "kbps", 8e3 }, { "mbps", 8e6 }, { "gbps", 8e9 },
	};
	char unit[8];
	double v;
	size_t i;

	if (split_unit(s, &v, unit, sizeof(unit)) != 0)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].unit) == 0) {
			v *= units[i].mult;
			if (v > 1e12 || (v > 0 && v < 1000))
				return -1;
			*out = (uint64_t)(v + 0.5);
			return 0;
		}
	}
	return -1;
}

/* Queue: "4m", "64k", "1500000", "512b" (bytes, k/m/g = 2^10..30), "100p". */
static int
parse_queue(const char *s, uint64_t *bytes, uint64_t *pkts)
{
	char unit[8];
	double v, mult;

	if (split_unit(s, &v, unit, sizeof(unit)) != 0)
		return -1;
	if (strcmp(unit, "p") == 0 || strcmp(unit, "pkt") == 0) {
		if (v < 1 || v > 1e9 || v != (double)(uint64_t)v)
			return -1;
		*pkts = (uint64_t)v;
		*bytes = 0;
		return 0;
	}
	if (strcmp(unit, "") == 0 || strcmp(unit, "b") == 0)
		mult = 1;
	else if (strcmp(unit, "k") == 0 || strcmp(unit, "kb") == 0)
		mult = 1024;
	else if (strcmp(unit, "m") == 0 || strcmp(unit, "mb") == 0)
		mult = 1024 * 1024;
	else if (strcmp(unit, "g") == 0 || strcmp(unit, "gb") == 0)
		mult = 1024.0 * 1024 * 1024;
	else
		return -1;
	v *= mult;
	if (v < 1 || v > 64.0 * 1024 * 1024 * 1024)
		return -1;
	*bytes = (uint64_t)v;
	*pkts = 0;
	return 0;
}

static int
parse_delay(const char *s, int64_t *ns)
{
	double v;

	if (parse_double(s, &v) != 0 || v < 0 || v > 60000)
		return -1;
	*ns = (int64_t)(v * 1e6 + 0.5);
	return 0;
}

static int
parse_loss(const char *s, double *out)
{
	double v;

	if (parse_double(s, &v) != 0 || v < 0 || v > 1)
		return -1;
	*out = v;
	return 0;
}

/* Applies "key value" to the parameters of the direction mask (1=ab 2=ba). */
static int
apply_param(const char *key, const char *val, unsigned mask, bool *qset)
{
	struct params p;
	int i;

	for (i = 0; i < NDIR; i++) {
		if (!(mask & (1u << i)))
			continue;
		p = dirs[i].p;
		if (strcmp(key, "delay-ms") == 0) {
			if (parse_delay(val, &p.delay_ns) != 0)
				return -1;
		} else if (strcmp(key, "rate") == 0) {
			if (parse_rate(val, &p.rate_bps) != 0)
				return -1;
		} else if (strcmp(key, "loss") == 0) {
			if (parse_loss(val, &p.loss) != 0)
				return -1;
		} else if (strcmp(key, "queue") == 0) {
			if (parse_queue(val, &p.qlimit_bytes,
			    &p.qlimit_pkts) != 0)
				return -1;
			if (qset != NULL)
				qset[i] = true;
		} else {
			return -1;
		}
		dirs[i].p = p;
	}
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: wanem --a IF_A --b IF_B [options]\n"
"       wanem --ctl PATH COMMAND...\n"
"  --a IF, --b IF        the two interfaces to bridge (ab = a->b)\n"
"  --delay-ms MS         one-way delay, fractional ok (default 0)\n"
"  --rate RATE           link rate: 250mbit, 1gbit, 10mbps, 0 = unlimited\n"
"                        (default 0); counts the whole Ethernet frame\n"
"  --loss P              random loss probability 0..1 (default 0)\n"
"  --queue Q             drop-tail limit: bytes (64k, 4m) or packets (100p);\n"
"                        default one BDP (rate * 2 * delay), at least 64k\n"
"  --delay-ms-ab, --delay-ms-ba, --rate-ab, --rate-ba, --loss-ab,\n"
"  --loss-ba, --queue-ab, --queue-ba    per-direction overrides\n"
"  --overhead BYTES      added to each frame for serialization (default 0;\n"
"                        24 = preamble + FCS + inter-frame gap)\n"
"  --seed N              loss PRNG seed (default 1)\n"
"  --control PATH        UNIX datagram control socket\n"
"  --down-at S --down-for S   cut the link S seconds after start, for S\n"
"  --slack-us US         while frames flow, wake every US microseconds and\n"
"                        send what is due (default 50): frames leave up to\n"
"                        US late, the rate over time is exact\n"
"  --spin-us US          busy-poll when the next deadline is closer (0)\n"
"  --mem BYTES           in-flight buffer per direction (default derived)\n"
"  --ring-frames N       AF_PACKET rx ring frames per interface (8192)\n"
"  -v                    log to stderr what happens\n"
"signals: USR1 link down, USR2 link up, HUP stats, INT/TERM stats + exit\n"
"control: down [ab|ba], up [ab|ba], stats, quit,\n"
"         set delay-ms|rate|loss|queue VALUE [ab|ba]\n");
}

static unsigned
dir_mask(const char *s)
{
	if (s == NULL || strcmp(s, "both") == 0)
		return 3;
	if (strcmp(s, "ab") == 0)
		return 1;
	if (strcmp(s, "ba") == 0)
		return 2;
	return 0;
}

/* ---- control client -------------------------------------------------- */

static int
ctl_client(const char *path, int argc, char **argv)
{
	struct sockaddr_un sun, me;
	char cmd[CTL_MAX], reply[65536];
	struct pollfd pfd;
	size_t off = 0;
	ssize_t n;
	int fd, i;

	if (argc < 1)
		die("--ctl needs a command");
	cmd[0] = '\0';
	for (i = 0; i < argc; i++) {
		int w = snprintf(cmd + off, sizeof(cmd) - off, "%s%s",
		    i > 0 ? " " : "", argv[i]);

		if (w < 0 || (size_t)w >= sizeof(cmd) - off)
			die("command too long");
		off += (size_t)w;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("control path too long");
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	/*
	 * Bind to a path beside the daemon's so it can reply: an abstract
	 * (autobound) address would not reach across network namespaces.
	 */
	memset(&me, 0, sizeof(me));
	me.sun_family = AF_UNIX;
	if ((size_t)snprintf(me.sun_path, sizeof(me.sun_path), "%s.%ld",
	    path, (long)getpid()) >= sizeof(me.sun_path))
		die("control path too long");
	(void)unlink(me.sun_path);
	if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0)
		die("bind %s: %s", me.sun_path, strerror(errno));
	if (sendto(fd, cmd, off, 0, (struct sockaddr *)&sun,
	    sizeof(sun)) < 0) {
		(void)unlink(me.sun_path);
		die("%s: %s", path, strerror(errno));
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 3000) != 1) {
		(void)unlink(me.sun_path);
		die("%s: no reply", path);
	}
	n = recv(fd, reply, sizeof(reply) - 1, 0);
	(void)unlink(me.sun_path);
	if (n < 0)
		die("recv: %s", strerror(errno));
	reply[n] = '\0';
	fputs(reply, stdout);
	close(fd);
	return strncmp(reply, "error", 5) == 0 ? 1 : 0;
}

/* ---- byte ring of frames in flight ------------------------------------ */

static size_t
align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/*
 * Returns the record at *off, skipping wrap padding; the caller knows that
 * there is one.  If consume (*off is the head), padding leaves used.
 */
static struct rec *
ring_at(struct ring *r, size_t *off, bool consume)
{
	struct rec *rc;

	for (;;) {
		if (r->cap - *off < sizeof(struct rec)) {
			if (consume)
				r->used -= r->cap - *off;
			*off = 0;
			continue;
		}
		rc = (struct rec *)(r->buf + *off);
		if (rc->len == REC_WRAP) {
			if (consume)
				r->used -= rc->size;
			*off = 0;
			continue;
		}
		return rc;
	}
}

/* Reserves room for a frame of len bytes; NULL if the ring is full. */
static struct rec *
ring_alloc(struct ring *r, size_t len)
{
	size_t need = align8(sizeof(struct rec) + len);
	size_t waste = 0;
	struct rec *rc;

	if (r->cap - r->tail < need)
		waste = r->cap - r->tail;
	if (r->used + waste + need > r->cap)
		return NULL;
	if (waste > 0) {
		if (waste >= sizeof(struct rec)) {
			rc = (struct rec *)(r->buf + r->tail);
			rc->len = REC_WRAP;
			rc->size = (uint32_t)waste;
		}
		r->used += waste;
		r->tail = 0;
	}
	rc = (struct rec *)(r->buf + r->tail);
	rc->size = (uint32_t)need;
	rc->len = (uint32_t)len;
	return rc;
}

static void
ring_commit(struct ring *r, struct rec *rc)
{
	r->used += rc->size;
	r->tail += rc->size;
	if (r->tail == r->cap)
		r->tail = 0;
	r->qbytes += rc->len;
	r->qpkts++;
	r->count++;
}

/* Frames whose serialization ended by now leave the queue. */
static void
ring_serialized(struct ring *r, int64_t now)
{
	struct rec *rc;

	while (r->qpkts > 0) {
		rc = ring_at(r, &r->qhead, false);
		if (rc == NULL || rc->txdone > now)
			break;
		r->qbytes -= rc->len;
		r->qpkts--;
		r->qhead += rc->size;
		if (r->qhead == r->cap)
			r->qhead = 0;
	}
}

/* ---- sockets ----------------------------------------------------------- */

static int
if_index(const char *name, unsigned *mtu)
{
	struct ifreq ifr;
	unsigned idx;
	int fd;

	idx = if_nametoindex(name);
	if (idx == 0)
		die("interface %s: %s", name, strerror(errno));
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, SIOCGIFMTU, &ifr) != 0)
		die("%s: SIOCGIFMTU: %s", name, strerror(errno));
	*mtu = (unsigned)ifr.ifr_mtu;
	close(fd);
	return (int)idx;
}

static void
open_rx(struct dir *d)
{
	struct tpacket_req req;
	struct packet_mreq mr;
	struct sockaddr_ll sll;
	unsigned mtu, need, fsz, bsz;
	int idx, v, fd;

	idx = if_index(d->in_if, &mtu);
	/* Room for the tpacket header, a VLAN tag and an MTU-sized frame. */
	need = TPACKET_ALIGN(TPACKET2_HDRLEN) + 16 + 4 + ETH_HLEN + mtu;
	for (fsz = 2048; fsz < need; fsz *= 2)
		;
	bsz = fsz > 65536 ? fsz : 65536;
	d->max_frame = ETH_HLEN + 4 + mtu;
	d->rx_frame_size = fsz;
	d->rx_frames = opt.ring_frames;
	if (d->rx_frames < bsz / fsz)
		d->rx_frames = bsz / fsz;
	d->rx_frames -= d->rx_frames % (bsz / fsz);

	/* Protocol 0 until bound, so nothing arrives from other interfaces. */
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("AF_PACKET socket: %s (need CAP_NET_RAW)",
		    strerror(errno));
	v = TPACKET_V2;
	if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) != 0)
		die("PACKET_VERSION: %s", strerror(errno));
	v = 1;
	if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &v,
	    sizeof(v)) != 0 && opt.verbose)
		fprintf(stderr, "wanem: no PACKET_IGNORE_OUTGOING, "
		    "filtering by pkttype\n");
	memset(&req, 0, sizeof(req));
	req.tp_block_size = bsz;
	req.tp_frame_size = fsz;
	req.tp_frame_nr = d->rx_frames;
	req.tp_block_nr = d->rx_frames / (bsz / fsz);
	if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0)
		die("PACKET_RX_RING: %s", strerror(errno));
	d->rx_map_len = (size_t)req.tp_block_size * req.tp_block_nr;
	d->rx_map = mmap(NULL, d->rx_map_len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_LOCKED, fd, 0);
	if (d->rx_map == MAP_FAILED)
		d->rx_map = mmap(NULL, d->rx_map_len, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	if (d->rx_map == MAP_FAILED)
		die("mmap rx ring: %s", strerror(errno));
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = idx;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0)
		die("bind %s: %s", d->in_if, strerror(errno));
	memset(&mr, 0, sizeof(mr));
	mr.mr_ifindex = idx;
	mr.mr_type = PACKET_MR_PROMISC;
	if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr,
	    sizeof(mr)) != 0)
		die("%s: promiscuous mode: %s", d->in_if, strerror(errno));
	d->rx_fd = fd;
}

static void
open_tx(struct dir *d)
{
	struct sockaddr_ll sll;
	unsigned mtu;
	int idx, v, fd;

	idx = if_index(d->out_if, &mtu);
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("AF_PACKET socket: %s", strerror(errno));
	v = 1;
	(void)setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &v, sizeof(v));
	v = 8 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) != 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = 0;	/* send only */
	sll.sll_ifindex = idx;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0)
		die("bind %s: %s", d->out_if, strerror(errno));
	d->tx_fd = fd;
}

static void
open_control(const char *path)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("control path too long: %s", path);
	strcpy(sun.sun_path, path);
	ctl_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl_fd < 0)
		die("socket: %s", strerror(errno));
	(void)unlink(path);
	if (bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		die("bind %s: %s", path, strerror(errno));
}

/* ---- checksums ---------------------------------------------------------- */

static uint32_t
csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	while (len > 1) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len > 0)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t
csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/*
 * A frame from a CHECKSUM_PARTIAL skb carries only the pseudo-header sum
 * in its TCP/UDP checksum; the receiving stack would drop it.  Finish it
 * for TCP and UDP over IPv4 and IPv6 (no extension headers).
 */
static void
fix_csum(uint8_t *f, size_t len)
{
	size_t off = ETH_HLEN, l4off, l4len;
	uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
	uint32_t sum;
	uint8_t proto;
	size_t coff;
	uint16_t c;

	while ((type == ETH_P_8021Q || type == ETH_P_8021AD) &&
	    len >= off + 4) {
		type = (uint16_t)(f[off + 2] << 8 | f[off + 3]);
		off += 4;
	}
	if (type == ETH_P_IP) {
		size_t ihl, tot;

		if (len < off + 20)
			return;
		ihl = (size_t)(f[off] & 0x0f) * 4;
		tot = (size_t)(f[off + 2] << 8 | f[off + 3]);
		if (ihl < 20 || tot < ihl || len < off + tot)
			return;
		if ((f[off + 6] & 0x3f) != 0 || f[off + 7] != 0)
			return;		/* fragment */
		proto = f[off + 9];
		l4off = off + ihl;
		l4len = tot - ihl;
		sum = csum_add(0, f + off + 12, 8);
	} else if (type == ETH_P_IPV6) {
		if (len < off + 40)
			return;
		proto = f[off + 6];
		l4off = off + 40;
		l4len = (size_t)(f[off + 4] << 8 | f[off + 5]);
		if (len < l4off + l4len)
			return;
		sum = csum_add(0, f + off + 8, 32);
	} else {
		return;
	}
	if (proto == IPPROTO_TCP)
		coff = 16;
	else if (proto == IPPROTO_UDP)
		coff = 6;
	else
		return;
	if (l4len < coff + 2)
		return;
	sum += proto;
	sum += (uint32_t)l4len;
	f[l4off + coff] = 0;
	f[l4off + coff + 1] = 0;
	sum = csum_add(sum, f + l4off, l4len);
	c = csum_fold(sum);
	if (c == 0 && proto == IPPROTO_UDP)
		c = 0xffff;
	f[l4off + coff] = (uint8_t)(c >> 8);
	f[l4off + coff + 1] = (uint8_t)c;
}

/* ---- data path ---------------------------------------------------------- */

static void
enqueue(struct dir *d, const uint8_t *data, size_t len,
    const struct tpacket2_hdr *h, int64_t now)
{
	struct ring *r = &d->q;
	struct rec *rc;
	uint8_t *f;
	size_t flen = len;
	bool vlan = (h->tp_status & TP_STATUS_VLAN_VALID) != 0 &&
	    len >= 2 * ETH_ALEN;
	uint64_t bits, ser;

	if (vlan)
		flen += 4;
	d->c.rx_frames++;
	d->c.rx_bytes += flen;
	if (d->down) {
		d->c.drop_down++;
		return;
	}
	if (d->p.loss > 0 && rng_uniform(d->rng) < d->p.loss) {
		d->c.drop_loss++;
		return;
	}
	ring_serialized(r, now);
	if ((d->p.qlimit_bytes > 0 && r->qbytes + flen > d->p.qlimit_bytes) ||
	    (d->p.qlimit_pkts > 0 && r->qpkts + 1 > d->p.qlimit_pkts)) {
		d->c.drop_queue++;
		return;
	}
	rc = ring_alloc(r, flen);
	if (rc == NULL) {
		d->c.drop_mem++;
		return;
	}
	f = (uint8_t *)(rc + 1);
	if (vlan) {
		uint16_t tpid = ETH_P_8021Q;

		if (h->tp_status & TP_STATUS_VLAN_TPID_VALID)
			tpid = h->tp_vlan_tpid;
		memcpy(f, data, 2 * ETH_ALEN);
		f[12] = (uint8_t)(tpid >> 8);
		f[13] = (uint8_t)tpid;
		f[14] = (uint8_t)(h->tp_vlan_tci >> 8);
		f[15] = (uint8_t)h->tp_vlan_tci;
		memcpy(f + 16, data + 2 * ETH_ALEN, len - 2 * ETH_ALEN);
	} else {
		memcpy(f, data, len);
	}
	if (h->tp_status & TP_STATUS_CSUMNOTREADY)
		fix_csum(f, flen);

	if (d->link_free < now)
		d->link_free = now;
	if (d->p.rate_bps > 0) {
		bits = (uint64_t)(flen + opt.overhead) * 8;
		ser = bits * (uint64_t)NSEC_PER_SEC + d->ser_rem;
		d->link_free += (int64_t)(ser / d->p.rate_bps);
		d->ser_rem = ser % d->p.rate_bps;
	}
	rc->txdone = d->link_free;
	rc->deliver = rc->txdone + d->p.delay_ns;
	if (rc->deliver < d->last_deliver)
		rc->deliver = d->last_deliver;
	d->last_deliver = rc->deliver;
	ring_commit(r, rc);
}

/* Drains up to RX_BUDGET frames from the rx ring; returns how many. */
static unsigned
rx_drain(struct dir *d)
{
	struct tpacket2_hdr *h;
	struct sockaddr_ll *sll;
	unsigned n = 0;
	int64_t now = now_ns();

	while (n < RX_BUDGET) {
		h = (struct tpacket2_hdr *)(d->rx_map +
		    (size_t)d->rx_idx * d->rx_frame_size);
		if ((__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) &
		    TP_STATUS_USER) == 0)
			break;
		sll = (struct sockaddr_ll *)((uint8_t *)h +
		    TPACKET_ALIGN(sizeof(*h)));
		if (sll->sll_pkttype == PACKET_OUTGOING) {
			/* our own transmission, if IGNORE_OUTGOING is absent */
		} else if (h->tp_snaplen < h->tp_len ||
		    h->tp_len > d->max_frame) {
			d->c.rx_frames++;
			d->c.drop_err++;
			if (!d->warned_big) {
				d->warned_big = true;
				fprintf(stderr, "wanem: %s: %u-byte frame "
				    "above the MTU; turn off GRO/GSO/TSO "
				    "(ethtool -K)\n", d->in_if, h->tp_len);
			}
		} else {
			enqueue(d, (uint8_t *)h + h->tp_mac, h->tp_snaplen,
			    h, now);
		}
		__atomic_store_n(&h->tp_status, TP_STATUS_KERNEL,
		    __ATOMIC_RELEASE);
		if (++d->rx_idx == d->rx_frames)
			d->rx_idx = 0;
		if ((++n & 15) == 0)
			now = now_ns();
	}
	return n;
}

static bool
rx_ready(const struct dir *d)
{
	const struct tpacket2_hdr *h = (const struct tpacket2_hdr *)(d->rx_map +
	    (size_t)d->rx_idx * d->rx_frame_size);

	return (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) &
	    TP_STATUS_USER) != 0;
}

/* Releases the record at the ring head. */
static void
ring_pop(struct ring *r, struct rec *rc)
{
	r->used -= rc->size;
	r->count--;
	r->head += rc->size;
	if (r->head == r->cap)
		r->head = 0;
}

/*
 * Sends the frames due by now.  Returns the next delivery time, 0 if the
 * ring is empty, or -1 if the socket is full (retry soon).
 */
static int64_t
tx_due(struct dir *d, int64_t now)
{
	struct mmsghdr msgs[TX_BATCH];
	struct iovec iov[TX_BATCH];
	struct rec *recs[TX_BATCH];
	struct ring *r = &d->q;
	struct rec *rc;
	size_t off;
	int i, n, sent;

	/*
	 * deliver >= txdone, so every frame due now has left the queue
	 * (qhead) already: popping never touches the queue counts.
	 */
	ring_serialized(r, now);
	for (;;) {
		/* Frames due while the link is down are lost. */
		while (d->down && r->count > 0) {
			rc = ring_at(r, &r->head, true);
			if (rc->deliver > now)
				break;
			d->c.drop_down++;
			ring_pop(r, rc);
		}
		n = 0;
		if (r->count > 0) {
			(void)ring_at(r, &r->head, true);
			off = r->head;
		}
		while (n < TX_BATCH && (size_t)n < r->count) {
			rc = ring_at(r, &off, false);
			if (rc->deliver > now)
				break;
			recs[n] = rc;
			iov[n].iov_base = rc + 1;
			iov[n].iov_len = rc->len;
			memset(&msgs[n], 0, sizeof(msgs[n]));
			msgs[n].msg_hdr.msg_iov = &iov[n];
			msgs[n].msg_hdr.msg_iovlen = 1;
			off += rc->size;
			if (off == r->cap)
				off = 0;
			n++;
		}
		if (n == 0)
			break;
		sent = sendmmsg(d->tx_fd, msgs, (unsigned)n, MSG_DONTWAIT);
		if (sent < 0) {
			if (errno == EAGAIN || errno == ENOBUFS ||
			    errno == EINTR)
				return -1;
			d->c.drop_err++;
			sent = 1;	/* skip the offending frame */
		} else {
			for (i = 0; i < sent; i++) {
				d->c.tx_frames++;
				d->c.tx_bytes += recs[i]->len;
			}
		}
		for (i = 0; i < sent; i++)
			ring_pop(r, ring_at(r, &r->head, true));
		if (sent < n)
			return -1;
	}
	if (r->count == 0)
		return 0;
	return ring_at(r, &r->head, true)->deliver;
}

/* ---- stats and control -------------------------------------------------- */

static void
read_ring_drops(struct dir *d)
{
	struct tpacket_stats st;
	socklen_t sl = sizeof(st);

	if (getsockopt(d->rx_fd, SOL_PACKET, PACKET_STATISTICS, &st,
	    &sl) == 0) {
		d->c.drop_ring += st.tp_drops;
		d->c.rx_frames += st.tp_drops;
	}
}

static size_t
format_stats(char *buf, size_t len)
{
	size_t off = 0;
	int i, w;

	for (i = 0; i < NDIR; i++) {
		struct dir *d = &dirs[i];

		read_ring_drops(d);
		w = snprintf(buf + off, len - off,
		    "dir=%s in=%s out=%s link=%s rx_frames=%" PRIu64
		    " rx_bytes=%" PRIu64 " tx_frames=%" PRIu64
		    " tx_bytes=%" PRIu64 " drop_queue=%" PRIu64
		    " drop_loss=%" PRIu64 " drop_down=%" PRIu64
		    " drop_ring=%" PRIu64 " drop_mem=%" PRIu64
		    " drop_err=%" PRIu64 " backlog_frames=%" PRIu64
		    " backlog_bytes=%" PRIu64 " delay_ms=%.3f rate=%" PRIu64
		    " loss=%g queue_bytes=%" PRIu64 " queue_pkts=%" PRIu64
		    "\n", d->name, d->in_if, d->out_if,
		    d->down ? "down" : "up", d->c.rx_frames, d->c.rx_bytes,
		    d->c.tx_frames, d->c.tx_bytes, d->c.drop_queue,
		    d->c.drop_loss, d->c.drop_down, d->c.drop_ring,
		    d->c.drop_mem, d->c.drop_err, d->q.qpkts, d->q.qbytes,
		    (double)d->p.delay_ns / 1e6, d->p.rate_bps, d->p.loss,
		    d->p.qlimit_bytes, d->p.qlimit_pkts);
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
	return off;
}

static void
print_stats(void)
{
	char buf[2048];

	format_stats(buf, sizeof(buf));
	fputs(buf, stdout);
	fflush(stdout);
}

static void
set_link(unsigned mask, bool down)
{
	int i;

	for (i = 0; i < NDIR; i++)
		if (mask & (1u << i))
			dirs[i].down = down;
	if (opt.verbose)
		fprintf(stderr, "wanem: link %s%s\n", down ? "down" : "up",
		    mask == 3 ? "" : (mask == 1 ? " ab" : " ba"));
}

static void
handle_control(void)
{
	char buf[CTL_MAX + 1], reply[2048];
	struct sockaddr_un from;
	socklen_t fl;
	char *argv[6], *save = NULL, *tok;
	int argc = 0;
	size_t rl;
	ssize_t n;
	unsigned mask;

	for (;;) {
		fl = sizeof(from);
		n = recvfrom(ctl_fd, buf, CTL_MAX, MSG_DONTWAIT,
		    (struct sockaddr *)&from, &fl);
		if (n < 0)
			return;
		buf[n] = '\0';
		argc = 0;
		for (tok = strtok_r(buf, " \t\r\n", &save); tok != NULL &&
		    argc < 6; tok = strtok_r(NULL, " \t\r\n", &save))
			argv[argc++] = tok;
		snprintf(reply, sizeof(reply), "ok\n");
		if (argc == 0) {
			snprintf(reply, sizeof(reply), "error: empty\n");
		} else if ((strcmp(argv[0], "down") == 0 ||
		    strcmp(argv[0], "up") == 0) && argc <= 2) {
			mask = dir_mask(argc == 2 ? argv[1] : NULL);
			if (mask == 0)
				snprintf(reply, sizeof(reply),
				    "error: direction is ab, ba or both\n");
			else
				set_link(mask, argv[0][0] == 'd');
		} else if (strcmp(argv[0], "stats") == 0 && argc == 1) {
			format_stats(reply, sizeof(reply));
		} else if (strcmp(argv[0], "quit") == 0 && argc == 1) {
			quit = true;
		} else if (strcmp(argv[0], "set") == 0 &&
		    (argc == 3 || argc == 4)) {
			mask = dir_mask(argc == 4 ? argv[3] : NULL);
			if (mask == 0 || apply_param(argv[1], argv[2], mask,
			    NULL) != 0)
				snprintf(reply, sizeof(reply),
				    "error: bad set %s %s\n", argv[1], argv[2]);
		} else {
			snprintf(reply, sizeof(reply),
			    "error: unknown command\n");
		}
		rl = strlen(reply);
		if (fl > sizeof(sa_family_t))
			(void)sendto(ctl_fd, reply, rl, MSG_DONTWAIT,
			    (struct sockaddr *)&from, fl);
	}
}

static void
handle_signals(void)
{
	struct signalfd_siginfo si;

	while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
			quit = true;
			break;
		case SIGHUP:
			print_stats();
			break;
		case SIGUSR1:
			set_link(3, true);
			break;
		case SIGUSR2:
			set_link(3, false);
			break;
		}
	}
}

/* ---- main ----------------------------------------------------------------- */

static void
resolve_defaults(struct dir *d, bool qset)
{
	double bdp, inflight;

	if (!qset) {
		bdp = (double)d->p.rate_bps / 8 * 2 * (double)d->p.delay_ns /
		    1e9;
		d->p.qlimit_bytes = bdp > 65536 ? (uint64_t)bdp : 65536;
		if (d->p.rate_bps == 0)
			d->p.qlimit_bytes = 0;	/* nothing ever queues */
		d->p.qlimit_pkts = 0;
	}
	if (opt.mem_bytes > 0) {
		d->q.cap = opt.mem_bytes;
	} else {
		/*
		 * Queue plus the bytes on the wire, twice over for record
		 * headers of small frames; unlimited rate: assume 4 Gbit/s.
		 */
		inflight = (double)(d->p.rate_bps > 0 ? d->p.rate_bps : 4e9) /
		    8 * (double)d->p.delay_ns / 1e9;
		inflight += d->p.qlimit_bytes > 0 ? (double)d->p.qlimit_bytes :
		    (double)d->p.qlimit_pkts * 1600;
		inflight = 2 * inflight + (8 << 20);
		if (inflight > 1024.0 * 1024 * 1024)
			inflight = 1024.0 * 1024 * 1024;
		d->q.cap = (size_t)inflight;
	}
	d->q.cap = align8(d->q.cap);
	if (d->q.cap < (1 << 20))
		d->q.cap = 1 << 20;
	d->q.buf = mmap(NULL, d->q.cap, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (d->q.buf == MAP_FAILED)
		die("mmap %zu bytes: %s", d->q.cap, strerror(errno));
}

enum {
	O_A = 256, O_B, O_DELAY, O_RATE, O_LOSS, O_QUEUE, O_DELAY_AB,
	O_DELAY_BA, O_RATE_AB, O_RATE_BA, O_LOSS_AB, O_LOSS_BA, O_QUEUE_AB,
	O_QUEUE_BA, O_OVERHEAD, O_SEED, O_CONTROL, O_DOWN_AT, O_DOWN_FOR,
	O_SPIN, O_SLACK, O_MEM, O_RING, O_CTL, O_HELP
};

static const struct option longopts[] = {
	{ "a", required_argument, NULL, O_A },
	{ "b", required_argument, NULL, O_B },
	{ "delay-ms", required_argument, NULL, O_DELAY },
	{ "rate", required_argument, NULL, O_RATE },
	{ "loss", required_argument, NULL, O_LOSS },
	{ "queue", required_argument, NULL, O_QUEUE },
	{ "delay-ms-ab", required_argument, NULL, O_DELAY_AB },
	{ "delay-ms-ba", required_argument, NULL, O_DELAY_BA },
	{ "rate-ab", required_argument, NULL, O_RATE_AB },
	{ "rate-ba", required_argument, NULL, O_RATE_BA },
	{ "loss-ab", required_argument, NULL, O_LOSS_AB },
	{ "loss-ba", required_argument, NULL, O_LOSS_BA },
	{ "queue-ab", required_argument, NULL, O_QUEUE_AB },
	{ "queue-ba", required_argument, NULL, O_QUEUE_BA },
	{ "overhead", required_argument, NULL, O_OVERHEAD },
	{ "seed", required_argument, NULL, O_SEED },
	{ "control", required_argument, NULL, O_CONTROL },
	{ "down-at", required_argument, NULL, O_DOWN_AT },
	{ "down-for", required_argument, NULL, O_DOWN_FOR },
	{ "spin-us", required_argument, NULL, O_SPIN },
	{ "slack-us", required_argument, NULL, O_SLACK },
	{ "mem", required_argument, NULL, O_MEM },
	{ "ring-frames", required_argument, NULL, O_RING },
	{ "ctl", required_argument, NULL, O_CTL },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 }
};

static uint64_t
parse_uint(const char *name, const char *s, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
		die("bad %s: %s", name, s);
	return v;
}

static void
parse_args(int argc, char **argv)
{
	static const char *const keys[] = { "delay-ms", "rate", "loss",
	    "queue" };
	bool qset[NDIR] = { false, false };
	uint64_t pkts;
	double v;
	int c, k;
	unsigned mask;

	opt.seed = 1;
	opt.spin_ns = 0;
	opt.slack_ns = 50000;
	opt.ring_frames = 8192;
	opt.down_at = -1;
	opt.down_for = -1;
	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (c) {
		case O_A:
			opt.if_a = optarg;
			break;
		case O_B:
			opt.if_b = optarg;
			break;
		case O_DELAY: case O_RATE: case O_LOSS: case O_QUEUE:
		case O_DELAY_AB: case O_DELAY_BA: case O_RATE_AB:
		case O_RATE_BA: case O_LOSS_AB: case O_LOSS_BA:
		case O_QUEUE_AB: case O_QUEUE_BA:
			if (c <= O_QUEUE) {
				k = c - O_DELAY;
				mask = 3;
			} else {
				k = (c - O_DELAY_AB) / 2;
				mask = (c - O_DELAY_AB) % 2 == 0 ? 1 : 2;
			}
			if (apply_param(keys[k], optarg, mask, qset) != 0)
				die("bad --%s%s: %s", keys[k],
				    mask == 3 ? "" : (mask == 1 ? "-ab" :
				    "-ba"), optarg);
			break;
		case O_OVERHEAD:
			opt.overhead = (unsigned)parse_uint("--overhead",
			    optarg, 1000);
			break;
		case O_SEED:
			opt.seed = parse_uint("--seed", optarg, UINT64_MAX);
			break;
		case O_CONTROL:
			opt.control = optarg;
			break;
		case O_DOWN_AT:
			if (parse_double(optarg, &v) != 0 || v < 0)
				die("bad --down-at: %s", optarg);
			opt.down_at = v;
			break;
		case O_DOWN_FOR:
			if (parse_double(optarg, &v) != 0 || v <= 0)
				die("bad --down-for: %s", optarg);
			opt.down_for = v;
			break;
		case O_SPIN:
			opt.spin_ns = (int64_t)parse_uint("--spin-us", optarg,
			    1000000) * 1000;
			break;
		case O_SLACK:
			opt.slack_ns = (int64_t)parse_uint("--slack-us", optarg,
			    1000000) * 1000;
			break;
		case O_MEM:
			if (parse_queue(optarg, &opt.mem_bytes, &pkts) != 0 ||
			    opt.mem_bytes == 0)
				die("bad --mem: %s", optarg);
			break;
		case O_RING:
			opt.ring_frames = (unsigned)parse_uint("--ring-frames",
			    optarg, 1 << 20);
			if (opt.ring_frames < 64)
				die("--ring-frames: at least 64");
			break;
		case O_CTL:
			exit(ctl_client(optarg, argc - optind,
			    argv + optind));
		case 'v':
			opt.verbose = true;
			break;
		case 'h':
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "wanem: unexpected argument: %s\n",
		    argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (opt.if_a == NULL || opt.if_b == NULL) {
		fprintf(stderr, "wanem: --a and --b are required\n");
		usage(stderr);
		exit(2);
	}
	if (strcmp(opt.if_a, opt.if_b) == 0)
		die("--a and --b must differ");
	if ((opt.down_at >= 0) != (opt.down_for > 0))
		die("--down-at and --down-for go together");
	for (k = 0; k < NDIR; k++)
		resolve_defaults(&dirs[k], qset[k]);
}

int
main(int argc, char **argv)
{
	struct pollfd pfd[4];
	sigset_t ss;
	int64_t start, now, next, t, down_at = -1, up_at = -1, last_poll = 0;
	struct timespec ts;
	struct pollfd *pp;
	nfds_t npp;
	unsigned n;
	int i, nfd;
	bool busy, active;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < NDIR; i++) {
		dirs[i].rx_fd = dirs[i].tx_fd = -1;
		dirs[i].p.loss = 0;
	}
	dirs[0].name = "ab";
	dirs[1].name = "ba";
	parse_args(argc, argv);
	dirs[0].in_if = dirs[1].out_if = opt.if_a;
	dirs[0].out_if = dirs[1].in_if = opt.if_b;
	for (i = 0; i < NDIR; i++) {
		uint64_t x = opt.seed + (uint64_t)i * 0x5851f42d4c957f2dULL;
		int k;

		for (k = 0; k < 4; k++)
			dirs[i].rng[k] = splitmix64(&x);
		open_rx(&dirs[i]);
		open_tx(&dirs[i]);
	}
	(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGUSR1);
	sigaddset(&ss, SIGUSR2);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0)
		die("signalfd: %s", strerror(errno));
	if (opt.control != NULL)
		open_control(opt.control);

	start = now_ns();
	if (opt.down_at >= 0) {
		down_at = start + (int64_t)(opt.down_at * 1e9);
		up_at = down_at + (int64_t)(opt.down_for * 1e9);
	}
	if (opt.verbose)
		fprintf(stderr, "wanem: bridging %s <-> %s\n", opt.if_a,
		    opt.if_b);

	nfd = 0;
	pfd[nfd++] = (struct pollfd){ .fd = dirs[0].rx_fd, .events = POLLIN };
	pfd[nfd++] = (struct pollfd){ .fd = dirs[1].rx_fd, .events = POLLIN };
	pfd[nfd++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
	if (ctl_fd >= 0)
		pfd[nfd++] = (struct pollfd){ .fd = ctl_fd, .events = POLLIN };

	while (!quit) {
		busy = active = false;
		for (i = 0; i < NDIR; i++) {
			n = rx_drain(&dirs[i]);
			if (n == RX_BUDGET)
				busy = true;
			if (n > 0)
				active = true;
		}
		now = now_ns();
		if (down_at >= 0 && now >= down_at) {
			set_link(3, true);
			down_at = -1;
		}
		if (up_at >= 0 && down_at < 0 && now >= up_at) {
			set_link(3, false);
			up_at = -1;
		}
		next = INT64_MAX;
		for (i = 0; i < NDIR; i++) {
			t = tx_due(&dirs[i], now);
			if (t < 0)
				t = now + 20000;
			if (t > 0 && t < next)
				next = t;
		}
		if (down_at >= 0 && down_at < next)
			next = down_at;
		if (up_at >= 0 && up_at < next)
			next = up_at;
		now = now_ns();
		t = next == INT64_MAX ? NSEC_PER_SEC : next - now;
		if (busy || t <= opt.spin_ns) {
			/* Busy-poll; look at signals and control each ms. */
			if (now - last_poll < 1000000)
				continue;
			last_poll = now;
			if (poll(pfd + 2, (nfds_t)(nfd - 2), 0) > 0) {
				handle_signals();
				if (ctl_fd >= 0)
					handle_control();
			}
			continue;
		}
		/*
		 * While frames flow, wake every --slack-us and take what the
		 * rings hold, rather than once per frame; when idle, any
		 * frame wakes us.
		 */
		if (t < opt.slack_ns)
			t = opt.slack_ns;
		if (t > NSEC_PER_SEC)
			t = NSEC_PER_SEC;
		if (active) {
			if (t > opt.slack_ns)
				t = opt.slack_ns;
			pp = pfd + 2;
			npp = (nfds_t)(nfd - 2);
		} else {
			if (rx_ready(&dirs[0]) || rx_ready(&dirs[1]))
				continue;
			pp = pfd;
			npp = (nfds_t)nfd;
		}
		ts.tv_sec = t / NSEC_PER_SEC;
		ts.tv_nsec = t % NSEC_PER_SEC;
		last_poll = now;
		if (ppoll(pp, npp, &ts, NULL) > 0) {
			if (pfd[2].revents)
				handle_signals();
			if (ctl_fd >= 0 && pfd[3].revents)
				handle_control();
			pfd[2].revents = 0;
			if (ctl_fd >= 0)
				pfd[3].revents = 0;
		}
	}
	print_stats();
	if (opt.control != NULL)
		(void)unlink(opt.control);
	return 0;
}

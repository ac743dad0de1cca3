/*
 * bulk.c - tiny measurement tool for the wanem tests.
 *
 *	bulk recv ADDR PORT [-f FROM_S] [-t TO_S] [-T TIMEOUT_S] [-I IVL_S]
 *	    [-W BYTES]
 *		accept one TCP connection, read to EOF, report bytes and the
 *		goodput from first to last byte and in the window
 *		[first byte + FROM, first byte + TO]; with -I, the goodput of
 *		each interval on stderr; -W clamps the receive window
 *		(TCP_WINDOW_CLAMP), e.g. to 1.5 BDP so that the flow fills
 *		the link without ever overflowing a 1-BDP queue
 *	bulk send ADDR PORT [-s SECONDS] [-n BYTES] [-c CONGESTION]
 *		connect and send fresh random bytes (xorshift) for SECONDS
 *		(default 10) or BYTES
 *	bulk echo ADDR PORT [-T TIMEOUT_S]
 *		UDP echo server; exits after TIMEOUT_S idle (default 60)
 *	bulk ping ADDR PORT [-n COUNT] [-i INTERVAL_S] [-w WAIT_S]
 *		UDP pinger: COUNT probes, INTERVAL apart; reports sent, lost
 *		and RTT min/avg/max in ms
 *
 * Output is one line of key=value pairs on stdout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ	(1 << 20)

static void
die(const char *what)
{
	fprintf(stderr, "bulk: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bulk recv ADDR PORT [-f FROM_S] [-t TO_S] [-T TIMEOUT_S] "
	    "[-I IVL_S] [-W BYTES]\n"
	    "       bulk send ADDR PORT [-s SECONDS] [-n BYTES] [-c CC]\n"
	    "       bulk echo ADDR PORT [-T TIMEOUT_S]\n"
	    "       bulk ping ADDR PORT [-n COUNT] [-i INTERVAL_S] "
	    "[-w WAIT_S]\n");
	exit(2);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
num(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		usage();
	return v;
}

static void
mkaddr(const char *addr, const char *port, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)num(port));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
		usage();
}

static int
do_recv(struct sockaddr_in *sin, double from, double to, double timeout,
    double ivl, double clamp)
{
	int wc = (int)clamp;
	double ti = 0;
	uint64_t bi = 0;
	static char buf[BUFSZ];
	struct pollfd pfd;
	double t, t0 = 0, tlast = 0, tf = 0, tt = 0;
	uint64_t total = 0, bf = 0, bt = 0;
	ssize_t n;
	int lfd, fd, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (wc > 0 && setsockopt(lfd, IPPROTO_TCP, TCP_WINDOW_CLAMP, &wc,
	    sizeof(wc)) != 0)
		die("TCP_WINDOW_CLAMP");
	if (bind(lfd, (struct sockaddr *)sin, sizeof(*sin)) != 0)
		die("bind");
	if (listen(lfd, 1) != 0)
		die("listen");
	pfd.fd = lfd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, (int)(timeout * 1000)) != 1) {
		fprintf(stderr, "bulk: no connection\n");
		return 1;
	}
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept");
	if (wc > 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_WINDOW_CLAMP, &wc,
		    sizeof(wc));
	pfd.fd = fd;
	for (;;) {
		if (poll(&pfd, 1, (int)(timeout * 1000)) != 1) {
			fprintf(stderr, "bulk: receive timeout\n");
			return 1;
		}
		n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("read");
		}
		if (n == 0)
			break;
		t = now_s();
		if (total == 0)
			t0 = t;
		/* Window edges: bytes received by the first read past it. */
		if (tf == 0 && t - t0 >= from) {
			tf = t;
			bf = total + (uint64_t)n;
		}
		if (tt == 0 && t - t0 >= to) {
			tt = t;
			bt = total + (uint64_t)n;
		}
		total += (uint64_t)n;
		tlast = t;
		if (ivl > 0 && t - ti >= ivl) {
			if (ti > 0)
				fprintf(stderr, "t=%.3f bps=%.0f\n", t - t0,
				    (double)(total - bi) * 8 / (t - ti));
			ti = t;
			bi = total;
		}
	}
	printf("bytes=%llu elapsed=%.6f rate_bps=%.0f", (unsigned long long)total,
	    tlast - t0, tlast > t0 ? (double)total * 8 / (tlast - t0) : 0.0);
	if (tt > tf && tf > 0)
		printf(" window_from=%.6f window_to=%.6f window_bytes=%llu "
		    "window_bps=%.0f", tf - t0, tt - t0,
		    (unsigned long long)(bt - bf),
		    (double)(bt - bf) * 8 / (tt - tf));
	else
		printf(" window_bps=0");
	printf("\n");
	close(fd);
	close(lfd);
	return 0;
}

static int
do_send(struct sockaddr_in *sin, double secs, double bytes, const char *cc)
{
	static char buf[BUFSZ];
	double start, end;
	uint64_t total = 0, left, x = 0x9E3779B97F4A7C15ull;
	ssize_t n;
	size_t len;
	int fd;


	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (cc != NULL && setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc,
	    (socklen_t)strlen(cc)) != 0)
		die("TCP_CONGESTION");
	if (connect(fd, (struct sockaddr *)sin, sizeof(*sin)) != 0)
		die("connect");
	start = now_s();
	end = start + secs;
	for (;;) {
		len = sizeof(buf);
		if (bytes > 0) {
			left = (uint64_t)bytes - total;
			if (left == 0)
				break;
			if (left < len)
				len = (size_t)left;
		} else if (now_s() >= end) {
			break;
		}
		/* Fresh random bytes for every write: a gateway's codec (with
		 * a window far larger than this buffer) must not make the link
		 * look faster than it is. */
		for (size_t i = 0; i + 8 <= len; i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(buf + i, &x, 8);
		}
		n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		total += (uint64_t)n;
	}
	shutdown(fd, SHUT_WR);
	/* Wait for the peer to close so every byte is counted there. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	printf("sent=%llu elapsed=%.6f\n", (unsigned long long)total,
	    now_s() - start);
	close(fd);
	return 0;
}

static int
do_echo(struct sockaddr_in *sin, double timeout)
{
	char buf[2048];
	struct sockaddr_in from;
	struct pollfd pfd;
	socklen_t fl;
	ssize_t n;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (bind(fd, (struct sockaddr *)sin, sizeof(*sin)) != 0)
		die("bind");
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (poll(&pfd, 1, (int)(timeout * 1000)) == 1) {
		fl = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
		    &fl);
		if (n > 0)
			(void)sendto(fd, buf, (size_t)n, 0,
			    (struct sockaddr *)&from, fl);
	}
	return 0;
}

struct probe {
	uint32_t seq;
	uint32_t pad;
	double sent;
};

static int
do_ping(struct sockaddr_in *sin, unsigned count, double interval, double wait)
{
	struct probe p;
	struct pollfd pfd;
	double next, t, rtt, sum = 0, min = 1e9, max = 0, deadline = 0;
	unsigned sent = 0, recvd = 0;
	bool *seen;
	int fd, ms;

	seen = calloc(count ? count : 1, sizeof(*seen));
	if (seen == NULL)
		die("calloc");
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)sin, sizeof(*sin)) != 0)
		die("connect");
	pfd.fd = fd;
	pfd.events = POLLIN;
	next = now_s();
	for (;;) {
		t = now_s();
		if (sent < count && t >= next) {
			memset(&p, 0, sizeof(p));
			p.seq = sent;
			p.sent = t;
			if (send(fd, &p, sizeof(p), 0) < 0 &&
			    errno != ECONNREFUSED)
				die("send");
			sent++;
			next += interval;
			if (sent == count)
				deadline = t + wait;
			continue;
		}
		if (sent == count && (t >= deadline || recvd == count))
			break;
		ms = (int)(((sent < count ? next : deadline) - t) * 1000) + 1;
		if (poll(&pfd, 1, ms) == 1) {
			if (recv(fd, &p, sizeof(p), 0) != (ssize_t)sizeof(p))
				continue;
			if (p.seq >= count || seen[p.seq])
				continue;
			seen[p.seq] = true;
			rtt = (now_s() - p.sent) * 1000;
			recvd++;
			sum += rtt;
			if (rtt < min)
				min = rtt;
			if (rtt > max)
				max = rtt;
		}
	}
	printf("sent=%u recv=%u lost=%u rtt_min_ms=%.3f rtt_avg_ms=%.3f "
	    "rtt_max_ms=%.3f\n", sent, recvd, sent - recvd,
	    recvd ? min : 0.0, recvd ? sum / recvd : 0.0, max);
	free(seen);
	close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	const char *mode, *cc = NULL;
	double from = 3, to = 8, timeout = 60, secs = 10, bytes = 0;
	double interval = 0.2, wait = 2, count = 20, ivl = 0;
	double clamp = 0;
	int c;

	if (argc < 4)
		usage();
	mode = argv[1];
	mkaddr(argv[2], argv[3], &sin);
	optind = 4;
	while ((c = getopt(argc, argv, "f:t:T:s:n:c:i:w:I:W:")) != -1) {
		switch (c) {
		case 'f':
			from = num(optarg);
			break;
		case 't':
			to = num(optarg);
			break;
		case 'T':
			timeout = num(optarg);
			break;
		case 's':
			secs = num(optarg);
			break;
		case 'n':
			bytes = count = num(optarg);
			break;
		case 'c':
			cc = optarg;
			break;
		case 'i':
			interval = num(optarg);
			break;
		case 'w':
			wait = num(optarg);
			break;
		case 'I':
			ivl = num(optarg);
			break;
		case 'W':
			clamp = num(optarg);
			if (clamp > 1 << 30)
				usage();
			break;
		default:
			usage();
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "recv") == 0)
		return do_recv(&sin, from, to, timeout, ivl, clamp);
	if (strcmp(mode, "send") == 0)
		return do_send(&sin, secs, bytes, cc);
	if (strcmp(mode, "echo") == 0)
		return do_echo(&sin, timeout);
	if (strcmp(mode, "ping") == 0)
		return do_ping(&sin, (unsigned)count, interval, wait);
	usage();
	return 2;
}

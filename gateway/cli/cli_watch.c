/*
 * cli_watch.c - `wanmig status --watch`: the live view.
 *
 * Every interval the status document is fetched again and one frame is
 * drawn: per migration a progress bar, the raw rate (what QEMU sees: the
 * growth of bytes_in between two samples), the rate on the WAN (growth of
 * bytes_wan), the ratio WAN / raw, elapsed time and an ETA; per peer the
 * RTT, streams, the rate achieved (growth of bytes_sent) and the rate in
 * force when the daemon reports one. Rates are computed here from
 * successive samples; the first sample of a migration shows its average so
 * far. An ETA needs a known total, which a live migration does not have
 * (QEMU's RAM size and dirty rate are not known to the gateway), so it
 * shows the none mark unless the daemon reports a total.
 *
 * On a terminal the frame is redrawn in place (alternate screen, cursor
 * hidden, lines cut to the width), and q or Ctrl-C quits and restores the
 * terminal; otherwise each refresh prints a plain block of text.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define BAR_WIDTH 14
#define FINISHED_ROWS_MAX 8     /* finished migrations shown under the active */

static volatile sig_atomic_t quit_sig, winch;

struct sample {
	uint64_t id;
	bool inbound;
	uint64_t raw, wan;
	double t;
	bool seen;              /* in the latest document */
};

struct psample {
	char name[64];
	uint64_t sent;
	double t;
	double rate;            /* bytes/s over the last interval, < 0 unknown */
	bool seen;
};

struct watch {
	const struct cli_watch_opts *o;
	bool tty, keys;
	struct termios saved;
	struct sample *s;
	size_t ns;
	struct psample *p;
	size_t np;
	unsigned rows, cols;
	unsigned long frames;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
on_signal(int sig)
{
	if (sig == SIGWINCH)
		winch = 1;
	else
		quit_sig = sig;
}

const char *
cli_watch_bar(const char *state, uint64_t bytes, uint64_t total, size_t width,
    char *buf, size_t len)
{
	size_t inner = width > 2 ? width - 2 : 1, i;
	char cell[64];

	if (inner > sizeof(cell) - 1)
		inner = sizeof(cell) - 1;
	memset(cell, ' ', inner);
	cell[inner] = '\0';
	if (strcmp(state, "completed") == 0) {
		memset(cell, '#', inner);
	} else if (strcmp(state, "failed") == 0) {
		memset(cell, 'x', inner);
	} else if (total > 0) {
		uint64_t b = bytes > total ? total : bytes;
		size_t fill = (size_t)((double)b / (double)total * (double)inner);

		memset(cell, '#', fill);
	} else if (inner >= 3) {
		/* One step per 4 MiB relayed: moves while bytes flow. */
		size_t span = inner - 2, pos = (size_t)((bytes >> 22) % (2 * span));

		i = pos < span ? pos : 2 * span - pos;
		memcpy(cell + i, "<=>", 3);
	}
	snprintf(buf, len, "[%s]", cell);
	return buf;
}

static struct sample *
sample_find(struct watch *w, uint64_t id, bool inbound)
{
	for (size_t i = 0; i < w->ns; i++)
		if (w->s[i].id == id && w->s[i].inbound == inbound)
			return &w->s[i];
	return NULL;
}

static struct sample *
sample_add(struct watch *w)
{
	struct sample *n = realloc(w->s, (w->ns + 1) * sizeof(*n));

	if (n == NULL)
		return NULL;
	w->s = n;
	memset(&n[w->ns], 0, sizeof(*n));
	return &n[w->ns++];
}

/* Drops samples of migrations no longer in the document. */
static void
samples_sweep(struct watch *w)
{
	size_t j = 0;

	for (size_t i = 0; i < w->ns; i++)
		if (w->s[i].seen)
			w->s[j++] = w->s[i];
	w->ns = j;
	for (size_t i = 0; i < w->ns; i++)
		w->s[i].seen = false;
}

/* Updates the peers' achieved-rate samples from the document. */
static void
peers_sample(struct watch *w, struct json_object *peers, double t)
{
	size_t n = peers ? json_object_array_length(peers) : 0, j = 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(peers, i);
		const char *name = cli_jstr(p, "name");
		uint64_t sent = cli_ju64(p, "bytes_sent");
		struct psample *ps = NULL;

		for (size_t k = 0; k < w->np; k++)
			if (strcmp(w->p[k].name, name) == 0)
				ps = &w->p[k];
		if (ps == NULL) {
			struct psample *np = realloc(w->p, (w->np + 1) * sizeof(*np));

			if (np == NULL)
				continue;
			w->p = np;
			ps = &np[w->np++];
			memset(ps, 0, sizeof(*ps));
			snprintf(ps->name, sizeof(ps->name), "%s", name);
			ps->rate = -1;
		} else if (t > ps->t && sent >= ps->sent) {
			ps->rate = (double)(sent - ps->sent) / (t - ps->t);
		} else {
			ps->rate = -1; /* counter went back: the daemon restarted */
		}
		ps->sent = sent;
		ps->t = t;
		ps->seen = true;
	}
	for (size_t i = 0; i < w->np; i++)
		if (w->p[i].seen) {
			w->p[i].seen = false;
			w->p[j++] = w->p[i];
		}
	w->np = j;
}

static double
peer_rate(struct watch *w, const char *name)
{
	for (size_t i = 0; i < w->np; i++)
		if (strcmp(w->p[i].name, name) == 0)
			return w->p[i].rate;
	return -1;
}

/* One migration row. Rates from the previous sample, else the average. */
static void
mig_row(struct watch *w, FILE *f, struct json_object *m, double t)
{
	const char *state = cli_jstr(m, "state");
	bool active = strcmp(state, "active") == 0, inbound, has_total;
	uint64_t id = cli_ju64(m, "id"), raw = cli_ju64(m, "bytes_in");
	uint64_t wan = cli_ju64(m, "bytes_wan"), ret = cli_ju64(m, "bytes_return");
	uint64_t total = (uint64_t)cli_jdbl(m, "bytes_total", &has_total);
	double el = cli_jdbl(m, "elapsed_s", NULL), rraw = -1, rwan = -1, lim;
	char bar[64], b1[32], b2[32], b3[32], b4[32], b5[32], b6[32], b7[32];
	struct sample *s;

	inbound = strcmp(cli_jstr(m, "direction"), "in") == 0;
	s = sample_find(w, id, inbound);
	if (s == NULL && (s = sample_add(w)) != NULL) {
		s->id = id;
		s->inbound = inbound;
		s->t = -1;
	}
	if (active && s != NULL && s->t >= 0 && t > s->t && raw >= s->raw &&
	    wan >= s->wan) {
		rraw = (double)(raw - s->raw) / (t - s->t);
		rwan = (double)(wan - s->wan) / (t - s->t);
	} else if (el > 0) {
		rraw = (double)raw / el;    /* average: first sample or finished */
		rwan = (double)wan / el;
	}
	if (s != NULL) {
		s->raw = raw;
		s->wan = wan;
		s->t = t;
		s->seen = true;
	}
	fprintf(f, "%4" PRIu64 " %-3s ", id, cli_jstr(m, "direction"));
	cli_col(f, cli_jstr(m, "route"), 12, false);
	fputc(' ', f);
	cli_col(f, cli_jstr(m, "peer"), 8, false);
	fprintf(f, " %-9s %s ", state, cli_watch_bar(state, raw,
	    has_total ? total : 0, BAR_WIDTH, bar, sizeof(bar)));
	cli_col(f, cli_bytes(raw, b1, sizeof(b1)), 9, true);
	fputc(' ', f);
	cli_col(f, cli_rate(rraw, b2, sizeof(b2)), 11, true);
	fputc(' ', f);
	cli_col(f, cli_rate(rwan, b3, sizeof(b3)), 11, true);
	fputc(' ', f);
	if (raw + ret > 0)
		snprintf(b4, sizeof(b4), "%.2f", (double)wan / (double)(raw + ret));
	else
		snprintf(b4, sizeof(b4), "%s", cli_none());
	cli_col(f, b4, 5, true);
	fputc(' ', f);
	cli_col(f, cli_duration(el, b5, sizeof(b5)), 9, true);
	fputc(' ', f);
	if (active && has_total && total > raw && rraw > 0)
		cli_duration((double)(total - raw) / rraw, b6, sizeof(b6));
	else
		snprintf(b6, sizeof(b6), "%s", active ? cli_none() : "done");
	if (strcmp(state, "failed") == 0)
		snprintf(b6, sizeof(b6), "%s", cli_none());
	cli_col(f, b6, 9, true);
	if (cli_rate_limit(m, &lim))
		fprintf(f, "  cap %s", cli_rate(lim / 8.0, b7, sizeof(b7)));
	fputc('\n', f);
	if (strcmp(state, "failed") == 0)
		fprintf(f, "      error: %s\n", cli_jstr(m, "error"));
}

static void
draw_frame(struct watch *w, FILE *f, struct json_object *st, const char *err,
    double t)
{
	struct json_object *migs = cli_jarr(st, "migrations");
	struct json_object *peers = cli_jarr(st, "peers");
	size_t n = migs ? json_object_array_length(migs) : 0, active = 0, shown;
	char clock[32], b1[32], b2[32], b3[32], b4[32], b5[32];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(clock, sizeof(clock), "%Y-%m-%d %H:%M:%S", &tm);
	if (st == NULL) {
		fprintf(f, "wanmig status --watch  %s  %s\n\n%s\n", clock,
		    w->tty ? "(q quits)" : "", err);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(cli_jstr(json_object_array_get_idx(migs, i), "state"),
		    "active") == 0)
			active++;
	fprintf(f, "site %s  wanmigd %s  pid %" PRIu64 "%s   %s  every %.1f s%s\n",
	    cli_jstr(st, "site"), cli_jstr(st, "version"), cli_ju64(st, "pid"),
	    cli_jbool(st, "stopping") ? "  STOPPING" : "", clock,
	    w->o->interval_s, w->tty ? "  (q quits)" : "");
	fprintf(f, "migrations: %zu active, %" PRIu64 " completed, %" PRIu64
	    " failed\n\n", active, cli_ju64(st, "migrations_completed"),
	    cli_ju64(st, "migrations_failed"));

	fprintf(f, "%4s %-3s %-12s %-8s %-9s %-*s %9s %11s %11s %5s %9s %9s\n",
	    "ID", "DIR", "ROUTE", "PEER", "STATE", BAR_WIDTH, "PROGRESS",
	    "RAW", "RAW RATE", "WAN RATE", "RATIO", "ELAPSED", "ETA");
	shown = 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(migs, i);
		bool a = strcmp(cli_jstr(m, "state"), "active") == 0;

		/* Active ones first (the document keeps them first), then the
		 * most recent finished ones. */
		if (!a && shown >= active + FINISHED_ROWS_MAX)
			break;
		mig_row(w, f, m, t);
		shown++;
	}
	if (n == 0)
		fprintf(f, "     no migrations yet\n");
	samples_sweep(w);

	peers_sample(w, peers, t);
	fprintf(f, "\n%-12s %-4s %9s %7s %10s %10s %12s %13s\n", "PEER", "UP",
	    "RTT", "STREAMS", "SENT", "RECEIVED", "RATE NOW", "RATE IN FORCE");
	n = peers ? json_object_array_length(peers) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(peers, i);
		bool up = cli_jbool(p, "connected"), has;
		double rtt = cli_jdbl(p, "rtt_ms", &has), lim;

		cli_col(f, cli_jstr(p, "name"), 12, false);
		fprintf(f, " %-4s ", up ? "yes" : "no");
		if (up && has)
			snprintf(b1, sizeof(b1), "%.1f ms", rtt);
		else
			snprintf(b1, sizeof(b1), "%s", cli_none());
		cli_col(f, b1, 9, true);
		fprintf(f, " %7" PRIu64 " ", cli_ju64(p, "streams"));
		cli_col(f, cli_bytes(cli_ju64(p, "bytes_sent"), b2, sizeof(b2)),
		    10, true);
		fputc(' ', f);
		cli_col(f, cli_bytes(cli_ju64(p, "bytes_received"), b3,
		    sizeof(b3)), 10, true);
		fputc(' ', f);
		cli_col(f, cli_rate(peer_rate(w, cli_jstr(p, "name")), b4,
		    sizeof(b4)), 12, true);
		fputc(' ', f);
		if (cli_rate_limit(p, &lim))
			cli_rate(lim / 8.0, b5, sizeof(b5));
		else
			snprintf(b5, sizeof(b5), "%s", cli_none());
		cli_col(f, b5, 13, true);
		fputc('\n', f);
	}
	if (n == 0)
		fprintf(f, "no peers configured\n");
}

/* Writes a frame on the terminal: in place, each line cut to the width. */
static void
put_tty(struct watch *w, const char *frame)
{
	const char *line = frame;
	unsigned row = 0;

	fputs("\033[H", stdout);
	while (*line != '\0' && row + 1 < w->rows) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line), col = 0, i;

		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)line[i];

			if ((c & 0xc0) != 0x80) {
				if (col >= w->cols)
					break;
				col++;
			}
			fputc(c, stdout);
		}
		/* finish a cut multi-byte sequence: none, we stop before a lead */
		fputs("\033[K\n", stdout);
		row++;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	fputs("\033[J", stdout);
	fflush(stdout);
}

static void
term_size(struct watch *w)
{
	struct winsize ws;

	w->rows = 24;
	w->cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 &&
	    ws.ws_col > 0) {
		w->rows = ws.ws_row;
		w->cols = ws.ws_col;
	}
}

static void
term_enter(struct watch *w)
{
	struct termios raw;

	if (w->keys && tcgetattr(STDIN_FILENO, &w->saved) == 0) {
		raw = w->saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	} else {
		w->keys = false;
	}
	if (w->tty) {
		term_size(w);
		fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
		fflush(stdout);
	}
}

static void
term_leave(struct watch *w)
{
	if (w->tty) {
		fputs("\033[?25h\033[?1049l", stdout);
		fflush(stdout);
	}
	if (w->keys)
		tcsetattr(STDIN_FILENO, TCSANOW, &w->saved);
}

/* Waits until deadline (monotonic s); false when the user quits. */
static bool
wait_tick(struct watch *w, double deadline)
{
	for (;;) {
		struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
		double left = deadline - now_s();
		int rc;

		if (quit_sig)
			return false;
		if (winch) {
			winch = 0;
			term_size(w);
			return true; /* redraw now at the new size */
		}
		if (left <= 0)
			return true;
		rc = poll(&pfd, w->keys ? 1 : 0, (int)(left * 1000) + 1);
		if (rc < 0 && errno != EINTR)
			return true;
		if (rc > 0 && (pfd.revents & POLLIN)) {
			char c[16];
			ssize_t n = read(STDIN_FILENO, c, sizeof(c));

			if (n <= 0) {
				w->keys = false; /* stdin closed: keys no more */
				continue;
			}
			for (ssize_t i = 0; i < n; i++)
				if (c[i] == 'q' || c[i] == 'Q' || c[i] == 3)
					return false;
		} else if (rc > 0) {
			w->keys = false; /* POLLHUP/POLLERR */
		}
	}
}

int
cli_watch(const struct cli_watch_opts *o)
{
	struct watch w;
	struct sigaction sa;
	double next;
	int rc = CLI_EXIT_OK;

	memset(&w, 0, sizeof(w));
	w.o = o;
	w.tty = !o->json && isatty(STDOUT_FILENO);
	w.keys = isatty(STDIN_FILENO);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGWINCH, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	term_enter(&w);
	next = now_s();
	while (!quit_sig) {
		struct json_object *st = NULL;
		char err[512], *frame = NULL;
		size_t flen = 0;
		double t;
		FILE *f;
		int r;

		r = cli_request(o->sock, GW_CTL_STATUS, &st, err, sizeof(err));
		t = now_s();
		if (o->json) {
			if (r == 0)
				printf("%s\n", json_object_to_json_string_ext(st,
				    JSON_C_TO_STRING_PLAIN |
				    JSON_C_TO_STRING_NOSLASHESCAPE));
			else
				fprintf(stderr, "wanmig: %s\n", err);
			if (fflush(stdout) != 0) {
				json_object_put(st);
				rc = CLI_EXIT_UNAVAILABLE;
				break;
			}
		} else if ((f = open_memstream(&frame, &flen)) != NULL) {
			draw_frame(&w, f, r == 0 ? st : NULL, err, t);
			fclose(f);
			if (w.tty) {
				put_tty(&w, frame);
			} else {
				printf("%s", frame);
				printf("\n");
				if (fflush(stdout) != 0) { /* reader gone */
					free(frame);
					json_object_put(st);
					break;
				}
			}
			free(frame);
		}
		json_object_put(st);
		w.frames++;
		if (o->count > 0 && w.frames >= (unsigned long)o->count)
			break;
		next += o->interval_s;
		if (next < now_s())
			next = now_s();
		if (!wait_tick(&w, next))
			break;
	}
	term_leave(&w);
	free(w.s);
	free(w.p);
	return rc;
}

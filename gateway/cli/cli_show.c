/*
 * cli_show.c - the one-shot views of wanmig (status, migrations, peers)
 * and the formatting helpers the live view shares.
 *
 * Everything is read from the daemon's status document (gw_ctl.c,
 * gw_status_json); absent fields print as "-", unknown figures as the
 * cli_none() mark rather than a guess.
 */
#include <inttypes.h>
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

const char *
cli_jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, k, &v) || v == NULL)
		return "-";
	return json_object_get_string(v);
}

uint64_t
cli_ju64(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, k, &v) || v == NULL)
		return 0;
	return json_object_get_uint64(v);
}

double
cli_jdbl(struct json_object *o, const char *k, bool *present)
{
	struct json_object *v;
	bool p = o != NULL && json_object_object_get_ex(o, k, &v) && v != NULL;

	if (present != NULL)
		*present = p;
	return p ? json_object_get_double(v) : 0.0;
}

bool
cli_jbool(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, k, &v) || v == NULL)
		return false;
	return json_object_get_boolean(v);
}

struct json_object *
cli_jarr(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

const char *
cli_bytes(uint64_t v, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "kB", "MB", "GB", "TB", "PB" };
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1000.0 && u < 5) {
		d /= 1000.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", v);
	else
		snprintf(buf, len, "%.1f %s", d, unit[u]);
	return buf;
}

const char *
cli_rate(double bps, char *buf, size_t len)
{
	char b[32];

	if (bps < 0) {
		snprintf(buf, len, "%s", cli_none());
		return buf;
	}
	/* the result is looked at: with -O3 GCC (-Wformat-truncation) warns
	 * of a caller's buffer shorter than b plus "/s" otherwise; a short one
	 * cuts the figure */
	if (snprintf(buf, len, "%s/s",
	    cli_bytes((uint64_t)(bps + 0.5), b, sizeof(b))) < 0 && len > 0)
		buf[0] = '\0';
	return buf;
}

const char *
cli_duration(double s, char *buf, size_t len)
{
	uint64_t t;

	if (s < 0)
		s = 0;
	if (s < 60) {
		snprintf(buf, len, "%.1f s", s);
		return buf;
	}
	t = (uint64_t)(s + 0.5);
	if (t < 3600)
		snprintf(buf, len, "%" PRIu64 " m %02" PRIu64 " s", t / 60, t % 60);
	else
		snprintf(buf, len, "%" PRIu64 " h %02" PRIu64 " m", t / 3600,
		    (t / 60) % 60);
	return buf;
}

const char *
cli_none(void)
{
	static int utf8 = -1;

	if (utf8 < 0) {
		const char *cs = nl_langinfo(CODESET);

		utf8 = cs != NULL && (strcmp(cs, "UTF-8") == 0 ||
		    strcmp(cs, "utf8") == 0);
	}
	return utf8 ? "\xe2\x80\x94" : "-";
}

size_t
cli_width(const char *s)
{
	size_t w = 0;

	while (*s != '\0') {
		if (*s == '\033') {
			/* CSI: ESC [ parameters final-byte */
			s++;
			if (*s == '[') {
				s++;
				while (*s != '\0' && !(*s >= 0x40 && *s <= 0x7e))
					s++;
			}
			if (*s != '\0')
				s++;
			continue;
		}
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
		s++;
	}
	return w;
}

void
cli_col(FILE *f, const char *s, size_t width, bool right)
{
	size_t w = cli_width(s);

	if (right)
		for (; w < width; w++)
			fputc(' ', f);
	fputs(s, f);
	if (!right)
		for (; w < width; w++)
			fputc(' ', f);
}

bool
cli_rate_limit(struct json_object *o, double *bps)
{
	static const char *const keys[] = { "rate_limit_bps", "rate_in_force_bps" };
	bool has;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		*bps = cli_jdbl(o, keys[i], &has);
		if (has && *bps > 0)
			return true;
	}
	return false;
}

/* ---- views ------------------------------------------------------------- */

static void
print_header(FILE *f, struct json_object *st)
{
	struct json_object *migs = cli_jarr(st, "migrations");
	size_t n = migs ? json_object_array_length(migs) : 0, active = 0;

	for (size_t i = 0; i < n; i++)
		if (strcmp(cli_jstr(json_object_array_get_idx(migs, i), "state"),
		    "active") == 0)
			active++;
	fprintf(f, "site %s  wanmigd %s  pid %" PRIu64 "  up since %s%s\n",
	    cli_jstr(st, "site"), cli_jstr(st, "version"), cli_ju64(st, "pid"),
	    cli_jstr(st, "started"), cli_jbool(st, "stopping") ? "  STOPPING" : "");
	fprintf(f, "migrations: %zu active, %" PRIu64 " completed, %" PRIu64
	    " failed\n", active, cli_ju64(st, "migrations_completed"),
	    cli_ju64(st, "migrations_failed"));
}

static const char *
rtt_text(struct json_object *p, char *buf, size_t len)
{
	bool has;
	double rtt = cli_jdbl(p, "rtt_ms", &has);

	if (has && cli_jbool(p, "connected"))
		snprintf(buf, len, "%.1f ms", rtt);
	else
		snprintf(buf, len, "%s", cli_none());
	return buf;
}

void
cli_print_peers(FILE *f, struct json_object *st)
{
	struct json_object *peers = cli_jarr(st, "peers");
	size_t n = peers ? json_object_array_length(peers) : 0;
	char b1[32], b2[32], b3[32];

	if (n == 0) {
		fprintf(f, "no peers configured\n");
		return;
	}
	fprintf(f, "%-12s %-8s %9s %5s %7s %10s %10s %7s %7s  %s\n", "PEER",
	    "STATE", "RTT", "CONNS", "STREAMS", "SENT", "RECEIVED", "OUTAGES",
	    "RESUMES", "REMOTE / ADDRESS / LAST ERROR");
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(peers, i);
		bool up = cli_jbool(p, "connected");

		cli_col(f, cli_jstr(p, "name"), 12, false);
		/* "resuming": a session lost its connections and waits, within
		 * its resume window, with its migrations held. */
		fprintf(f, " %-8s ", cli_jbool(p, "resuming") ? "resuming" :
		    up ? "up" : "down");
		cli_col(f, rtt_text(p, b3, sizeof(b3)), 9, true);
		fprintf(f, " %5" PRIu64 " %7" PRIu64 " %10s %10s %7" PRIu64 " %7"
		    PRIu64 "  %s\n", cli_ju64(p, "connections"),
		    cli_ju64(p, "streams"),
		    cli_bytes(cli_ju64(p, "bytes_sent"), b1, sizeof(b1)),
		    cli_bytes(cli_ju64(p, "bytes_received"), b2, sizeof(b2)),
		    cli_ju64(p, "outages"), cli_ju64(p, "resumes"),
		    up ? cli_jstr(p, "remote") : cli_jstr(p, "address"));
		if (json_object_object_get(p, "last_error") != NULL)
			fprintf(f, "             last error: %s\n",
			    cli_jstr(p, "last_error"));
	}
}

/* wan / (raw both ways), or the none mark. */
static const char *
ratio_text(struct json_object *m, char *buf, size_t len)
{
	uint64_t raw = cli_ju64(m, "bytes_in") + cli_ju64(m, "bytes_return");

	if (raw == 0)
		snprintf(buf, len, "%s", cli_none());
	else
		snprintf(buf, len, "%.2f", (double)cli_ju64(m, "bytes_wan") /
		    (double)raw);
	return buf;
}

/* The destination's announcement of a migrated VM (gw_rarp.c), one line. */
static void
print_announce(FILE *f, struct json_object *an)
{
	struct json_object *macs = cli_jarr(an, "macs");
	struct json_object *ips = cli_jarr(an, "addresses");

	if (strcmp(cli_jstr(an, "state"), "skipped") == 0) {
		fprintf(f, "      announce: none (%s)\n", cli_jstr(an, "reason"));
		return;
	}
	fprintf(f, "      announce: %s on %s vlan %s: %zu MAC%s, %zu address%s, "
	    "%" PRIu64 "/%" PRIu64 " rounds, %" PRIu64 " frames, first %s, "
	    "last %s\n", cli_jstr(an, "state"), cli_jstr(an, "interface"),
	    cli_jstr(an, "vlan"), macs ? json_object_array_length(macs) : 0,
	    macs && json_object_array_length(macs) == 1 ? "" : "s",
	    ips ? json_object_array_length(ips) : 0,
	    ips && json_object_array_length(ips) == 1 ? "" : "es",
	    cli_ju64(an, "rounds_sent"), cli_ju64(an, "rounds"),
	    cli_ju64(an, "frames_sent"), cli_jstr(an, "first"),
	    cli_jstr(an, "last"));
	if (json_object_object_get_ex(an, "error", NULL))
		fprintf(f, "      announce error: %s\n", cli_jstr(an, "error"));
}

/* The page codec's work on a migration, one line. */
static void
print_codec(FILE *f, struct json_object *c)
{
	struct json_object *pg = NULL;
	char b1[32], b2[32];

	json_object_object_get_ex(c, "pages", &pg);
	fprintf(f, "      codec: %s, %s -> %s (%.3f); pages: %" PRIu64 " zero, "
	    "%" PRIu64 " dedup, %" PRIu64 " delta, %" PRIu64 " literal, "
	    "%" PRIu64 " opaque\n", cli_jstr(c, "algo"),
	    cli_bytes(cli_ju64(c, "raw_bytes"), b1, sizeof(b1)),
	    cli_bytes(cli_ju64(c, "wan_bytes"), b2, sizeof(b2)),
	    cli_jdbl(c, "ratio", NULL), cli_ju64(pg, "zero"),
	    cli_ju64(pg, "dedup"), cli_ju64(pg, "delta"),
	    cli_ju64(pg, "literal"), cli_ju64(pg, "opaque"));
}

void
cli_print_migrations(FILE *f, struct json_object *st)
{
	struct json_object *migs = cli_jarr(st, "migrations");
	size_t n = migs ? json_object_array_length(migs) : 0;
	char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];

	if (n == 0) {
		fprintf(f, "no migrations yet\n");
		return;
	}
	fprintf(f, "%5s %-3s %-12s %-10s %-9s %-20s %9s %10s %10s %10s %5s %11s"
	    "  %s\n", "ID", "DIR", "ROUTE", "PEER", "STATE", "STARTED", "ELAPSED",
	    "RAW IN", "RETURN", "WAN", "RATIO", "AVG RATE", "SOURCE -> TARGET");
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(migs, i);
		double el = cli_jdbl(m, "elapsed_s", NULL);

		fprintf(f, "%5" PRIu64 " %-3s ", cli_ju64(m, "id"),
		    cli_jstr(m, "direction"));
		cli_col(f, cli_jstr(m, "route"), 12, false);
		fputc(' ', f);
		cli_col(f, cli_jstr(m, "peer"), 10, false);
		fprintf(f, " %-9s %-20s ", cli_jstr(m, "state"),
		    cli_jstr(m, "started"));
		cli_col(f, cli_duration(el, b1, sizeof(b1)), 9, true);
		fprintf(f, " %10s %10s %10s ",
		    cli_bytes(cli_ju64(m, "bytes_in"), b2, sizeof(b2)),
		    cli_bytes(cli_ju64(m, "bytes_return"), b3, sizeof(b3)),
		    cli_bytes(cli_ju64(m, "bytes_wan"), b4, sizeof(b4)));
		cli_col(f, ratio_text(m, b5, sizeof(b5)), 5, true);
		fputc(' ', f);
		cli_col(f, cli_rate(el > 0 ? (double)cli_ju64(m, "bytes_in") / el :
		    -1, b6, sizeof(b6)), 11, true);
		fprintf(f, "  %s -> %s\n", cli_jstr(m, "source"),
		    cli_jstr(m, "target"));
		if (strcmp(cli_jstr(m, "state"), "failed") == 0)
			fprintf(f, "      error: %s\n", cli_jstr(m, "error"));
		if (json_object_object_get_ex(m, "codec", NULL))
			print_codec(f, json_object_object_get(m, "codec"));
		if (json_object_object_get_ex(m, "announce", NULL))
			print_announce(f, json_object_object_get(m, "announce"));
	}
}

void
cli_print_status(FILE *f, struct json_object *st)
{
	print_header(f, st);
	fputc('\n', f);
	cli_print_peers(f, st);
	fputc('\n', f);
	cli_print_migrations(f, st);
}

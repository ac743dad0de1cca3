/*
 * gw_metrics_fmt.c - Prometheus text exposition 0.0.4 and the HTTP request
 * line parser of the metrics endpoint (see gw_metrics_fmt.h).
 *
 * Exposition grammar, as Prometheus reads it:
 *   # HELP <name> <text>
 *   # TYPE <name> counter|gauge
 *   <name>{<label>="<value>",...} <number>
 * with every sample of a family right after its HELP/TYPE lines, label
 * values escaped (\\, \", \n), and a final newline.
 */
#include "gw_metrics_fmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wm_err.h"

static void
put_value(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '"')
			fputs("\\\"", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes "name{k="v",...} " with n label pairs from kv. */
static void
sample_head(FILE *f, const char *name, const char *const *kv, size_t n)
{
	fputs(name, f);
	if (n > 0) {
		fputc('{', f);
		for (size_t i = 0; i < n; i++) {
			fprintf(f, "%s%s=\"", i ? "," : "", kv[2 * i]);
			put_value(f, kv[2 * i + 1] != NULL ? kv[2 * i + 1] : "");
			fputc('"', f);
		}
		fputc('}', f);
	}
	fputc(' ', f);
}

static void
sample_u64(FILE *f, const char *name, const char *const *kv, size_t n,
    uint64_t v)
{
	sample_head(f, name, kv, n);
	fprintf(f, "%" PRIu64 "\n", v);
}

static void
sample_dbl(FILE *f, const char *name, const char *const *kv, size_t n,
    double v)
{
	sample_head(f, name, kv, n);
	fprintf(f, "%.9g\n", v);
}

/* One family of per-peer samples: the value is the field at offset off. */
enum peer_field { PF_UP, PF_LINKS, PF_STREAMS, PF_SENT, PF_RCVD, PF_CONN,
	PF_DISC, PF_OUTAGES, PF_RESUMES, PF_RESENT };

static uint64_t
peer_value(const struct gw_metrics_peer *p, enum peer_field fld)
{
	switch (fld) {
	case PF_UP:
		return p->connected ? 1 : 0;
	case PF_LINKS:
		return p->links;
	case PF_STREAMS:
		return p->streams;
	case PF_SENT:
		return p->bytes_sent;
	case PF_RCVD:
		return p->bytes_received;
	case PF_CONN:
		return p->connects;
	case PF_DISC:
		return p->disconnects;
	case PF_OUTAGES:
		return p->outages;
	case PF_RESUMES:
		return p->resumes;
	case PF_RESENT:
		return p->bytes_resent;
	}
	return 0;
}

static void
peer_family(FILE *f, const struct gw_metrics_snapshot *s, const char *name,
    const char *type, const char *help, enum peer_field fld)
{
	if (s->npeers == 0)
		return;
	family(f, name, type, help);
	for (size_t i = 0; i < s->npeers; i++) {
		const char *kv[] = { "peer", s->peers[i].name };

		sample_u64(f, name, kv, 1, peer_value(&s->peers[i], fld));
	}
}

enum route_field { RF_RAW, RF_RET, RF_WAN };

static void
route_family(FILE *f, const struct gw_metrics_snapshot *s, const char *name,
    const char *help, enum route_field fld)
{
	if (s->nroutes == 0)
		return;
	family(f, name, "counter", help);
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct gw_metrics_route *r = &s->routes[i];
		const char *kv[] = { "route", r->route, "peer", r->peer,
			"direction", r->direction };

		sample_u64(f, name, kv, 3, fld == RF_RAW ? r->bytes_raw :
		    fld == RF_RET ? r->bytes_return : r->bytes_wan);
	}
}

char *
gw_metrics_fmt_text(const struct gw_metrics_snapshot *s, size_t *lenp)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	bool rtt = false;

	if (f == NULL)
		return NULL;
	family(f, "wanmig_build_info", "gauge",
	    "Version of wanmigd and the site it serves (always 1).");
	{
		const char *kv[] = { "version", s->version, "site", s->site };

		sample_u64(f, "wanmig_build_info", kv, 2, 1);
	}
	family(f, "wanmig_start_time_seconds", "gauge",
	    "Unix time at which wanmigd started.");
	fprintf(f, "wanmig_start_time_seconds %.3f\n", s->start_time_s);
	family(f, "wanmig_migrations_active", "gauge",
	    "Migrations being relayed now, both directions.");
	fprintf(f, "wanmig_migrations_active %" PRIu64 "\n", s->migrations_active);

	peer_family(f, s, "wanmig_peer_up", "gauge",
	    "1 if a tunnel link to the peer is up.", PF_UP);
	for (size_t i = 0; i < s->npeers; i++)
		rtt = rtt || (s->peers[i].connected && s->peers[i].rtt_s >= 0);
	if (rtt) {
		family(f, "wanmig_peer_rtt_seconds", "gauge",
		    "Smoothed round-trip time of the peer's link (keep-alives).");
		for (size_t i = 0; i < s->npeers; i++) {
			const char *kv[] = { "peer", s->peers[i].name };

			if (s->peers[i].connected && s->peers[i].rtt_s >= 0)
				sample_dbl(f, "wanmig_peer_rtt_seconds", kv, 1,
				    s->peers[i].rtt_s);
		}
	}
	peer_family(f, s, "wanmig_peer_links", "gauge",
	    "Tunnel links to the peer that are up.", PF_LINKS);
	peer_family(f, s, "wanmig_peer_streams", "gauge",
	    "Streams open on the peer's links.", PF_STREAMS);
	peer_family(f, s, "wanmig_peer_sent_bytes_total", "counter",
	    "Tunnel bytes sent to the peer (frames, before TLS).", PF_SENT);
	peer_family(f, s, "wanmig_peer_received_bytes_total", "counter",
	    "Tunnel bytes received from the peer (frames, after TLS).", PF_RCVD);
	peer_family(f, s, "wanmig_peer_connects_total", "counter",
	    "Tunnel connections to the peer established.", PF_CONN);
	peer_family(f, s, "wanmig_peer_disconnects_total", "counter",
	    "Tunnel sessions to the peer left without a connection.", PF_DISC);
	peer_family(f, s, "wanmig_peer_outages_total", "counter",
	    "Times a session to the peer lost its last connection.", PF_OUTAGES);
	peer_family(f, s, "wanmig_peer_resumes_total", "counter",
	    "Outages that ended with the session resumed.", PF_RESUMES);
	peer_family(f, s, "wanmig_peer_resent_bytes_total", "counter",
	    "Frame bytes sent again after a lost connection.", PF_RESENT);

	if (s->nroutes > 0) {
		family(f, "wanmig_migrations_total", "counter",
		    "Finished migrations by outcome.");
		for (size_t i = 0; i < s->nroutes; i++) {
			const struct gw_metrics_route *r = &s->routes[i];
			const char *kv[] = { "route", r->route, "peer", r->peer,
				"direction", r->direction, "outcome", "completed" };

			sample_u64(f, "wanmig_migrations_total", kv, 4, r->completed);
			kv[7] = "failed";
			sample_u64(f, "wanmig_migrations_total", kv, 4, r->failed);
		}
	}
	route_family(f, s, "wanmig_route_raw_bytes_total",
	    "Migration stream bytes from the source QEMU to the destination "
	    "QEMU, running migrations included.", RF_RAW);
	route_family(f, s, "wanmig_route_return_bytes_total",
	    "Return-path bytes from the destination QEMU to the source QEMU.",
	    RF_RET);
	route_family(f, s, "wanmig_route_wan_bytes_total",
	    "Tunnel bytes of the route's migrations, both directions.", RF_WAN);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	if (lenp != NULL)
		*lenp = len;
	return text;
}

/* ---- HTTP request head ------------------------------------------------- */

/* End of the head (index after the empty line) in buf[0..len), or 0. */
static size_t
head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

int
gw_metrics_fmt_request_parse(const char *buf, size_t len, size_t max,
    struct gw_metrics_request *req)
{
	const char *p, *sp1, *sp2, *eol, *q;
	size_t end, n;

	if (len > max)
		len = max;
	end = head_end(buf, len);
	if (end == 0) {
		/* A bare empty line before the request is tolerated by RFC 9112
		 * but nobody scraping metrics sends it: refuse it. */
		if (len >= 2 && (buf[0] == '\n' || (buf[0] == '\r' && buf[1] == '\n')))
			return WM_ERR_PROTO;
		return len >= max ? WM_ERR_TOOBIG : 0;
	}
	eol = memchr(buf, '\n', end);
	if (eol == NULL || eol == buf)
		return WM_ERR_PROTO;
	n = (size_t)(eol - buf);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			return WM_ERR_PROTO;
	sp1 = memchr(buf, ' ', n);
	if (sp1 == NULL || sp1 == buf)
		return WM_ERR_PROTO;
	for (p = buf; p < sp1; p++)
		if (*p < 'A' || *p > 'Z')
			return WM_ERR_PROTO;
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - buf));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return WM_ERR_PROTO;
	if ((size_t)(buf + n - (sp2 + 1)) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 &&
	    memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return WM_ERR_PROTO;
	memset(req, 0, sizeof(*req));
	if (sp1 - buf == 3 && memcmp(buf, "GET", 3) == 0)
		req->method = GW_METRICS_GET;
	else if (sp1 - buf == 4 && memcmp(buf, "HEAD", 4) == 0)
		req->method = GW_METRICS_HEAD;
	else
		req->method = GW_METRICS_OTHER;
	p = sp1 + 1;
	/* absolute-form (http://host/path): keep the path ("/" if none). */
	if ((size_t)(sp2 - p) > 7 && memcmp(p, "http://", 7) == 0) {
		p = memchr(p + 7, '/', (size_t)(sp2 - (p + 7)));
		if (p == NULL)
			p = sp2;
	} else if (*p != '/') {
		return WM_ERR_PROTO;
	}
	for (q = p; q < sp2 && *q != '?' && *q != '#'; q++)
		;
	n = (size_t)(q - p);
	if (n >= sizeof(req->path))
		return WM_ERR_PROTO;
	memcpy(req->path, p, n);
	req->path[n] = '\0';
	if (n == 0)
		snprintf(req->path, sizeof(req->path), "/");
	req->header_len = end;
	return 1;
}

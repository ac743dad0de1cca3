/*
 * gw_metrics_fmt.h - the pure parts of the metrics endpoint: the Prometheus
 * text exposition (format 0.0.4) of a snapshot of the daemon's figures, and
 * the parser of the HTTP/1.x request that asks for it.
 *
 * No libevent, no daemon state: gw_metrics.c fills a snapshot from the
 * running daemon and serves what these functions produce; the unit tests
 * drive them directly (tests/unit/t_gw_metrics.c).
 *
 * Families written (every one with # HELP and # TYPE, labels escaped as the
 * format requires: backslash, double quote, newline):
 *
 *   wanmig_build_info{version,site}                       gauge, always 1
 *   wanmig_start_time_seconds                             gauge, Unix time
 *   wanmig_migrations_active                              gauge
 *   wanmig_peer_up{peer}                                  gauge 0/1
 *   wanmig_peer_rtt_seconds{peer}                         gauge (connected
 *                                                         peers with a
 *                                                         measured RTT only)
 *   wanmig_peer_links{peer}, wanmig_peer_streams{peer}    gauges
 *   wanmig_peer_sent_bytes_total{peer}                    counter (tunnel)
 *   wanmig_peer_received_bytes_total{peer}                counter (tunnel)
 *   wanmig_peer_connects_total{peer}                      counter
 *   wanmig_peer_disconnects_total{peer}                   counter
 *   wanmig_migrations_total{route,peer,direction,outcome} counter
 *                                                         (completed|failed)
 *   wanmig_route_raw_bytes_total{route,peer,direction}    counter: source ->
 *                                                         destination QEMU
 *   wanmig_route_return_bytes_total{route,peer,direction} counter: return path
 *   wanmig_route_wan_bytes_total{route,peer,direction}    counter: tunnel
 *                                                         bytes, both ways
 */
#ifndef WM_GATEWAY_GW_METRICS_FMT_H
#define WM_GATEWAY_GW_METRICS_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct gw_metrics_peer {
	const char *name;
	bool connected;
	double rtt_s;                   /* < 0: not measured */
	uint32_t links, streams;
	uint64_t bytes_sent, bytes_received;
	uint64_t connects, disconnects;
	uint64_t outages, resumes;      /* sessions left without / regaining
	                                   a connection */
	uint64_t bytes_resent;
};

/* Cumulative figures of the migrations of one (route, peer, direction). */
struct gw_metrics_route {
	const char *route;
	const char *peer;
	const char *direction;          /* "out" (we are the source side) or "in" */
	uint64_t completed, failed;
	uint64_t bytes_raw, bytes_return, bytes_wan;
};

struct gw_metrics_snapshot {
	const char *site;
	const char *version;
	double start_time_s;            /* Unix time the daemon started */
	uint64_t migrations_active;
	const struct gw_metrics_peer *peers;
	size_t npeers;
	const struct gw_metrics_route *routes;
	size_t nroutes;
};

/*
 * Writes the exposition of s. Returns a newly allocated NUL-terminated text
 * (caller frees) and its length in *lenp, or NULL on allocation failure.
 */
char *gw_metrics_fmt_text(const struct gw_metrics_snapshot *s, size_t *lenp);

enum gw_metrics_method {
	GW_METRICS_GET,
	GW_METRICS_HEAD,
	GW_METRICS_OTHER,               /* answered 405 */
};

struct gw_metrics_request {
	enum gw_metrics_method method;
	char path[256];                 /* without the query string */
	size_t header_len;              /* bytes up to the end of the headers */
};

/*
 * Parses an HTTP/1.0 or 1.1 request head from buf[0..len). Returns 1 with
 * *req filled when the head is complete (ends in an empty line), 0 when
 * more bytes are needed, WM_ERR_TOOBIG when no complete head fits in max
 * bytes, WM_ERR_PROTO when it is not a well-formed HTTP/1.x request line
 * (the request body, if any, is ignored: the endpoint closes after replying).
 */
int gw_metrics_fmt_request_parse(const char *buf, size_t len, size_t max,
    struct gw_metrics_request *req);

#endif

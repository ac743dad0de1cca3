/* t_gw_metrics.c - Prometheus exposition and HTTP request parsing of the
 * metrics endpoint (gateway/gw_metrics_fmt). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_metrics_fmt.h"
#include "wm_err.h"

static char *
fmt(const struct gw_metrics_snapshot *s)
{
	size_t len = 0;
	char *t = gw_metrics_fmt_text(s, &len);

	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	assert_true(len > 0 && t[len - 1] == '\n');
	return t;
}

static void
test_empty(void **state)
{
	struct gw_metrics_snapshot s = { .site = "east", .version = "0.1.0",
		.start_time_s = 1700000000.0 };
	char *t;

	(void)state;
	t = fmt(&s);
	assert_non_null(strstr(t, "# TYPE wanmig_build_info gauge\n"
	    "wanmig_build_info{version=\"0.1.0\",site=\"east\"} 1\n"));
	assert_non_null(strstr(t, "wanmig_start_time_seconds 1700000000.000\n"));
	assert_non_null(strstr(t, "# TYPE wanmig_migrations_active gauge\n"
	    "wanmig_migrations_active 0\n"));
	/* no peers, no routes: no empty families */
	assert_null(strstr(t, "wanmig_peer_"));
	assert_null(strstr(t, "wanmig_route_"));
	assert_null(strstr(t, "wanmig_migrations_total"));
	free(t);
}

static void
test_full(void **state)
{
	struct gw_metrics_peer peers[] = {
		{ .name = "west", .connected = true, .rtt_s = 0.1505, .links = 1,
		  .streams = 3, .bytes_sent = 18446744073709551615u,
		  .bytes_received = 7, .connects = 2, .disconnects = 1 },
		{ .name = "north", .connected = false, .rtt_s = -1 },
	};
	struct gw_metrics_route routes[] = {
		{ .route = "to-west", .peer = "west", .direction = "out",
		  .completed = 4, .failed = 1, .bytes_raw = 1000,
		  .bytes_return = 10, .bytes_wan = 900 },
	};
	struct gw_metrics_snapshot s = { .site = "east", .version = "0.1.0",
		.migrations_active = 2, .peers = peers, .npeers = 2,
		.routes = routes, .nroutes = 1 };
	char *t;

	(void)state;
	t = fmt(&s);
	assert_non_null(strstr(t, "# TYPE wanmig_peer_up gauge\n"
	    "wanmig_peer_up{peer=\"west\"} 1\nwanmig_peer_up{peer=\"north\"} 0\n"));
	/* RTT only where measured and connected */
	assert_non_null(strstr(t, "wanmig_peer_rtt_seconds{peer=\"west\"} 0.1505\n"));
	assert_null(strstr(t, "wanmig_peer_rtt_seconds{peer=\"north\"}"));
	assert_non_null(strstr(t, "# TYPE wanmig_peer_sent_bytes_total counter\n"
	    "wanmig_peer_sent_bytes_total{peer=\"west\"} 18446744073709551615\n"));
	assert_non_null(strstr(t, "wanmig_peer_connects_total{peer=\"west\"} 2\n"));
	assert_non_null(strstr(t, "wanmig_peer_disconnects_total{peer=\"west\"} 1\n"));
	assert_non_null(strstr(t, "wanmig_peer_streams{peer=\"west\"} 3\n"));
	assert_non_null(strstr(t, "# TYPE wanmig_migrations_total counter\n"
	    "wanmig_migrations_total{route=\"to-west\",peer=\"west\","
	    "direction=\"out\",outcome=\"completed\"} 4\n"
	    "wanmig_migrations_total{route=\"to-west\",peer=\"west\","
	    "direction=\"out\",outcome=\"failed\"} 1\n"));
	assert_non_null(strstr(t, "wanmig_route_raw_bytes_total{route=\"to-west\","
	    "peer=\"west\",direction=\"out\"} 1000\n"));
	assert_non_null(strstr(t, "wanmig_route_return_bytes_total{route=\"to-west\","
	    "peer=\"west\",direction=\"out\"} 10\n"));
	assert_non_null(strstr(t, "wanmig_route_wan_bytes_total{route=\"to-west\","
	    "peer=\"west\",direction=\"out\"} 900\n"));
	assert_non_null(strstr(t, "wanmig_migrations_active 2\n"));
	free(t);
}

/* Every family has HELP then TYPE before its samples, once; every counter
 * ends in _total; every line is a comment or "name[{...}] value". */
static void
test_well_formed(void **state)
{
	struct gw_metrics_peer peers[] = { { .name = "w", .connected = true,
		.rtt_s = 0.001 } };
	struct gw_metrics_route routes[] = { { .route = "r", .peer = "w",
		.direction = "in" } };
	struct gw_metrics_snapshot s = { .site = "s", .version = "v",
		.peers = peers, .npeers = 1, .routes = routes, .nroutes = 1 };
	char *t = fmt(&s), *save = NULL, *line, last_type[128] = "";
	char seen[4096] = " ";

	(void)state;
	for (line = strtok_r(t, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char name[128], type[32], key[140];

		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (sscanf(line, "# TYPE %127s %31s", name, type) == 2) {
			snprintf(key, sizeof(key), " %s ", name);
			assert_null(strstr(seen, key)); /* one TYPE per family */
			strncat(seen, key + 1, sizeof(seen) - strlen(seen) - 1);
			if (strcmp(type, "counter") == 0)
				assert_non_null(strstr(name, "_total"));
			else
				assert_string_equal(type, "gauge");
			snprintf(last_type, sizeof(last_type), "%s", name);
			continue;
		}
		assert_true(line[0] != '#');
		/* the sample belongs to the family declared last */
		assert_int_equal(strncmp(line, last_type, strlen(last_type)), 0);
		assert_true(line[strlen(last_type)] == '{' ||
		    line[strlen(last_type)] == ' ');
	}
	free(t);
}

static void
test_label_escape(void **state)
{
	struct gw_metrics_peer peers[] = { { .name = "a\"b\\c\nd" } };
	struct gw_metrics_snapshot s = { .site = "s", .version = "v",
		.peers = peers, .npeers = 1 };
	char *t;

	(void)state;
	t = fmt(&s);
	assert_non_null(strstr(t, "wanmig_peer_up{peer=\"a\\\"b\\\\c\\nd\"} 0\n"));
	free(t);
}

static int
req(const char *s, struct gw_metrics_request *r)
{
	return gw_metrics_fmt_request_parse(s, strlen(s), 8192, r);
}

static void
test_request(void **state)
{
	struct gw_metrics_request r;

	(void)state;
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r), 1);
	assert_int_equal(r.method, GW_METRICS_GET);
	assert_string_equal(r.path, "/metrics");
	assert_int_equal(r.header_len, strlen("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
	assert_int_equal(req("HEAD /metrics?a=b HTTP/1.0\n\n", &r), 1);
	assert_int_equal(r.method, GW_METRICS_HEAD);
	assert_string_equal(r.path, "/metrics");
	assert_int_equal(req("POST /metrics HTTP/1.1\r\n\r\nbody", &r), 1);
	assert_int_equal(r.method, GW_METRICS_OTHER);
	assert_int_equal(req("GET http://h:9780/metrics HTTP/1.1\r\n\r\n", &r), 1);
	assert_string_equal(r.path, "/metrics");
	assert_int_equal(req("GET http://h:9780 HTTP/1.1\r\n\r\n", &r), 1);
	assert_string_equal(r.path, "/");
	/* need more */
	assert_int_equal(req("", &r), 0);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\n", &r), 0);
	assert_int_equal(req("GET /metrics HTTP/1.1\r\nHost: x\r\n\r", &r), 0);
	/* malformed */
	assert_int_equal(req("BLAH\r\n\r\n", &r), WM_ERR_PROTO);
	assert_int_equal(req("get /metrics HTTP/1.1\r\n\r\n", &r), WM_ERR_PROTO);
	assert_int_equal(req("GET metrics HTTP/1.1\r\n\r\n", &r), WM_ERR_PROTO);
	assert_int_equal(req("GET /metrics HTTP/2.0\r\n\r\n", &r), WM_ERR_PROTO);
	assert_int_equal(req("GET  /metrics HTTP/1.1\r\n\r\n", &r), WM_ERR_PROTO);
	assert_int_equal(req("GET /met\trics HTTP/1.1\r\n\r\n", &r), WM_ERR_PROTO);
	assert_int_equal(req("\r\nGET /metrics HTTP/1.1\r\n\r\n", &r), WM_ERR_PROTO);
	assert_int_equal(req("GET /metrics HTTP/1.1 x\r\n\r\n", &r), WM_ERR_PROTO);
}

static void
test_request_bounds(void **state)
{
	struct gw_metrics_request r;
	char big[9000];
	char path[400];

	(void)state;
	memset(big, 'a', sizeof(big));
	assert_int_equal(gw_metrics_fmt_request_parse(big, sizeof(big), 8192, &r),
	    WM_ERR_TOOBIG);
	assert_int_equal(gw_metrics_fmt_request_parse(big, 100, 8192, &r), 0);
	/* a complete head past the bound is still too big */
	memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
	assert_int_equal(gw_metrics_fmt_request_parse(big, sizeof(big), 8192, &r),
	    WM_ERR_TOOBIG);
	/* a path longer than the buffer is refused, not cut */
	memset(path, 'p', sizeof(path));
	snprintf(big, sizeof(big), "GET /%.*s HTTP/1.1\r\n\r\n", 300, path);
	assert_int_equal(req(big, &r), WM_ERR_PROTO);
	/* every prefix of a valid request is "need more", never an error */
	{
		const char *ok = "GET /metrics HTTP/1.1\r\nA: b\r\n\r\n";

		for (size_t i = 0; i < strlen(ok); i++)
			assert_int_equal(gw_metrics_fmt_request_parse(ok, i, 8192, &r), 0);
		assert_int_equal(gw_metrics_fmt_request_parse(ok, strlen(ok), 8192, &r), 1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_well_formed),
		cmocka_unit_test(test_label_escape),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_request_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

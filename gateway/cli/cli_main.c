/*
 * cli_main.c - wanmig: the operator's command line.
 *
 *   wanmig [-c FILE | -s SOCKET] status [--json]
 *   wanmig [-c FILE | -s SOCKET] reload
 *
 * The control socket is found from the configuration file (key `control`
 * in [site]; default file /etc/wanmig/wanmig.conf) or given with -s.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "conf.h"
#include "gw_ctl_proto.h"
#include "wm_err.h"

#define CLI_DEFAULT_CONF "/etc/wanmig/wanmig.conf"
#define CLI_EXIT_USAGE 64
#define CLI_EXIT_UNAVAILABLE 69
#define CLI_EXIT_CONFIG 78

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: wanmig [-c FILE | -s SOCKET] status [--json]\n"
	    "       wanmig [-c FILE | -s SOCKET] reload\n"
	    "  -c FILE    configuration of the local gateway (default %s)\n"
	    "  -s SOCKET  control socket of the local gateway\n",
	    CLI_DEFAULT_CONF);
}

static void
conf_errcb(const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "wanmig: %s\n", msg);
}

/* Sends one request, returns the whole reply (malloc'ed) or NULL. */
static char *
ctl_call(const char *path, enum gw_ctl_cmd cmd, size_t *lenp)
{
	struct sockaddr_un sun;
	char *req = gw_ctl_request_format(cmd), *rep = NULL;
	size_t len = 0, cap = 0;
	int fd = -1;

	if (req == NULL)
		return NULL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "wanmig: socket path too long: %s\n", path);
		goto out;
	}
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		fprintf(stderr, "wanmig: cannot reach wanmigd at %s: %s\n", path,
		    strerror(errno));
		goto out;
	}
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		fprintf(stderr, "wanmig: write %s: %s\n", path, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (len + 65536 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			if (cap > GW_CTL_MAX_REPLY + 65536 ||
			    (nb = realloc(rep, cap)) == NULL) {
				fprintf(stderr, "wanmig: reply too large\n");
				free(rep);
				rep = NULL;
				goto out;
			}
			rep = nb;
		}
		n = read(fd, rep + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "wanmig: read %s: %s\n", path, strerror(errno));
			free(rep);
			rep = NULL;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (rep != NULL)
		rep[len] = '\0';
	*lenp = len;
out:
	if (fd >= 0)
		close(fd);
	free(req);
	return rep;
}

static const char *
human_bytes(uint64_t v, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "kB", "MB", "GB", "TB" };
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1000.0 && u < 4) {
		d /= 1000.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", v);
	else
		snprintf(buf, len, "%.1f %s", d, unit[u]);
	return buf;
}

static const char *
jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || v == NULL)
		return "-";
	return json_object_get_string(v);
}

static uint64_t
ju64(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || v == NULL)
		return 0;
	return json_object_get_uint64(v);
}

static double
jdbl(struct json_object *o, const char *k, bool *present)
{
	struct json_object *v;

	*present = json_object_object_get_ex(o, k, &v) && v != NULL;
	return *present ? json_object_get_double(v) : 0.0;
}

static void
print_status(struct json_object *st)
{
	struct json_object *peers, *migs, *p, *m;
	char b1[32], b2[32], b3[32];
	size_t i, n, active = 0;

	json_object_object_get_ex(st, "peers", &peers);
	json_object_object_get_ex(st, "migrations", &migs);
	n = migs ? json_object_array_length(migs) : 0;
	for (i = 0; i < n; i++)
		if (strcmp(jstr(json_object_array_get_idx(migs, i), "state"),
		    "active") == 0)
			active++;
	printf("site %s  wanmigd %s  pid %" PRIu64 "  up since %s%s\n",
	    jstr(st, "site"), jstr(st, "version"), ju64(st, "pid"),
	    jstr(st, "started"),
	    json_object_get_boolean(json_object_object_get(st, "stopping")) ?
	    "  STOPPING" : "");
	printf("migrations: %zu active, %" PRIu64 " completed, %" PRIu64
	    " failed\n\n", active, ju64(st, "migrations_completed"),
	    ju64(st, "migrations_failed"));

	printf("%-12s %-5s %9s %10s %10s %7s  %s\n", "PEER", "UP", "RTT",
	    "SENT", "RECEIVED", "STREAMS", "ADDRESS / LAST ERROR");
	n = peers ? json_object_array_length(peers) : 0;
	for (i = 0; i < n; i++) {
		bool has_rtt, up;
		double rtt;
		char rtts[32];

		p = json_object_array_get_idx(peers, i);
		up = json_object_get_boolean(json_object_object_get(p, "connected"));
		rtt = jdbl(p, "rtt_ms", &has_rtt);
		if (has_rtt)
			snprintf(rtts, sizeof(rtts), "%.1f ms", rtt);
		else
			snprintf(rtts, sizeof(rtts), "-");
		printf("%-12s %-5s %9s %10s %10s %7" PRIu64 "  %s\n",
		    jstr(p, "name"), up ? "yes" : "no", rtts,
		    human_bytes(ju64(p, "bytes_sent"), b1, sizeof(b1)),
		    human_bytes(ju64(p, "bytes_received"), b2, sizeof(b2)),
		    ju64(p, "streams"),
		    up ? jstr(p, "remote") : (json_object_object_get(p,
		    "last_error") ? jstr(p, "last_error") : jstr(p, "address")));
	}
	printf("\n");
	n = migs ? json_object_array_length(migs) : 0;
	if (n == 0) {
		printf("no migrations yet\n");
		return;
	}
	printf("%-5s %-4s %-12s %-10s %-9s %7s %9s %10s %10s  %s\n", "ID", "DIR",
	    "ROUTE", "PEER", "STATE", "STREAMS", "ELAPSED", "RAW IN", "WAN",
	    "SOURCE -> TARGET");
	for (i = 0; i < n; i++) {
		bool has;
		char streams[32], el[32];

		m = json_object_array_get_idx(migs, i);
		snprintf(streams, sizeof(streams), "%" PRIu64 "/%" PRIu64,
		    ju64(m, "streams_open"), ju64(m, "streams"));
		snprintf(el, sizeof(el), "%.1f s", jdbl(m, "elapsed_s", &has));
		printf("%-5" PRIu64 " %-4s %-12s %-10s %-9s %7s %9s %10s %10s  %s -> %s\n",
		    ju64(m, "id"), jstr(m, "direction"), jstr(m, "route"),
		    jstr(m, "peer"), jstr(m, "state"), streams, el,
		    human_bytes(ju64(m, "bytes_in"), b1, sizeof(b1)),
		    human_bytes(ju64(m, "bytes_wan"), b3, sizeof(b3)),
		    jstr(m, "source"), jstr(m, "target"));
		if (strcmp(jstr(m, "state"), "failed") == 0)
			printf("      error: %s\n", jstr(m, "error"));
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf_path = NULL, *sock = NULL, *verb;
	struct json_object *result;
	enum gw_ctl_cmd cmd;
	struct conf *c = NULL;
	bool json = false;
	char err[512], *rep;
	size_t len;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "+c:s:jh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	verb = argv[optind++];
	/* Options may also follow the verb: wanmig status --json */
	while (optind < argc) {
		if (strcmp(argv[optind], "--json") == 0 || strcmp(argv[optind], "-j") == 0) {
			json = true;
			optind++;
			continue;
		}
		fprintf(stderr, "wanmig: unexpected argument %s\n", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(verb, "status") == 0) {
		cmd = GW_CTL_STATUS;
	} else if (strcmp(verb, "reload") == 0) {
		cmd = GW_CTL_RELOAD;
	} else {
		fprintf(stderr, "wanmig: unknown command %s\n", verb);
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (sock == NULL) {
		if (conf_path == NULL)
			conf_path = CLI_DEFAULT_CONF;
		if (conf_load(conf_path, &c, conf_errcb, NULL) != 0)
			return CLI_EXIT_CONFIG;
		sock = c->site.control;
	}
	rep = ctl_call(sock, cmd, &len);
	if (rep == NULL) {
		conf_free(c);
		return CLI_EXIT_UNAVAILABLE;
	}
	rc = gw_ctl_reply_parse(rep, len, &result, err, sizeof(err));
	free(rep);
	conf_free(c);
	if (rc != 0) {
		fprintf(stderr, "wanmig: %s\n", err);
		return 1;
	}
	if (cmd == GW_CTL_STATUS) {
		if (json)
			printf("%s\n", json_object_to_json_string_ext(result,
			    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		else
			print_status(result);
	} else {
		printf("configuration reloaded\n");
	}
	json_object_put(result);
	return 0;
}

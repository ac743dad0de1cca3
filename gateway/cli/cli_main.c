/*
 * cli_main.c - wanmig: the operator's command line.
 *
 *   wanmig [-c FILE | -s SOCKET] status [--json] [--watch [-n SECS] [--count N]]
 *   wanmig [-c FILE | -s SOCKET] migrations [--json]
 *   wanmig [-c FILE | -s SOCKET] peers [--json]
 *   wanmig [-c FILE | -s SOCKET] reload
 *   wanmig [-c FILE | -s SOCKET] set peer|route NAME bandwidth RATE
 *
 * The control socket is found from the configuration file (key `control`
 * in [site]; default file /etc/wanmig/wanmig.conf) or given with -s.
 * Exit codes: 0 done, 1 the daemon refused, 64 usage, 69 the daemon cannot
 * be reached, 78 the configuration file is invalid.
 */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "conf.h"
#include "wm_err.h"

#define CLI_DEFAULT_CONF "/etc/wanmig/wanmig.conf"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: wanmig [-c FILE | -s SOCKET] status [--json] "
	    "[--watch [--interval SECS] [--count N]]\n"
	    "       wanmig [-c FILE | -s SOCKET] migrations [--json]\n"
	    "       wanmig [-c FILE | -s SOCKET] peers [--json]\n"
	    "       wanmig [-c FILE | -s SOCKET] reload\n"
	    "       wanmig [-c FILE | -s SOCKET] set peer|route NAME bandwidth "
	    "RATE\n"
	    "       wanmig --version\n"
	    "  -c FILE      configuration of the local gateway (default %s)\n"
	    "  -s SOCKET    control socket of the local gateway\n"
	    "  -j, --json   machine-readable output\n"
	    "  -w, --watch  live view, refreshed every --interval seconds "
	    "(default 1);\n"
	    "               q or Ctrl-C quits; --count N stops after N refreshes\n",
	    CLI_DEFAULT_CONF);
}

static void
conf_errcb(const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "wanmig: %s\n", msg);
}

/* Sends one request; returns the whole reply (malloc'ed, NUL-terminated). */
static char *
ctl_call(const char *path, char *req, size_t *lenp, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	char *rep = NULL;
	size_t len = 0, cap = 0, reqlen;
	int fd = -1;

	if (req == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	reqlen = strlen(req);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		goto out;
	}
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		snprintf(err, errlen, "cannot reach wanmigd at %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (write(fd, req, reqlen) != (ssize_t)reqlen) {
		snprintf(err, errlen, "write %s: %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (len + 65536 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			if (cap > GW_CTL_MAX_REPLY + 65536 ||
			    (nb = realloc(rep, cap)) == NULL) {
				snprintf(err, errlen, "reply too large");
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
			snprintf(err, errlen, "read %s: %s", path, strerror(errno));
			free(rep);
			rep = NULL;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	rep[len] = '\0';
	*lenp = len;
out:
	if (fd >= 0)
		close(fd);
	free(req);
	return rep;
}

/* Sends the request line req (consumed) and parses the reply. */
static int
request_line(const char *path, char *req, struct json_object **result,
    char *err, size_t errlen)
{
	size_t len = 0;
	char *rep = ctl_call(path, req, &len, err, errlen);
	int rc;

	*result = NULL;
	if (rep == NULL)
		return CLI_EXIT_UNAVAILABLE;
	rc = gw_ctl_reply_parse(rep, len, result, err, errlen);
	free(rep);
	if (rc == WM_ERR_PROTO)
		return CLI_EXIT_UNAVAILABLE; /* cut or garbled reply */
	return rc == 0 ? 0 : CLI_EXIT_ERROR;
}

int
cli_request(const char *path, enum gw_ctl_cmd cmd, struct json_object **result,
    char *err, size_t errlen)
{
	return request_line(path, gw_ctl_request_format(cmd), result, err,
	    errlen);
}

/* "set peer|route NAME bandwidth RATE" into a request line, or NULL. */
static char *
set_request(int argc, char **argv)
{
	struct gw_ctl_set set;

	memset(&set, 0, sizeof(set));
	if (argc != 4 || (strcmp(argv[0], "peer") != 0 &&
	    strcmp(argv[0], "route") != 0) ||
	    strcmp(argv[2], "bandwidth") != 0) {
		fprintf(stderr, "wanmig: usage: set peer|route NAME bandwidth "
		    "RATE\n");
		return NULL;
	}
	set.route = strcmp(argv[0], "route") == 0;
	if (strlen(argv[1]) >= sizeof(set.name)) {
		fprintf(stderr, "wanmig: name too long: %s\n", argv[1]);
		return NULL;
	}
	snprintf(set.name, sizeof(set.name), "%s", argv[1]);
	if (wm_rate_parse(argv[3], &set.bandwidth_bps) != 0) {
		fprintf(stderr, "wanmig: bad rate %s (e.g. 250mbit, 1gbit, "
		    "unlimited)\n", argv[3]);
		return NULL;
	}
	return gw_ctl_set_format(&set);
}

static void
print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

enum verb { V_STATUS, V_MIGRATIONS, V_PEERS, V_RELOAD, V_SET };

static int
parse_count(const char *s, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return errno != 0 || *end != '\0' || *out < 1 ? -1 : 0;
}

static int
parse_interval(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno != 0 || *end != '\0' || !(*out >= 0.1 && *out <= 3600) ?
	    -1 : 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "watch", no_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'n' },
		{ "count", required_argument, NULL, 'N' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_watch_opts wo = { .interval_s = 1.0 };
	const char *conf_path = NULL, *sock = NULL, *name;
	struct json_object *result, *arr;
	bool json = false, watch = false;
	struct conf *c = NULL;
	enum verb verb;
	char err[512], *setreq = NULL;
	int ch, rc;

	setlocale(LC_CTYPE, "");
	/* Options may come before or after the verb: wanmig status --json. */
	while ((ch = getopt_long(argc, argv, "c:s:jwn:hV", opts, NULL)) != -1) {
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
		case 'w':
			watch = true;
			break;
		case 'n':
			if (parse_interval(optarg, &wo.interval_s) != 0) {
				fprintf(stderr, "wanmig: --interval takes seconds "
				    "from 0.1 to 3600\n");
				return CLI_EXIT_USAGE;
			}
			break;
		case 'N':
			if (parse_count(optarg, &wo.count) != 0) {
				fprintf(stderr, "wanmig: --count takes a positive "
				    "number\n");
				return CLI_EXIT_USAGE;
			}
			break;
		case 'V':
			printf("wanmig %s\n", WANMIG_VERSION);
			return CLI_EXIT_OK;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc && strcmp(argv[optind], "set") == 0) {
		/* set takes arguments of its own */
		if ((setreq = set_request(argc - optind - 1, argv + optind + 1))
		    == NULL)
			return CLI_EXIT_USAGE;
		verb = V_SET;
	} else if (optind + 1 != argc) {
		if (optind < argc)
			fprintf(stderr, "wanmig: unexpected argument %s\n",
			    argv[optind + 1 < argc ? optind + 1 : optind]);
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	name = argv[optind];
	if (setreq != NULL) {
		/* verb set above */
	} else if (strcmp(name, "status") == 0) {
		verb = V_STATUS;
	} else if (strcmp(name, "migrations") == 0) {
		verb = V_MIGRATIONS;
	} else if (strcmp(name, "peers") == 0) {
		verb = V_PEERS;
	} else if (strcmp(name, "reload") == 0) {
		verb = V_RELOAD;
	} else {
		fprintf(stderr, "wanmig: unknown command %s\n", name);
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (watch && verb != V_STATUS) {
		fprintf(stderr, "wanmig: --watch goes with status\n");
		return CLI_EXIT_USAGE;
	}
	if (sock == NULL) {
		if (conf_path == NULL)
			conf_path = CLI_DEFAULT_CONF;
		if (conf_load(conf_path, &c, conf_errcb, NULL) != 0) {
			free(setreq);
			return CLI_EXIT_CONFIG;
		}
		sock = c->site.control;
	}
	if (watch) {
		wo.sock = sock;
		wo.json = json;
		rc = cli_watch(&wo);
		conf_free(c);
		return rc;
	}
	if (verb == V_SET)
		rc = request_line(sock, setreq, &result, err, sizeof(err));
	else
		rc = cli_request(sock, verb == V_RELOAD ? GW_CTL_RELOAD :
		    GW_CTL_STATUS, &result, err, sizeof(err));
	conf_free(c);
	if (rc != 0) {
		fprintf(stderr, "wanmig: %s\n", err);
		return rc;
	}
	switch (verb) {
	case V_STATUS:
		if (json)
			print_json(result);
		else
			cli_print_status(stdout, result);
		break;
	case V_MIGRATIONS:
	case V_PEERS:
		if (json) {
			arr = cli_jarr(result, verb == V_PEERS ? "peers" :
			    "migrations");
			if (arr != NULL)
				print_json(arr);
			else
				printf("[]\n");
		} else if (verb == V_PEERS) {
			cli_print_peers(stdout, result);
		} else {
			cli_print_migrations(stdout, result);
		}
		break;
	case V_RELOAD:
		printf("configuration reloaded\n");
		break;
	case V_SET:
		printf("%s %s: bandwidth %s\n", argv[optind + 1], argv[optind + 2],
		    argv[optind + 4]);
		break;
	}
	json_object_put(result);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

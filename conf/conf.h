/*
 * conf.h - the gateway's configuration file.
 *
 * INI-style: "[site]", "[peer NAME]", "[route NAME]" sections, "key = value"
 * lines, '#' or ';' starts a comment (also after a value). Every error is
 * reported as "FILE:LINE: KEY: message"; parsing goes on after an error so
 * that one run lists them all, and the result is refused at the end.
 *
 * Line-at-a-time API (conf_parse_new / _line / _finish) so that a fuzzer can
 * drive it; conf_load() reads a whole file through it.
 */
#ifndef WM_CONF_CONF_H
#define WM_CONF_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wm_util.h"

#define CONF_NAME_MAX 64 /* site, peer and route names, incl. NUL */

struct conf_site {
	char name[CONF_NAME_MAX];       /* name: required; [A-Za-z0-9._-] */
	struct wm_addr listen;          /* listen: WAN listener for peers */
	bool has_listen;
	char certificate[PATH_MAX];     /* certificate: PEM, required */
	char private_key[PATH_MAX];     /* private-key: PEM, required */
	char ca[PATH_MAX];              /* ca: PEM trust anchor(s), required */
	char control[PATH_MAX];         /* control: UNIX socket path; default
	                                   /run/wanmig/<name>.sock */
	int log_level;                  /* log-level: error|warn|info|debug (info) */
	bool syslog;                    /* syslog: yes|no (no) */
	uint64_t shutdown_timeout_ms;   /* shutdown-timeout: duration (60s) */
	uint64_t window;                /* window: per-stream flow window, size
	                                   64k..1g (8m) */
	struct wm_addr metrics;         /* metrics: Prometheus endpoint
	                                   (optional, e.g. 127.0.0.1:9780) */
	bool has_metrics;
	int line;                       /* line of the [site] header */
};

struct conf_peer {
	char name[CONF_NAME_MAX];       /* from [peer NAME] */
	struct wm_addr address;         /* address: dial here (optional) */
	bool has_address;
	struct wm_cidr *targets;        /* targets: repeatable, also
	                                   comma/space separated lists */
	size_t ntargets;
	uint64_t keepalive_ms;          /* keepalive: duration 1s..300s (5s) */
	uint64_t timeout_ms;            /* timeout: peer declared dead after
	                                   this long without traffic (20s) */
	int line;
};

struct conf_route {
	char name[CONF_NAME_MAX];       /* from [route NAME] */
	struct wm_addr listen;          /* listen: required */
	char peer[CONF_NAME_MAX];       /* peer: required, must name a [peer] */
	struct wm_addr target;          /* target: required */
	struct wm_cidr *allow;          /* allow: repeatable; required (at
	                                   least one): 0.0.0.0/0 allows all */
	size_t nallow;
	int line;
};

struct conf {
	char path[PATH_MAX];            /* the file as given */
	char dir[PATH_MAX];             /* its folder: relative paths resolve here */
	struct conf_site site;
	struct conf_peer *peers;
	size_t npeers;
	struct conf_route *routes;
	size_t nroutes;
};

/* Receives each error message ("FILE:LINE: KEY: message", no newline). */
typedef void (*conf_error_cb)(const char *msg, void *arg);

struct conf_parse;

/*
 * Starts a parse of a file named path (used for messages and to resolve
 * relative paths). errcb may be NULL (errors are then only counted).
 * Returns NULL on allocation failure.
 */
struct conf_parse *conf_parse_new(const char *path, conf_error_cb errcb,
    void *arg);
/* Feeds one line (without or with its trailing newline), numbered from 1. */
void conf_parse_line(struct conf_parse *p, const char *line, int lineno);
/*
 * Applies defaults and cross-checks (route -> peer exists, unique names and
 * listeners, required keys). On success stores a new conf in *out and
 * returns 0; otherwise returns WM_ERR_CONFIG (errors were reported) or
 * WM_ERR_NOMEM. Frees p in every case.
 */
int conf_parse_finish(struct conf_parse *p, struct conf **out);

/* Reads and parses a whole file. Same returns as conf_parse_finish, plus
 * WM_ERR_SYS (reported through errcb) if the file cannot be read. */
int conf_load(const char *path, struct conf **out, conf_error_cb errcb,
    void *arg);

/* Frees a conf; NULL is accepted. */
void conf_free(struct conf *c);

/* Looks up a peer or route by name; NULL if none. */
const struct conf_peer *conf_peer_find(const struct conf *c, const char *name);
const struct conf_route *conf_route_find(const struct conf *c, const char *name);

/* Writes the effective configuration (defaults filled in) in file syntax. */
void conf_dump(const struct conf *c, FILE *f);

#endif

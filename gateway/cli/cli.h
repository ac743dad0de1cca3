/*
 * cli.h - the wanmig CLI's internal interface (gateway/cli/ only).
 *
 * cli_main.c parses the command line and talks to the control socket;
 * cli_show.c prints the one-shot views (status, migrations, peers) and the
 * helpers they share with cli_watch.c, the live view.
 */
#ifndef WM_GATEWAY_CLI_CLI_H
#define WM_GATEWAY_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "gw_ctl_proto.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_ERROR 1       /* the daemon answered with an error */
#define CLI_EXIT_USAGE 64
#define CLI_EXIT_UNAVAILABLE 69
#define CLI_EXIT_CONFIG 78

/* cli_main.c */
/*
 * Sends one request to the daemon on the control socket path and parses the
 * reply. Returns 0 with the result (caller puts it), CLI_EXIT_UNAVAILABLE
 * when the daemon cannot be reached or the reply is cut, or CLI_EXIT_ERROR
 * when it answered an error; a message is in err in both failure cases.
 */
int cli_request(const char *path, enum gw_ctl_cmd cmd,
    struct json_object **result, char *err, size_t errlen);

/* cli_show.c */
/* Field accessors that tolerate absent or null members. */
const char *cli_jstr(struct json_object *o, const char *k);
uint64_t cli_ju64(struct json_object *o, const char *k);
double cli_jdbl(struct json_object *o, const char *k, bool *present);
bool cli_jbool(struct json_object *o, const char *k);
/* The array member k, or NULL. */
struct json_object *cli_jarr(struct json_object *o, const char *k);
/* "950 B", "1.5 MB" (powers of 1000); returns buf. */
const char *cli_bytes(uint64_t v, char *buf, size_t len);
/* "12.5 MB/s" from bytes per second; returns buf. */
const char *cli_rate(double bytes_per_s, char *buf, size_t len);
/* "1 h 02 m", "3 m 05 s", "12.3 s"; returns buf. */
const char *cli_duration(double s, char *buf, size_t len);
/* The mark for "no honest value": an em dash on UTF-8 terminals, else "-". */
const char *cli_none(void);
/* Display width of a UTF-8 string (code points; ANSI escapes count 0). */
size_t cli_width(const char *s);
/* Writes s padded with spaces to width columns (right-aligned if right). */
void cli_col(FILE *f, const char *s, size_t width, bool right);
/* The rate in force (bits/s) for a peer or migration, if the daemon
 * reports one (a shaper); false when there is none. */
bool cli_rate_limit(struct json_object *o, double *bps);

void cli_print_status(FILE *f, struct json_object *st);
void cli_print_migrations(FILE *f, struct json_object *st);
void cli_print_peers(FILE *f, struct json_object *st);

/* cli_watch.c */
struct cli_watch_opts {
	const char *sock;
	double interval_s;      /* between refreshes, >= 0.1 */
	long count;             /* refreshes before exiting; 0 = until quit */
	bool json;              /* one status document per line */
};

/* The live view; returns an exit code. */
int cli_watch(const struct cli_watch_opts *o);

/*
 * Draws a progress bar of width columns (brackets included) into buf:
 * fraction of a known total when total > 0; otherwise full when the
 * migration completed, crosses when it failed, and for a running one a
 * marker that moves with the bytes relayed (it stands still when nothing
 * flows), never a made-up fraction. Returns buf.
 */
const char *cli_watch_bar(const char *state, uint64_t bytes, uint64_t total,
    size_t width, char *buf, size_t len);

#endif

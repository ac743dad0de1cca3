/*
 * gw_ctl_proto.h - the control socket's protocol, shared by wanmigd and
 * the wanmig CLI.
 *
 * A UNIX stream socket; one request, one reply, then the daemon closes.
 * Request: one JSON object on one line, {"command": "status"}, at most
 * GW_CTL_MAX_REQUEST bytes including the newline.
 * Reply: one JSON object on one line:
 *   {"ok": true, "result": {...}}
 *   {"ok": false, "errno": N, "error": "message"}   (N = a WM_ERR_* code)
 */
#ifndef WM_GATEWAY_GW_CTL_PROTO_H
#define WM_GATEWAY_GW_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define GW_CTL_MAX_REQUEST 4096
#define GW_CTL_MAX_REPLY (8u << 20)

enum gw_ctl_cmd {
	GW_CTL_STATUS = 1,  /* peers and migrations */
	GW_CTL_RELOAD = 2,  /* re-read the config, as SIGHUP */
	GW_CTL_SET = 3,     /* change a rate at run time, see gw_ctl_set */
};

/*
 * {"command": "set", "peer": NAME, "bandwidth": "500mbit"}  the peer's rate
 * {"command": "set", "route": NAME, "bandwidth": "100mbit"} a route's cap
 * ("unlimited" or "0" lifts the limit). Takes effect at once; the next
 * reload applies the file's values again.
 */
struct gw_ctl_set {
	bool route;                 /* else peer */
	char name[64];
	uint64_t bandwidth_bps;
};

/* Parses the arguments of a "set" request (after gw_ctl_request_parse
 * said GW_CTL_SET). Returns 0 or WM_ERR_PROTO with a message in err. */
int gw_ctl_set_parse(const char *buf, size_t len, struct gw_ctl_set *set,
    char *err, size_t errlen);
/* Returns a newly allocated "set" request line, or NULL. */
char *gw_ctl_set_format(const struct gw_ctl_set *set);

/* Returns the command's name, or NULL for an unknown value. */
const char *gw_ctl_cmd_name(enum gw_ctl_cmd cmd);

/*
 * Parses one request line (the newline may be absent). Returns 0 and the
 * command, or WM_ERR_PROTO (not JSON, not an object, no "command" string,
 * unknown command, too long) with a message in err.
 */
int gw_ctl_request_parse(const char *buf, size_t len, enum gw_ctl_cmd *cmd,
    char *err, size_t errlen);

/* Returns a newly allocated request line ending in '\n', or NULL. */
char *gw_ctl_request_format(enum gw_ctl_cmd cmd);

/*
 * Returns a newly allocated reply line ending in '\n': success carrying
 * result (consumed, may be NULL for an empty object) when err == 0, else
 * the error err with message msg. NULL on allocation failure.
 */
char *gw_ctl_reply_format(struct json_object *result, int err, const char *msg);

/*
 * Parses a reply. On success returns 0 and the result object (caller
 * puts it); when the daemon reported an error returns its code (< 0) with
 * its message in err; WM_ERR_PROTO if the reply itself is malformed.
 */
int gw_ctl_reply_parse(const char *buf, size_t len, struct json_object **result,
    char *err, size_t errlen);

#endif

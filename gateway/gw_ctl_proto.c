#include "gw_ctl_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wm_err.h"
#include "wm_util.h"

static const struct {
	enum gw_ctl_cmd cmd;
	const char *name;
} commands[] = {
	{ GW_CTL_STATUS, "status" },
	{ GW_CTL_RELOAD, "reload" },
	{ GW_CTL_SET, "set" },
};

const char *
gw_ctl_cmd_name(enum gw_ctl_cmd cmd)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].cmd == cmd)
			return commands[i].name;
	return NULL;
}

/* Parses exactly len bytes as one JSON value; NULL if malformed. */
static struct json_object *
parse_json(const char *buf, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;

	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0 || len > INT32_MAX)
		return NULL;
	tok = json_tokener_new();
	if (tok == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

int
gw_ctl_request_parse(const char *buf, size_t len, enum gw_ctl_cmd *cmd,
    char *err, size_t errlen)
{
	struct json_object *req, *c;
	const char *name;
	int rc = WM_ERR_PROTO;

	if (len > GW_CTL_MAX_REQUEST) {
		snprintf(err, errlen, "request longer than %d bytes",
		    GW_CTL_MAX_REQUEST);
		return WM_ERR_PROTO;
	}
	if (memchr(buf, '\0', len) != NULL || (req = parse_json(buf, len)) == NULL) {
		snprintf(err, errlen, "request is not valid JSON");
		return WM_ERR_PROTO;
	}
	if (!json_object_is_type(req, json_type_object)) {
		snprintf(err, errlen, "request is not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(req, "command", &c) ||
	    !json_object_is_type(c, json_type_string)) {
		snprintf(err, errlen, "request has no \"command\" string");
		goto out;
	}
	name = json_object_get_string(c);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(name, commands[i].name) == 0) {
			*cmd = commands[i].cmd;
			rc = 0;
			goto out;
		}
	}
	snprintf(err, errlen, "unknown command \"%.64s\"", name);
out:
	json_object_put(req);
	return rc;
}

static char *
to_line(struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	size_t n = s ? strlen(s) : 0;
	char *line = s ? malloc(n + 2) : NULL;

	if (line != NULL) {
		memcpy(line, s, n);
		line[n] = '\n';
		line[n + 1] = '\0';
	}
	json_object_put(o);
	return line;
}

char *
gw_ctl_request_format(enum gw_ctl_cmd cmd)
{
	const char *name = gw_ctl_cmd_name(cmd);
	struct json_object *o;

	if (name == NULL || (o = json_object_new_object()) == NULL)
		return NULL;
	json_object_object_add(o, "command", json_object_new_string(name));
	return to_line(o);
}

char *
gw_ctl_reply_format(struct json_object *result, int err, const char *msg)
{
	struct json_object *o = json_object_new_object();

	if (o == NULL) {
		json_object_put(result);
		return NULL;
	}
	json_object_object_add(o, "ok", json_object_new_boolean(err == 0));
	if (err == 0) {
		json_object_object_add(o, "result",
		    result ? result : json_object_new_object());
	} else {
		json_object_put(result);
		json_object_object_add(o, "errno", json_object_new_int(err));
		json_object_object_add(o, "error",
		    json_object_new_string(msg ? msg : wm_strerror(err)));
	}
	return to_line(o);
}

int
gw_ctl_reply_parse(const char *buf, size_t len, struct json_object **result,
    char *err, size_t errlen)
{
	struct json_object *rep = parse_json(buf, len), *ok, *v;
	int rc = WM_ERR_PROTO;

	*result = NULL;
	if (rep == NULL || !json_object_is_type(rep, json_type_object) ||
	    !json_object_object_get_ex(rep, "ok", &ok) ||
	    !json_object_is_type(ok, json_type_boolean)) {
		snprintf(err, errlen, "malformed reply from the daemon");
		goto out;
	}
	if (json_object_get_boolean(ok)) {
		if (!json_object_object_get_ex(rep, "result", &v) ||
		    !json_object_is_type(v, json_type_object)) {
			snprintf(err, errlen, "reply without a result");
			goto out;
		}
		*result = json_object_get(v);
		rc = 0;
		goto out;
	}
	rc = WM_ERR_PROTO;
	if (json_object_object_get_ex(rep, "errno", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int(v) < 0)
		rc = json_object_get_int(v);
	snprintf(err, errlen, "%s",
	    json_object_object_get_ex(rep, "error", &v) &&
	    json_object_is_type(v, json_type_string) ?
	    json_object_get_string(v) : "daemon reported an error");
out:
	json_object_put(rep);
	return rc;
}

int
gw_ctl_set_parse(const char *buf, size_t len, struct gw_ctl_set *set,
    char *err, size_t errlen)
{
	struct json_object *req = parse_json(buf, len), *v;
	const char *name = NULL;
	int rc = WM_ERR_PROTO;

	memset(set, 0, sizeof(*set));
	if (req == NULL || !json_object_is_type(req, json_type_object)) {
		snprintf(err, errlen, "request is not a JSON object");
		goto out;
	}
	if (json_object_object_get_ex(req, "peer", &v) &&
	    json_object_is_type(v, json_type_string)) {
		name = json_object_get_string(v);
	} else if (json_object_object_get_ex(req, "route", &v) &&
	    json_object_is_type(v, json_type_string)) {
		name = json_object_get_string(v);
		set->route = true;
	} else {
		snprintf(err, errlen, "set needs a \"peer\" or \"route\" name");
		goto out;
	}
	if (strlen(name) == 0 || strlen(name) >= sizeof(set->name)) {
		snprintf(err, errlen, "bad name");
		goto out;
	}
	snprintf(set->name, sizeof(set->name), "%s", name);
	if (!json_object_object_get_ex(req, "bandwidth", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    wm_rate_parse(json_object_get_string(v), &set->bandwidth_bps) != 0) {
		snprintf(err, errlen, "set needs \"bandwidth\": a rate such as "
		    "500mbit, 1gbit or unlimited");
		goto out;
	}
	rc = 0;
out:
	json_object_put(req);
	return rc;
}

char *
gw_ctl_set_format(const struct gw_ctl_set *set)
{
	struct json_object *o = json_object_new_object();
	char rate[32];

	if (o == NULL)
		return NULL;
	json_object_object_add(o, "command", json_object_new_string("set"));
	json_object_object_add(o, set->route ? "route" : "peer",
	    json_object_new_string(set->name));
	json_object_object_add(o, "bandwidth", json_object_new_string(
	    wm_rate_format(set->bandwidth_bps, rate, sizeof(rate))));
	return to_line(o);
}

/* t_gw_ctl.c - the control socket protocol (gateway/gw_ctl_proto). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gw_ctl_proto.h"
#include "wm_err.h"

static int
parse(const char *s, enum gw_ctl_cmd *cmd, char *err, size_t errlen)
{
	return gw_ctl_request_parse(s, strlen(s), cmd, err, errlen);
}

static void
test_request_ok(void **state)
{
	enum gw_ctl_cmd cmd = 0;
	char err[256], *line;

	(void)state;
	assert_int_equal(parse("{\"command\":\"status\"}\n", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd, GW_CTL_STATUS);
	assert_int_equal(parse(" { \"command\" : \"reload\" } ", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd, GW_CTL_RELOAD);
	/* the formatter and the parser agree */
	line = gw_ctl_request_format(GW_CTL_STATUS);
	assert_non_null(line);
	assert_string_equal(line, "{\"command\":\"status\"}\n");
	assert_int_equal(parse(line, &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd, GW_CTL_STATUS);
	free(line);
	assert_null(gw_ctl_request_format((enum gw_ctl_cmd)99));
}

static void
expect_bad(const char *req, const char *msg)
{
	enum gw_ctl_cmd cmd;
	char err[256] = "";

	assert_int_equal(parse(req, &cmd, err, sizeof(err)), WM_ERR_PROTO);
	assert_non_null(strstr(err, msg));
}

static void
test_request_bad(void **state)
{
	char big[GW_CTL_MAX_REQUEST + 64];

	(void)state;
	expect_bad("", "not valid JSON");
	expect_bad("status\n", "not valid JSON");
	expect_bad("{\"command\":\"status\"", "not valid JSON");
	expect_bad("{\"command\":\"status\"} {}", "not valid JSON");
	expect_bad("[\"status\"]", "not a JSON object");
	expect_bad("{}", "no \"command\" string");
	expect_bad("{\"command\":7}", "no \"command\" string");
	expect_bad("{\"command\":\"format-disks\"}", "unknown command \"format-disks\"");
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"command\":\"status\"", 19);
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = '\0';
	expect_bad(big, "longer than");
}

static void
test_reply(void **state)
{
	struct json_object *res = json_object_new_object(), *got, *v;
	char err[256], *line;

	(void)state;
	json_object_object_add(res, "site", json_object_new_string("east"));
	line = gw_ctl_reply_format(res, 0, NULL);
	assert_non_null(line);
	assert_int_equal(line[strlen(line) - 1], '\n');
	assert_null(strchr(line, '\n') == line + strlen(line) - 1 ? NULL : line);
	assert_int_equal(gw_ctl_reply_parse(line, strlen(line), &got, err, sizeof(err)), 0);
	assert_true(json_object_object_get_ex(got, "site", &v));
	assert_string_equal(json_object_get_string(v), "east");
	json_object_put(got);
	free(line);

	line = gw_ctl_reply_format(NULL, WM_ERR_CONFIG, "bad file");
	assert_int_equal(gw_ctl_reply_parse(line, strlen(line), &got, err, sizeof(err)),
	    WM_ERR_CONFIG);
	assert_null(got);
	assert_string_equal(err, "bad file");
	free(line);

	assert_int_equal(gw_ctl_reply_parse("nonsense", 8, &got, err, sizeof(err)),
	    WM_ERR_PROTO);
	assert_int_equal(gw_ctl_reply_parse("{\"ok\":true}", 11, &got, err, sizeof(err)),
	    WM_ERR_PROTO);
	assert_int_equal(gw_ctl_reply_parse("{\"ok\":\"yes\"}", 12, &got, err, sizeof(err)),
	    WM_ERR_PROTO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_ok),
		cmocka_unit_test(test_request_bad),
		cmocka_unit_test(test_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

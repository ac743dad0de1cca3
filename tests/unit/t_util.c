/* t_util.c - address, prefix, size and duration parsing (common/wm_util). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "wm_err.h"
#include "wm_util.h"

static void
test_addr(void **state)
{
	struct wm_addr a;
	char buf[WM_ADDRSTRLEN];

	(void)state;
	assert_int_equal(wm_addr_parse("10.1.2.3:4444", &a), 0);
	assert_string_equal(wm_addr_format((struct sockaddr *)&a.ss, buf,
	    sizeof(buf)), "10.1.2.3:4444");
	assert_int_equal(wm_addr_parse("[fd00::1]:80", &a), 0);
	assert_string_equal(wm_addr_format((struct sockaddr *)&a.ss, buf,
	    sizeof(buf)), "[fd00::1]:80");
	assert_int_equal(wm_addr_parse("*:7800", &a), 0);
	assert_string_equal(wm_addr_format((struct sockaddr *)&a.ss, buf,
	    sizeof(buf)), "0.0.0.0:7800");
	assert_int_equal(wm_addr_parse("10.1.2.3", &a), WM_ERR_INVAL);
	assert_int_equal(wm_addr_parse("10.1.2.3:0", &a), WM_ERR_INVAL);
	assert_int_equal(wm_addr_parse("10.1.2.3:65536", &a), WM_ERR_INVAL);
	assert_int_equal(wm_addr_parse("10.1.2.3:80x", &a), WM_ERR_INVAL);
	assert_int_equal(wm_addr_parse("host.example:80", &a), WM_ERR_INVAL);
	assert_int_equal(wm_addr_parse("fd00::1:80", &a), WM_ERR_INVAL);
	assert_int_equal(wm_addr_parse("[fd00::1]80", &a), WM_ERR_INVAL);
	assert_int_equal(wm_addr_parse(":80", &a), WM_ERR_INVAL);
}

static void
test_cidr(void **state)
{
	struct wm_cidr c;
	struct wm_addr a;
	char buf[64];

	(void)state;
	assert_int_equal(wm_cidr_parse("10.1.0.0/16", &c), 0);
	assert_string_equal(wm_cidr_format(&c, buf, sizeof(buf)), "10.1.0.0/16");
	assert_int_equal(wm_addr_parse("10.1.200.7:1", &a), 0);
	assert_true(wm_cidr_match(&c, (struct sockaddr *)&a.ss));
	assert_int_equal(wm_addr_parse("10.2.0.1:1", &a), 0);
	assert_false(wm_cidr_match(&c, (struct sockaddr *)&a.ss));
	/* v4-mapped v6 addresses match v4 prefixes */
	assert_int_equal(wm_addr_parse("[::ffff:10.1.3.4]:1", &a), 0);
	assert_true(wm_cidr_match(&c, (struct sockaddr *)&a.ss));
	/* odd prefix lengths */
	assert_int_equal(wm_cidr_parse("10.98.1.8/29", &c), 0);
	assert_int_equal(wm_addr_parse("10.98.1.15:1", &a), 0);
	assert_true(wm_cidr_match(&c, (struct sockaddr *)&a.ss));
	assert_int_equal(wm_addr_parse("10.98.1.16:1", &a), 0);
	assert_false(wm_cidr_match(&c, (struct sockaddr *)&a.ss));
	assert_int_equal(wm_cidr_parse("0.0.0.0/0", &c), 0);
	assert_true(wm_cidr_match(&c, (struct sockaddr *)&a.ss));
	assert_int_equal(wm_cidr_parse("10.98.1.16", &c), 0);
	assert_int_equal(c.prefix, 32);
	assert_true(wm_cidr_match(&c, (struct sockaddr *)&a.ss));
	assert_int_equal(wm_cidr_parse("fd00::/8", &c), 0);
	assert_false(wm_cidr_match(&c, (struct sockaddr *)&a.ss));
	/* host bits set, bad lengths, garbage */
	assert_int_equal(wm_cidr_parse("10.1.2.3/8", &c), WM_ERR_INVAL);
	assert_int_equal(wm_cidr_parse("10.0.0.0/33", &c), WM_ERR_INVAL);
	assert_int_equal(wm_cidr_parse("10.0.0.0/", &c), WM_ERR_INVAL);
	assert_int_equal(wm_cidr_parse("10.0.0.0/-1", &c), WM_ERR_INVAL);
	assert_int_equal(wm_cidr_parse("fd00::/129", &c), WM_ERR_INVAL);
	assert_int_equal(wm_cidr_parse("nonsense", &c), WM_ERR_INVAL);
}

static void
test_size_duration(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(wm_size_parse("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(wm_size_parse("64k", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(wm_size_parse("8M", &v), 0);
	assert_int_equal(v, 8u << 20);
	assert_int_equal(wm_size_parse("1g", &v), 0);
	assert_int_equal(v, 1u << 30);
	assert_int_equal(wm_size_parse("1t", &v), WM_ERR_INVAL);
	assert_int_equal(wm_size_parse("-1", &v), WM_ERR_INVAL);
	assert_int_equal(wm_size_parse("99999999999999999999", &v), WM_ERR_INVAL);
	assert_int_equal(wm_size_parse("18446744073709551615g", &v), WM_ERR_INVAL);
	assert_int_equal(wm_duration_parse("30", &v), 0);
	assert_int_equal(v, 30000);
	assert_int_equal(wm_duration_parse("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(wm_duration_parse("2m", &v), 0);
	assert_int_equal(v, 120000);
	assert_int_equal(wm_duration_parse("5 s", &v), WM_ERR_INVAL);
	assert_int_equal(wm_duration_parse("s", &v), WM_ERR_INVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_size_duration),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

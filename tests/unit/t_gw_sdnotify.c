/* t_gw_sdnotify.c - the sd_notify protocol without libsystemd
 * (gateway/gw_sdnotify): address forms, delivery, watchdog variables. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gw_sdnotify.h"
#include "wm_err.h"

static void
test_addr(void **state)
{
	struct sockaddr_un sun;
	socklen_t len;
	char longp[200];

	(void)state;
	assert_int_equal(gw_sdnotify_addr("/run/systemd/notify", &sun, &len), 0);
	assert_string_equal(sun.sun_path, "/run/systemd/notify");
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 20);
	/* abstract: leading NUL, length counts the name exactly */
	assert_int_equal(gw_sdnotify_addr("@wm/x", &sun, &len), 0);
	assert_int_equal(sun.sun_path[0], '\0');
	assert_memory_equal(sun.sun_path + 1, "wm/x", 4);
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 5);
	assert_int_equal(gw_sdnotify_addr("", &sun, &len), WM_ERR_INVAL);
	assert_int_equal(gw_sdnotify_addr("@", &sun, &len), WM_ERR_INVAL);
	assert_int_equal(gw_sdnotify_addr("relative", &sun, &len), WM_ERR_INVAL);
	assert_int_equal(gw_sdnotify_addr("vsock:2:1234", &sun, &len), WM_ERR_INVAL);
	assert_int_equal(gw_sdnotify_addr(NULL, &sun, &len), WM_ERR_INVAL);
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[sizeof(sun.sun_path)] = '\0'; /* no room for the NUL */
	assert_int_equal(gw_sdnotify_addr(longp, &sun, &len), WM_ERR_INVAL);
	longp[0] = '@'; /* abstract needs no NUL: fits exactly */
	assert_int_equal(gw_sdnotify_addr(longp, &sun, &len), 0);
	longp[sizeof(sun.sun_path)] = 'a';
	longp[sizeof(sun.sun_path) + 1] = '\0';
	assert_int_equal(gw_sdnotify_addr(longp, &sun, &len), WM_ERR_INVAL);
}

/* Binds a datagram socket at value (path or @abstract); returns its fd. */
static int
listener(const char *value)
{
	struct sockaddr_un sun;
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(gw_sdnotify_addr(value, &sun, &len), 0);
	if (value[0] == '/')
		unlink(value);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, len), 0);
	return fd;
}

static void
expect_msg(int fd, const char *want)
{
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void
test_send(void **state)
{
	char abs[64], path[64];
	int fd;

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(gw_sdnotify_send("READY=1"), 0); /* not under systemd */

	snprintf(abs, sizeof(abs), "@wm-t-sdnotify-%ld", (long)getpid());
	fd = listener(abs);
	setenv("NOTIFY_SOCKET", abs, 1);
	assert_int_equal(gw_sdnotify_send("READY=1\nSTATUS=up"), 1);
	expect_msg(fd, "READY=1\nSTATUS=up");
	close(fd);

	snprintf(path, sizeof(path), "/tmp/wm-t-sdnotify-%ld", (long)getpid());
	fd = listener(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(gw_sdnotify_send("STOPPING=1"), 1);
	expect_msg(fd, "STOPPING=1");
	close(fd);
	unlink(path);
	/* nobody listening any more */
	assert_int_equal(gw_sdnotify_send("STOPPING=1"), WM_ERR_SYS);
	setenv("NOTIFY_SOCKET", "vsock:1:2", 1);
	assert_int_equal(gw_sdnotify_send("READY=1"), WM_ERR_INVAL);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_watchdog(void **state)
{
	(void)state;
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(gw_sdnotify_watchdog_usec(42), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(gw_sdnotify_watchdog_usec(42), 30000000);
	setenv("WATCHDOG_PID", "42", 1);
	assert_int_equal(gw_sdnotify_watchdog_usec(42), 30000000);
	assert_int_equal(gw_sdnotify_watchdog_usec(43), 0); /* for another pid */
	setenv("WATCHDOG_PID", "4x", 1);
	assert_int_equal(gw_sdnotify_watchdog_usec(42), 0);
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "-5", 1);
	assert_int_equal(gw_sdnotify_watchdog_usec(42), 0);
	setenv("WATCHDOG_USEC", "12abc", 1);
	assert_int_equal(gw_sdnotify_watchdog_usec(42), 0);
	unsetenv("WATCHDOG_USEC");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_send),
		cmocka_unit_test(test_watchdog),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * gw_sdnotify.c - sd_notify(3) protocol (see gw_sdnotify.h).
 *
 * One datagram per message, on a socket opened for it: the manager reads
 * the sender's credentials from it (NotifyAccess=main checks the pid), and
 * the daemon sends a handful of messages in its life.
 */
#include "gw_sdnotify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wm_err.h"

int
gw_sdnotify_addr(const char *value, struct sockaddr_un *sun, socklen_t *lenp)
{
	size_t n;

	if (value == NULL || (value[0] != '/' && value[0] != '@'))
		return WM_ERR_INVAL;
	n = strlen(value);
	if (n < 2 || n > sizeof(sun->sun_path) ||
	    (value[0] == '/' && n == sizeof(sun->sun_path)))
		return WM_ERR_INVAL;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, value, n);
	if (value[0] == '@') {
		sun->sun_path[0] = '\0';
		*lenp = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		*lenp = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

int
gw_sdnotify_send(const char *msg)
{
	const char *value = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	ssize_t n;
	int fd, rc, saved;

	if (value == NULL || value[0] == '\0')
		return 0;
	rc = gw_sdnotify_addr(value, &sun, &len);
	if (rc != 0)
		return rc;
	/* Non-blocking: a full manager queue must not stall the event loop;
	 * a notification lost then is only a status line. */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return WM_ERR_SYS;
	do {
		n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
		    (const struct sockaddr *)&sun, len);
	} while (n < 0 && errno == EINTR);
	saved = errno;
	close(fd);
	if (n < 0) {
		errno = saved;
		return WM_ERR_SYS;
	}
	return (size_t)n == strlen(msg) ? 1 : WM_ERR_SYS;
}

uint64_t
gw_sdnotify_watchdog_usec(long pid)
{
	const char *us = getenv("WATCHDOG_USEC"), *wp = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (us == NULL || *us == '\0')
		return 0;
	if (wp != NULL && *wp != '\0') {
		errno = 0;
		long p = strtol(wp, &end, 10);

		if (errno != 0 || *end != '\0' || p != pid)
			return 0;
	}
	errno = 0;
	v = strtoull(us, &end, 10);
	if (errno != 0 || *end != '\0' || us[0] == '-')
		return 0;
	return (uint64_t)v;
}

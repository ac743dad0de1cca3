#include "wm_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static enum wm_log_level log_level = WM_LOG_INFO;
static bool log_syslog;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
wm_log_init(const char *ident, enum wm_log_level level, bool use_syslog)
{
	log_level = level;
	if (use_syslog && !log_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (!use_syslog && log_syslog)
		closelog();
	log_syslog = use_syslog;
}

void
wm_log_set_level(enum wm_log_level level)
{
	log_level = level;
}

enum wm_log_level
wm_log_get_level(void)
{
	return log_level;
}

int
wm_log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void
wm_log(enum wm_log_level level, bool with_errno, const char *func,
    const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[1024];
	int saved = errno;
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		if (with_errno)
			syslog(prio[level], "%s: %s: %s", func, msg, strerror(saved));
		else
			syslog(prio[level], "%s: %s", func, msg);
	} else {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		if (with_errno)
			fprintf(stderr, "%s.%03ldZ %s %s: %s: %s\n", stamp,
			    ts.tv_nsec / 1000000, level_names[level], func, msg,
			    strerror(saved));
		else
			fprintf(stderr, "%s.%03ldZ %s %s: %s\n", stamp,
			    ts.tv_nsec / 1000000, level_names[level], func, msg);
	}
	errno = saved;
}

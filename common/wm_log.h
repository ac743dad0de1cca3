/*
 * wm_log.h - leveled logging to stderr or syslog.
 *
 * Only gateway/ logs above debug; libraries return codes. Messages start
 * with the calling function's name (the macros add it). log_warn appends
 * strerror(errno), log_warnx does not.
 */
#ifndef WM_COMMON_WM_LOG_H
#define WM_COMMON_WM_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum wm_log_level {
	WM_LOG_ERROR = 0,
	WM_LOG_WARN = 1,
	WM_LOG_INFO = 2,
	WM_LOG_DEBUG = 3,
};

/* Sets the threshold and the sink; ident names the program in syslog. */
void wm_log_init(const char *ident, enum wm_log_level level, bool use_syslog);
void wm_log_set_level(enum wm_log_level level);
enum wm_log_level wm_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int wm_log_level_parse(const char *s);

void wm_log(enum wm_log_level level, bool with_errno, const char *func,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define wm_log_enabled(lvl) ((lvl) <= wm_log_get_level())
#define log_errx(...) wm_log(WM_LOG_ERROR, false, __func__, __VA_ARGS__)
#define log_err(...) wm_log(WM_LOG_ERROR, true, __func__, __VA_ARGS__)
#define log_warnx(...) wm_log(WM_LOG_WARN, false, __func__, __VA_ARGS__)
#define log_warn(...) wm_log(WM_LOG_WARN, true, __func__, __VA_ARGS__)
#define log_info(...) wm_log(WM_LOG_INFO, false, __func__, __VA_ARGS__)
#define log_debug(...)                                                 \
	do {                                                           \
		if (wm_log_enabled(WM_LOG_DEBUG))                      \
			wm_log(WM_LOG_DEBUG, false, __func__, __VA_ARGS__); \
	} while (0)

#endif

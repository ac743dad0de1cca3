/*
 * wm_err.h - one negative error space for the whole project.
 *
 * 0 means success, a negative WM_ERR_* value a failure; lengths and objects
 * travel through out-parameters. wm_strerror() never returns NULL.
 */
#ifndef WM_COMMON_WM_ERR_H
#define WM_COMMON_WM_ERR_H

#define WM_ERR_TABLE(X)                                                    \
	X(WM_OK, 0, "success")                                             \
	X(WM_ERR_NOMEM, -1, "out of memory")                               \
	X(WM_ERR_INVAL, -2, "invalid argument")                            \
	X(WM_ERR_SYS, -3, "system call failed (see errno)")                \
	X(WM_ERR_CONFIG, -4, "configuration error")                        \
	X(WM_ERR_PROTO, -5, "protocol violation")                          \
	X(WM_ERR_TOOBIG, -6, "length exceeds bound")                       \
	X(WM_ERR_TLS, -7, "TLS failure")                                   \
	X(WM_ERR_PEER, -8, "peer identity rejected")                       \
	X(WM_ERR_DENIED, -9, "not permitted by configuration")             \
	X(WM_ERR_NOTFOUND, -10, "not found")                               \
	X(WM_ERR_LIMIT, -11, "configured limit reached")                   \
	X(WM_ERR_CLOSED, -12, "connection closed")                         \
	X(WM_ERR_TIMEOUT, -13, "timed out")

enum wm_err {
#define WM_ERR_ENUM(name, value, text) name = value,
	WM_ERR_TABLE(WM_ERR_ENUM)
#undef WM_ERR_ENUM
};

/* Returns a static, human-readable string for a WM_ERR_* code. */
const char *wm_strerror(int err);

#endif

/*
 * gw_sdnotify.h - the systemd notification protocol, without libsystemd.
 *
 * A service of Type=notify tells the manager that it is ready (READY=1),
 * reloading (RELOADING=1), stopping (STOPPING=1), what it is doing
 * (STATUS=text) and that it is alive (WATCHDOG=1) by sending datagrams of
 * "KEY=VALUE\n" lines to the AF_UNIX socket named in $NOTIFY_SOCKET: a path,
 * or an abstract-namespace name written with a leading '@'. Nothing here
 * depends on the daemon or libevent.
 */
#ifndef WM_GATEWAY_GW_SDNOTIFY_H
#define WM_GATEWAY_GW_SDNOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/*
 * Turns the value of $NOTIFY_SOCKET into a socket address. '@' at the start
 * means the abstract namespace (the address then starts with a NUL byte and
 * its length counts exactly the name). Returns 0, or WM_ERR_INVAL for an
 * empty value, one that is neither absolute nor abstract (e.g. "vsock:"),
 * or one too long for sun_path.
 */
int gw_sdnotify_addr(const char *value, struct sockaddr_un *sun,
    socklen_t *lenp);

/*
 * Sends msg (one or more "KEY=VALUE" lines) to the manager named by
 * $NOTIFY_SOCKET. Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset (not
 * under systemd: nothing to do), or a WM_ERR_* code (WM_ERR_SYS with errno
 * set when the send failed).
 */
int gw_sdnotify_send(const char *msg);

/*
 * The watchdog period requested by the manager: $WATCHDOG_USEC in
 * microseconds, honoured only when $WATCHDOG_PID is unset or names pid.
 * Returns 0 when no watchdog is asked for (or the values are malformed).
 */
uint64_t gw_sdnotify_watchdog_usec(long pid);

#endif

/*
 * gw_main.c - wanmigd: the site gateway daemon.
 *
 *   wanmigd -c FILE [--log-level L] [--syslog]   run in the foreground
 *   wanmigd --check-config FILE                  validate, do not start
 *   wanmigd --dump-config FILE                   print the effective config
 *
 * SIGTERM/SIGINT: stop accepting, let running migrations finish for up to
 * shutdown-timeout, then cut what is left (fail closed) and exit; a second
 * signal cuts at once. SIGHUP: re-read the configuration; running
 * migrations go on, an invalid file changes nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "cr_tls.h"
#include "gw.h"
#include "wm_err.h"
#include "wm_log.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: wanmigd -c FILE [--log-level error|warn|info|debug] [--syslog]\n"
	    "       wanmigd --check-config FILE\n"
	    "       wanmigd --dump-config FILE\n"
	    "       wanmigd --version\n");
}

static void
conf_errcb(const char *msg, void *arg)
{
	(void)arg;
	log_errx("%s", msg);
}

static void
print_errcb(const char *msg, void *arg)
{
	fprintf(arg, "%s\n", msg);
}

void
gw_tune_tcp(evutil_socket_t fd)
{
	int one = 1;

	if (fd < 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

void
gw_tune_wan(evutil_socket_t fd, int congestion)
{
	static bool warned;
	const char *name = congestion == CONF_CC_BBR ? "bbr" :
	    congestion == CONF_CC_CUBIC ? "cubic" : NULL;

	if (fd < 0 || name == NULL)
		return;
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name,
	    (socklen_t)strlen(name)) != 0 && !warned) {
		warned = true;
		log_warn("congestion control %s not available; using the "
		    "system default", name);
	}
}

static struct gw *guard_gw; /* the daemon's one gw, for the guard below */

static void
listen_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct gw *gw = arg;
	struct gw_route *r;
	struct evconnlistener *m = gw_metrics_listener(gw);

	(void)fd;
	(void)what;
	/* Only the listeners that exist now: none is left dangling. */
	if (gw->wan_lev != NULL)
		evconnlistener_enable(gw->wan_lev);
	if (gw->ctl_lev != NULL)
		evconnlistener_enable(gw->ctl_lev);
	if (m != NULL)
		evconnlistener_enable(m);
	if (!gw->stopping)
		TAILQ_FOREACH(r, &gw->routes, entry)
			if (r->lev != NULL)
				evconnlistener_enable(r->lev);
}

static void
listener_errorcb(struct evconnlistener *lev, void *arg)
{
	struct gw *gw = guard_gw;
	struct timeval sec = { 1, 0 };

	(void)arg;
	log_warn("accept failed; pausing this listener for 1 s");
	evconnlistener_disable(lev);
	if (gw != NULL && gw->listen_timer != NULL &&
	    !evtimer_pending(gw->listen_timer, NULL))
		evtimer_add(gw->listen_timer, &sec);
}

void
gw_listener_guard(struct gw *gw, struct evconnlistener *lev)
{
	guard_gw = gw;
	evconnlistener_set_error_cb(lev, listener_errorcb);
}

static SSL_CTX *
tls_from_conf(const struct conf *c, char *err, size_t errlen)
{
	return cr_tls_ctx_new(c->site.name, c->site.certificate,
	    c->site.private_key, c->site.ca, err, errlen);
}

int
gw_reload(struct gw *gw)
{
	struct conf *nc;
	SSL_CTX *tls;
	char err[CR_ERR_LEN];

	log_info("reloading %s", gw->conf_path);
	if (conf_load(gw->conf_path, &nc, conf_errcb, NULL) != 0) {
		log_errx("reload rejected: %s is invalid; the previous "
		    "configuration stays in force", gw->conf_path);
		return -1;
	}
	if (strcmp(nc->site.name, gw->conf->site.name) != 0) {
		log_errx("reload rejected: the site name cannot change at run "
		    "time (restart the daemon)");
		conf_free(nc);
		return -1;
	}
	tls = tls_from_conf(nc, err, sizeof(err));
	if (tls == NULL) {
		log_errx("reload rejected: %s", err);
		conf_free(nc);
		return -1;
	}
	SSL_CTX_free(gw->tls); /* live connections hold their own reference */
	gw->tls = tls;
	conf_free(gw->conf);
	gw->conf = nc;
	if (!gw->stopping)
		wm_log_init("wanmigd", (enum wm_log_level)nc->site.log_level,
		    nc->site.syslog);
	/* Listener failures are logged; what could be bound keeps working. */
	gw_ctl_listen(gw);
	gw_metrics_listen(gw);
	if (!gw->stopping) {
		gw_wan_listen(gw);
		gw_routes_apply(gw);
	}
	gw_peers_apply(gw);
	log_info("configuration reloaded: %zu peers, %zu routes",
	    nc->npeers, nc->nroutes);
	return 0;
}

/* ---- stopping ---------------------------------------------------------- */

static void
stop_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct gw *gw = arg;
	size_t n = gw_mig_active_count(gw);

	(void)fd;
	(void)what;
	if (n == 0) {
		log_info("no migration left; exiting");
		event_base_loopexit(gw->base, NULL);
		return;
	}
	if (wm_now_ms() >= gw->stop_deadline_ms) {
		log_warnx("shutdown timeout: cutting %zu running migration%s", n,
		    n == 1 ? "" : "s");
		gw_mig_abort_all(gw, "gateway shut down");
		gw->exit_code = GW_EXIT_FORCED;
		event_base_loopexit(gw->base, NULL);
	}
}

static void
sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct gw *gw = arg;
	struct timeval tv = { 0, 200000 };

	(void)what;
	if (gw->stopping) {
		log_warnx("second %s: stopping now", strsignal((int)sig));
		gw->stop_deadline_ms = 0;
		stop_timercb(-1, 0, gw);
		return;
	}
	gw->stopping = true;
	gw_notify_stopping(gw);
	gw->stop_deadline_ms = wm_now_ms() + gw->conf->site.shutdown_timeout_ms;
	log_info("%s: no new migrations; waiting up to %" PRIu64 " s for %zu "
	    "running", strsignal((int)sig),
	    gw->conf->site.shutdown_timeout_ms / 1000, gw_mig_active_count(gw));
	gw_routes_free(gw);
	gw->stop_timer = event_new(gw->base, -1, EV_PERSIST, stop_timercb, gw);
	if (gw->stop_timer != NULL)
		event_add(gw->stop_timer, &tv);
	stop_timercb(-1, 0, gw);
}

static void
rate_timercb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gw_rates_tick(arg);
}

static void
sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	gw_notify_reloading(arg);
	gw_reload(arg);
	gw_notify_ready(arg);
}

/* ---- main -------------------------------------------------------------- */

static int
check_config(const char *path, bool dump)
{
	struct conf *c;
	SSL_CTX *tls;
	char err[CR_ERR_LEN];

	if (conf_load(path, &c, print_errcb, stderr) != 0) {
		fprintf(stderr, "%s: configuration invalid\n", path);
		return GW_EXIT_CONFIG;
	}
	tls = tls_from_conf(c, err, sizeof(err));
	if (tls == NULL) {
		fprintf(stderr, "%s: %s\n", path, err);
		conf_free(c);
		return GW_EXIT_CONFIG;
	}
	SSL_CTX_free(tls);
	if (dump)
		conf_dump(c, stdout);
	else
		printf("%s: configuration OK (site %s, %zu peers, %zu routes)\n",
		    path, c->site.name, c->npeers, c->nroutes);
	conf_free(c);
	return GW_EXIT_OK;
}

static void
gw_free(struct gw *gw)
{
	gw->stopping = true;
	gw_routes_free(gw);
	gw_migs_free(gw);
	gw_peers_free(gw);
	gw_ctl_close(gw);
	if (gw->stop_timer != NULL)
		event_free(gw->stop_timer);
	if (gw->rate_timer != NULL)
		event_free(gw->rate_timer);
	if (gw->listen_timer != NULL)
		event_free(gw->listen_timer);
	/* Let deferred callbacks and link reapers run before the base goes. */
	event_base_loop(gw->base, EVLOOP_NONBLOCK);
	event_base_loop(gw->base, EVLOOP_NONBLOCK);
	/* After the reapers: a migration finishing there still counts. */
	gw_metrics_close(gw);
	gw_notify_free(gw);
	SSL_CTX_free(gw->tls);
	conf_free(gw->conf);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'n' },
		{ "dump-config", required_argument, NULL, 'T' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "syslog", no_argument, NULL, 's' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gw gw;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_hup = NULL;
	const char *path = NULL;
	int level = -1, ch, rc;
	bool use_syslog = false;

	while ((ch = getopt_long(argc, argv, "c:l:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			return check_config(optarg, false);
		case 'T':
			return check_config(optarg, true);
		case 'l':
			level = wm_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "wanmigd: unknown log level %s\n", optarg);
				return GW_EXIT_USAGE;
			}
			break;
		case 's':
			use_syslog = true;
			break;
		case 'V':
			printf("wanmigd %s\n", WANMIG_VERSION);
			return GW_EXIT_OK;
		case 'h':
			usage(stdout);
			return GW_EXIT_OK;
		default:
			usage(stderr);
			return GW_EXIT_USAGE;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return GW_EXIT_USAGE;
	}

	memset(&gw, 0, sizeof(gw));
	TAILQ_INIT(&gw.peers);
	TAILQ_INIT(&gw.pending);
	TAILQ_INIT(&gw.routes);
	TAILQ_INIT(&gw.migs);
	gw.started_wall = time(NULL);
	snprintf(gw.conf_path, sizeof(gw.conf_path), "%s", path);
	wm_log_init("wanmigd", level >= 0 ? (enum wm_log_level)level : WM_LOG_INFO,
	    use_syslog);
	if (conf_load(path, &gw.conf, conf_errcb, NULL) != 0) {
		log_errx("%s: configuration invalid; not starting", path);
		return GW_EXIT_CONFIG;
	}
	if (level < 0)
		level = gw.conf->site.log_level;
	wm_log_init("wanmigd", (enum wm_log_level)level,
	    use_syslog || gw.conf->site.syslog);
	{
		char err[CR_ERR_LEN];

		gw.tls = tls_from_conf(gw.conf, err, sizeof(err));
		if (gw.tls == NULL) {
			log_errx("%s; not starting", err);
			conf_free(gw.conf);
			return GW_EXIT_CONFIG;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	/* Coarse timers, not precise ones: with EVENT_BASE_FLAG_PRECISE_TIMER
	 * libevent re-arms a timerfd on every pass of the loop, a system call
	 * per pass that cost 3 % of the daemon's CPU at 1 Gbit/s. Without it
	 * a timer fires on epoll_wait's millisecond timeout, as the kernel's
	 * coarse monotonic clock sees it (a tick, 4 ms at HZ=250). Nothing
	 * needs finer: the shaper keeps the tokens that accrue while a sender
	 * waits, so a late wake-up costs a burst of one tick's worth of the
	 * rate (500 KB at a shaped 1 Gbit/s, inside the bucket's 20 ms), not
	 * rate; the other timers are 20 ms and up, or 2 ms flushes that a few
	 * milliseconds more do not matter to on a WAN. */
	gw.base = event_base_new();
	if (gw.base == NULL) {
		log_errx("cannot create the event loop");
		return GW_EXIT_SOFTWARE;
	}
	gw.listen_timer = evtimer_new(gw.base, listen_timercb, &gw);
	rc = GW_EXIT_UNAVAILABLE;
	if (gw.listen_timer == NULL || gw_ctl_listen(&gw) != 0 || gw_wan_listen(&gw) != 0 ||
	    gw_routes_apply(&gw) != 0 || gw_metrics_listen(&gw) != 0)
		goto out;
	rc = GW_EXIT_SOFTWARE;
	if (gw_peers_apply(&gw) != 0)
		goto out;
	ev_term = evsignal_new(gw.base, SIGTERM, sigterm_cb, &gw);
	ev_int = evsignal_new(gw.base, SIGINT, sigterm_cb, &gw);
	ev_hup = evsignal_new(gw.base, SIGHUP, sighup_cb, &gw);
	gw.rate_timer = event_new(gw.base, -1, EV_PERSIST, rate_timercb, &gw);
	if (gw.rate_timer != NULL) {
		struct timeval sec = { 1, 0 };

		event_add(gw.rate_timer, &sec);
	}
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    evsignal_add(ev_term, NULL) != 0 || evsignal_add(ev_int, NULL) != 0 ||
	    evsignal_add(ev_hup, NULL) != 0)
		goto out;
	log_info("wanmigd %s: site %s up (%zu peers, %zu routes)", WANMIG_VERSION,
	    gw.conf->site.name, gw.conf->npeers, gw.conf->nroutes);
	gw_notify_ready(&gw); /* every listener is up */
	gw.exit_code = GW_EXIT_OK;
	event_base_dispatch(gw.base);
	rc = gw.exit_code;
	log_info("stopped (exit %d)", rc);
out:
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	if (ev_hup)
		event_free(ev_hup);
	/* Freeing the signal events restored the default actions; cleanup is
	 * bounded, and a late SIGTERM (systemd, a test harness) must not turn
	 * a clean stop into death by signal. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	gw_free(&gw);
	event_base_free(gw.base);
	return rc;
}

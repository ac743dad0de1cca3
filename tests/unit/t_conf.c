/*
 * t_conf.c - unit tests for conf/: parsing, defaults, path resolution,
 * every error message ("FILE:LINE: KEY: message"), the line API, conf_load,
 * conf_dump round trips and the shipped example configs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "wm_err.h"
#include "wm_log.h"
#include "wm_util.h"

#define T_ERRS_MAX 512

/* Collected error messages of one parse. */
struct t_errs {
	int n;
	char *msg[T_ERRS_MAX];
};

static void
t_collect(const char *msg, void *arg)
{
	struct t_errs *e = arg;

	if (e->n < T_ERRS_MAX)
		e->msg[e->n++] = strdup(msg);
}

static void
t_errs_free(struct t_errs *e)
{
	for (int i = 0; i < e->n; i++)
		free(e->msg[i]);
	e->n = 0;
}

static void
t_errs_print(const struct t_errs *e)
{
	for (int i = 0; i < e->n; i++)
		print_message("  error[%d]: %s\n", i, e->msg[i]);
}

/* Feeds text line by line (numbered from 1) and finishes the parse. */
static int
t_parse(const char *path, const char *text, struct conf **out,
    struct t_errs *e)
{
	struct conf_parse *p;
	char line[8192];
	int lineno = 0;

	p = conf_parse_new(path, t_collect, e);
	assert_non_null(p);
	while (*text != '\0') {
		size_t len = strcspn(text, "\n");

		assert_true(len < sizeof(line));
		memcpy(line, text, len);
		line[len] = '\0';
		conf_parse_line(p, line, ++lineno);
		text += len;
		if (*text == '\n')
			text++;
	}
	return conf_parse_finish(p, out);
}

/* Asserts that message i starts with prefix and contains substr. */
static void
t_expect(const struct t_errs *e, int i, const char *prefix,
    const char *substr)
{
	if (i >= e->n || strncmp(e->msg[i], prefix, strlen(prefix)) != 0 ||
	    (substr != NULL && strstr(e->msg[i], substr) == NULL)) {
		print_error("expected error[%d] \"%s...%s...\", got:\n", i,
		    prefix, substr != NULL ? substr : "");
		t_errs_print(e);
		fail();
	}
}

static const char *
t_addr(const struct wm_addr *a, char *buf)
{
	return wm_addr_format((const struct sockaddr *)&a->ss, buf,
	    WM_ADDRSTRLEN);
}

static const char *
t_cidr(const struct wm_cidr *c, char *buf)
{
	return wm_cidr_format(c, buf, 64);
}

/* A minimal valid [site] (5 lines). */
#define SITE_OK								\
	"[site]\n"							\
	"name = east\n"							\
	"certificate = east.pem\n"					\
	"private-key = east.key\n"					\
	"ca = ca.pem\n"

/* A valid file of BASE_LINES lines, ending inside [route to-west]. */
#define BASE								\
	SITE_OK								\
	"\n"								\
	"[peer west]\n"			/* 7 */				\
	"address = 10.99.0.2:7800\n"					\
	"\n"								\
	"[route to-west]\n"		/* 10 */			\
	"listen = 10.98.1.1:4444\n"	/* 11 */			\
	"peer = west\n"			/* 12 */			\
	"target = 10.98.2.10:4444\n"	/* 13 */			\
	"allow = 10.98.1.0/24\n"	/* 14 */
#define BASE_LINES 14

/* Site and peer, then "[route r]" at line 10. */
#define ROUTE_HDR							\
	SITE_OK								\
	"\n"								\
	"[peer west]\n"							\
	"address = 10.99.0.2:7800\n"					\
	"\n"								\
	"[route r]\n"

static const char full_text[] =
    "# wanmig test config\n"
    "; another comment\n"
    "[site]\n"
    "name = east\n"
    "listen = 0.0.0.0:7800\n"
    "certificate = /etc/pki/east.pem\n"
    "private-key = east.key   # relative\n"
    "ca = ca.pem\n"
    "control = /run/x.sock\n"
    "log-level = debug\n"
    "syslog = on\n"
    "shutdown-timeout = 90s\n"
    "window = 16m\n"
    "\n"
    "[peer west]\n"
    "address = [fd00::2]:7800\n"
    "targets = 10.98.1.0/24, 10.98.3.0/24 fd00:1::/64\n"
    "targets = 192.168.0.0/16\n"
    "keepalive = 2s\n"
    "timeout = 1m\n"
    "\n"
    "[peer north] ; defaults only\n"
    "\n"
    "[route to-west]\n"
    "listen = 10.98.1.1:4444\n"
    "peer = west\n"
    "target = 10.98.2.10:4444\n"
    "allow = 10.98.1.0/24\n"
    "allow = 10.98.4.0/24,10.98.5.0/24\n"
    "\n"
    "[route to-north]\n"
    "listen = *:4445\n"
    "peer = north\n"
    "target = [fd00::10]:4444\n"
    "allow = 0.0.0.0/0\n";

static void
test_full(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c;
	const struct conf_peer *pw, *pn;
	const struct conf_route *r;
	char b[64];

	(void)state;
	assert_int_equal(t_parse("/etc/wanmig/east.conf", full_text, &c, &e),
	    0);
	assert_int_equal(e.n, 0);
	assert_string_equal(c->path, "/etc/wanmig/east.conf");
	assert_string_equal(c->dir, "/etc/wanmig");

	assert_string_equal(c->site.name, "east");
	assert_true(c->site.has_listen);
	assert_string_equal(t_addr(&c->site.listen, b), "0.0.0.0:7800");
	assert_string_equal(c->site.certificate, "/etc/pki/east.pem");
	assert_string_equal(c->site.private_key, "/etc/wanmig/east.key");
	assert_string_equal(c->site.ca, "/etc/wanmig/ca.pem");
	assert_string_equal(c->site.control, "/run/x.sock");
	assert_int_equal(c->site.log_level, WM_LOG_DEBUG);
	assert_true(c->site.syslog);
	assert_int_equal(c->site.shutdown_timeout_ms, 90000);
	assert_int_equal(c->site.window, 16u << 20);
	assert_int_equal(c->site.line, 3);

	assert_int_equal(c->npeers, 2);
	pw = conf_peer_find(c, "west");
	assert_ptr_equal(pw, &c->peers[0]);
	assert_int_equal(pw->line, 15);
	assert_true(pw->has_address);
	assert_string_equal(t_addr(&pw->address, b), "[fd00::2]:7800");
	assert_int_equal(pw->ntargets, 4);
	assert_string_equal(t_cidr(&pw->targets[0], b), "10.98.1.0/24");
	assert_string_equal(t_cidr(&pw->targets[1], b), "10.98.3.0/24");
	assert_string_equal(t_cidr(&pw->targets[2], b), "fd00:1::/64");
	assert_string_equal(t_cidr(&pw->targets[3], b), "192.168.0.0/16");
	assert_int_equal(pw->keepalive_ms, 2000);
	assert_int_equal(pw->timeout_ms, 60000);
	pn = conf_peer_find(c, "north");
	assert_non_null(pn);
	assert_int_equal(pn->line, 22);
	assert_false(pn->has_address);
	assert_int_equal(pn->ntargets, 0);
	assert_null(conf_peer_find(c, "south"));

	assert_int_equal(c->nroutes, 2);
	r = conf_route_find(c, "to-west");
	assert_ptr_equal(r, &c->routes[0]);
	assert_int_equal(r->line, 24);
	assert_string_equal(t_addr(&r->listen, b), "10.98.1.1:4444");
	assert_string_equal(r->peer, "west");
	assert_string_equal(t_addr(&r->target, b), "10.98.2.10:4444");
	assert_int_equal(r->nallow, 3);
	assert_string_equal(t_cidr(&r->allow[0], b), "10.98.1.0/24");
	assert_string_equal(t_cidr(&r->allow[1], b), "10.98.4.0/24");
	assert_string_equal(t_cidr(&r->allow[2], b), "10.98.5.0/24");
	r = conf_route_find(c, "to-north");
	assert_non_null(r);
	assert_string_equal(t_addr(&r->listen, b), "0.0.0.0:4445");
	assert_string_equal(r->peer, "north");
	assert_string_equal(t_addr(&r->target, b), "[fd00::10]:4444");
	assert_int_equal(r->nallow, 1);
	assert_string_equal(t_cidr(&r->allow[0], b), "0.0.0.0/0");
	assert_null(conf_route_find(c, "to-east"));
	assert_null(conf_route_find(NULL, "to-west"));
	conf_free(c);
}

static void
test_defaults(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c;
	const struct conf_peer *pr;

	(void)state;
	assert_int_equal(t_parse("/etc/wanmig/east.conf", BASE, &c, &e), 0);
	assert_int_equal(e.n, 0);
	assert_false(c->site.has_listen);
	assert_string_equal(c->site.control, "/run/wanmig/east.sock");
	assert_int_equal(c->site.log_level, WM_LOG_INFO);
	assert_false(c->site.syslog);
	assert_int_equal(c->site.shutdown_timeout_ms, 60000);
	assert_int_equal(c->site.window, 64u << 20);
	assert_true(c->site.codec_memory == 2ull << 30);
	pr = conf_peer_find(c, "west");
	assert_non_null(pr);
	assert_true(pr->has_address);
	assert_int_equal(pr->ntargets, 0);
	assert_null(pr->targets);
	assert_int_equal(pr->keepalive_ms, 5000);
	assert_int_equal(pr->timeout_ms, 20000);
	assert_int_equal(pr->codec, CONF_CODEC_AUTO);
	assert_true(pr->xbzrle_cache == 64u << 20);
	assert_true(pr->dedup_cache == 64u << 20);
	assert_true(pr->resume_buffer == 128u << 20);
	conf_free(c);
}

static void
test_relative_paths(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c;
	char cwd[PATH_MAX], want[PATH_MAX + 64];
	static const char text[] =
	    "[site]\n"
	    "name = east\n"
	    "certificate = east.pem\n"
	    "private-key = keys/east.key\n"
	    "ca = /etc/ssl/ca.pem\n"
	    "control = run/east.sock\n";

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));

	assert_int_equal(t_parse("/etc/wanmig/east.conf", text, &c, &e), 0);
	assert_string_equal(c->dir, "/etc/wanmig");
	assert_string_equal(c->site.certificate, "/etc/wanmig/east.pem");
	assert_string_equal(c->site.private_key, "/etc/wanmig/keys/east.key");
	assert_string_equal(c->site.ca, "/etc/ssl/ca.pem");
	assert_string_equal(c->site.control, "/etc/wanmig/run/east.sock");
	conf_free(c);

	/* A file in the root folder: no doubled slash. */
	assert_int_equal(t_parse("/east.conf", text, &c, &e), 0);
	assert_string_equal(c->dir, "/");
	assert_string_equal(c->site.certificate, "/east.pem");
	conf_free(c);

	/* Relative file names resolve against the current folder. */
	assert_int_equal(t_parse("east.conf", text, &c, &e), 0);
	assert_string_equal(c->dir, cwd);
	snprintf(want, sizeof(want), "%s/east.pem", cwd);
	assert_string_equal(c->site.certificate, want);
	conf_free(c);

	assert_int_equal(t_parse("./conf/east.conf", text, &c, &e), 0);
	snprintf(want, sizeof(want), "%s/conf", cwd);
	assert_string_equal(c->dir, want);
	snprintf(want, sizeof(want), "%s/conf/east.pem", cwd);
	assert_string_equal(c->site.certificate, want);
	conf_free(c);
	assert_int_equal(e.n, 0);
}

static void
test_syntax(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c;
	char b[64];
	static const char text[] =
	    "   # indented comment\n"
	    "\t; indented comment\n"
	    "  [ site ]  \n"
	    "name=east\n"
	    "\tcertificate\t=\t/p/a#b.pem\n"
	    "private-key = /p/x;y.key ; comment\n"
	    "ca = /p/with space/ca.pem\n"
	    "syslog = true\r\n"
	    "[peer west]\n"
	    "targets = 10.0.0.0/8,10.1.0.0/16 , 10.2.0.0/16\t10.3.0.0/16\n"
	    "targets = 10.4.0.1\n"
	    "timeout = 20000ms\n"
	    "[route r]\n"
	    "listen = [::1]:4444\n"
	    "peer = west\n"
	    "target = 10.0.0.1:4444\n"
	    "allow = ::/0, 0.0.0.0/0\n";

	(void)state;
	assert_int_equal(t_parse("t.conf", text, &c, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(c->site.certificate, "/p/a#b.pem");
	assert_string_equal(c->site.private_key, "/p/x;y.key");
	assert_string_equal(c->site.ca, "/p/with space/ca.pem");
	assert_true(c->site.syslog);
	assert_int_equal(c->peers[0].ntargets, 5);
	assert_string_equal(t_cidr(&c->peers[0].targets[4], b), "10.4.0.1/32");
	assert_int_equal(c->peers[0].timeout_ms, 20000);
	assert_string_equal(t_addr(&c->routes[0].listen, b), "[::1]:4444");
	assert_int_equal(c->routes[0].nallow, 2);
	conf_free(c);
}

static void
test_booleans(void **state)
{
	static const struct {
		const char *text;
		bool want;
	} cases[] = {
		{ "yes", true }, { "true", true }, { "on", true },
		{ "no", false }, { "false", false }, { "off", false },
	};
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct t_errs e = { 0 };
		struct conf *c;

		snprintf(text, sizeof(text), SITE_OK "syslog = %s\n",
		    cases[i].text);
		assert_int_equal(t_parse("t.conf", text, &c, &e), 0);
		assert_int_equal(c->site.syslog, cases[i].want);
		conf_free(c);
	}
}

/* One error, exactly as expected, and the parse refused. */
struct t_errcase {
	const char *text;
	const char *prefix;	/* "FILE:LINE: KEY: " */
	const char *substr;	/* in the message */
};

static const struct t_errcase errcases[] = {
	/* unknown keys and sections */
	{ SITE_OK "bogus = 1\n", "t.conf:6: bogus: ", "unknown key in [site]" },
	{ BASE "colour = red\n", "t.conf:15: colour: ",
	    "unknown key in [route to-west]" },
	{ BASE "[peer west2]\nallow = 10.0.0.0/8\n", "t.conf:16: allow: ",
	    "unknown key in [peer west2]" },
	{ BASE "[bridge x]\nfoo = 1\n", "t.conf:15: [bridge x]: ",
	    "unknown section" },
	/* misplaced and malformed lines */
	{ "name = x\n" SITE_OK, "t.conf:1: name: ", "key outside a section" },
	{ BASE "allow 10.0.0.0/8\n", "t.conf:15: allow 10.0.0.0/8: ",
	    "expected \"key = value\"" },
	{ BASE "= 10.0.0.0/8\n", "t.conf:15: =: ", "missing key" },
	{ BASE "allow =\n", "t.conf:15: allow: ", "empty value" },
	{ BASE "allow =    # nothing\n", "t.conf:15: allow: ", "empty value" },
	{ BASE "allow = ,\n", "t.conf:15: allow: ", "at least one" },
	{ BASE "allow = 10.0.0.0/8\x01\n", "t.conf:15: line: ",
	    "control character 0x01" },
	/* duplicates */
	{ BASE "target = 10.98.2.11:4444\n", "t.conf:15: target: ",
	    "duplicate key (first set at line 13)" },
	{ SITE_OK "name = west\n", "t.conf:6: name: ",
	    "duplicate key (first set at line 2)" },
	{ BASE "[site]\n", "t.conf:15: [site]: ",
	    "duplicate section (first at line 1)" },
	{ BASE "[peer west]\n", "t.conf:15: [peer west]: ",
	    "duplicate section (first at line 7)" },
	{ BASE "[route to-west]\n", "t.conf:15: [route to-west]: ",
	    "duplicate section (first at line 10)" },
	/* section headers */
	{ BASE "[site east]\n", "t.conf:15: [site east]: ", "takes no name" },
	{ BASE "[route]\n", "t.conf:15: [route]: ", "missing name" },
	{ BASE "[peer bad/name]\n", "t.conf:15: [peer bad/name]: ",
	    "bad name" },
	{ BASE "[peer a b]\n", "t.conf:15: [peer a b]: ", "bad name" },
	{ BASE "[peer "
	    "a123456789a123456789a123456789a123456789a123456789a123456789abcd"
	    "]\n", "t.conf:15: [peer a123456789", "bad name" },
	{ BASE "[peer x\n", "t.conf:15: [peer x: ", "expected ']'" },
	{ BASE "[peer x] y\n", "t.conf:15: [peer x]: ",
	    "unexpected text after ']'" },
	/* bad values */
	{ "[site]\nname = bad name!\ncertificate = c\nprivate-key = k\n"
	    "ca = a\n", "t.conf:2: name: ", "expected a name of 1 to 63" },
	{ "[site]\nname = "
	    "a123456789a123456789a123456789a123456789a123456789a123456789abcd"
	    "\ncertificate = c\nprivate-key = k\nca = a\n",
	    "t.conf:2: name: ", "expected a name of 1 to 63" },
	{ SITE_OK "listen = 0.0.0.0\n", "t.conf:6: listen: ",
	    "expected a numeric ADDRESS:PORT" },
	{ SITE_OK "log-level = verbose\n", "t.conf:6: log-level: ",
	    "expected error, warn, info or debug, got \"verbose\"" },
	{ SITE_OK "syslog = maybe\n", "t.conf:6: syslog: ",
	    "expected yes, no, true, false, on or off" },
	{ SITE_OK "shutdown-timeout = soon\n", "t.conf:6: shutdown-timeout: ",
	    "expected a duration" },
	{ SITE_OK "window = 1k\n", "t.conf:6: window: ",
	    "expected a size from 64k to 1g" },
	{ SITE_OK "window = 2g\n", "t.conf:6: window: ",
	    "expected a size from 64k to 1g" },
	{ SITE_OK "window = lots\n", "t.conf:6: window: ", "got \"lots\"" },
	{ BASE "[peer p]\naddress = west.example:7800\n",
	    "t.conf:16: address: ", "expected a numeric ADDRESS:PORT" },
	{ BASE "[peer p]\nkeepalive = 0s\n", "t.conf:16: keepalive: ",
	    "expected a duration from 1s to 300s" },
	{ BASE "[peer p]\nkeepalive = 301s\n", "t.conf:16: keepalive: ",
	    "expected a duration from 1s to 300s" },
	{ BASE "[peer p]\ntimeout = 0\n", "t.conf:16: timeout: ",
	    "expected a duration" },
	{ BASE "[peer p]\nkeepalive = 10s\ntimeout = 10s\n",
	    "t.conf:17: timeout: ", "must be greater than keepalive (10s)" },
	{ BASE "[peer p]\nkeepalive = 30s\n", "t.conf:16: keepalive: ",
	    "must be less than timeout (20s)" },
	{ BASE "[peer p]\ntargets = 10.0.0.0/8 nonsense\n",
	    "t.conf:16: targets: ", "got \"nonsense\"" },
	{ BASE "allow = 10.0.0.1/8\n", "t.conf:15: allow: ",
	    "expected an address prefix" },
	{ BASE "[route r2]\nlisten = 10.98.1.1:4445\npeer = -bad*\n"
	    "target = 10.0.0.1:1\nallow = ::/0\n", "t.conf:17: peer: ",
	    "expected a name" },
	/* missing required keys: reported at the section header */
	{ "[site]\ncertificate = c\nprivate-key = k\nca = a\n",
	    "t.conf:1: name: ", "missing in [site]" },
	{ "\n[site]\nname = e\nprivate-key = k\nca = a\n",
	    "t.conf:2: certificate: ", "missing in [site]" },
	{ "[site]\nname = e\ncertificate = c\nca = a\n",
	    "t.conf:1: private-key: ", "missing in [site]" },
	{ "[site]\nname = e\ncertificate = c\nprivate-key = k\n",
	    "t.conf:1: ca: ", "missing in [site]" },
	{ ROUTE_HDR "peer = west\ntarget = 10.0.0.1:1\nallow = ::/0\n",
	    "t.conf:10: listen: ", "missing in [route r]" },
	{ ROUTE_HDR "listen = 10.0.0.1:1\ntarget = 10.0.0.1:1\n"
	    "allow = ::/0\n", "t.conf:10: peer: ", "missing in [route r]" },
	{ ROUTE_HDR "listen = 10.0.0.1:1\npeer = west\nallow = ::/0\n",
	    "t.conf:10: target: ", "missing in [route r]" },
	{ ROUTE_HDR "listen = 10.0.0.1:1\npeer = west\n"
	    "target = 10.0.0.1:1\n", "t.conf:10: allow: ",
	    "missing in [route r]" },
	{ "[peer west]\naddress = 10.99.0.2:7800\n", "t.conf:2: [site]: ",
	    "missing section" },
	{ "", "t.conf:1: [site]: ", "missing section" },
	/* the page codec */
	{ BASE "[peer south]\ncodec = gzip\n", "t.conf:16: codec: ",
	    "expected auto, lz4, zstd or none, got \"gzip\"" },
	{ BASE "[peer south]\nxbzrle-cache = 5g\n", "t.conf:16: xbzrle-cache: ",
	    "" },
	{ BASE "[peer south]\ndedup-cache = lots\n", "t.conf:16: dedup-cache: ",
	    "" },
	/* cross-checks */
	{ ROUTE_HDR "listen = 10.0.0.1:1\npeer = south\n"
	    "target = 10.0.0.1:1\nallow = ::/0\n", "t.conf:12: peer: ",
	    "unknown peer \"south\" (no [peer south] section)" },
	{ BASE "[route again]\nlisten = 10.98.1.1:4444\npeer = west\n"
	    "target = 10.98.2.11:4444\nallow = 0.0.0.0/0\n",
	    "t.conf:16: listen: ",
	    "10.98.1.1:4444 is already the listener of [route to-west] "
	    "(line 11)" },
	{ "[site]\nname = e\nlisten = *:7800\ncertificate = c\n"
	    "private-key = k\nca = a\n[peer w]\n[route r]\n"
	    "listen = 0.0.0.0:7800\npeer = w\ntarget = 10.0.0.1:1\n"
	    "allow = ::/0\n", "t.conf:9: listen: ",
	    "is also the site's WAN listener" },
};

static void
test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(errcases) / sizeof(errcases[0]); i++) {
		const struct t_errcase *tc = &errcases[i];
		struct t_errs e = { 0 };
		struct conf *c = (struct conf *)&e;	/* must become NULL */
		int rc;

		rc = t_parse("t.conf", tc->text, &c, &e);
		if (rc != WM_ERR_CONFIG || c != NULL || e.n != 1) {
			print_error("case %zu (%s): rc %d, %d errors\n", i,
			    tc->prefix, rc, e.n);
			t_errs_print(&e);
			fail();
		}
		t_expect(&e, 0, tc->prefix, tc->substr);
		t_errs_free(&e);
	}
}

static void
test_base_valid(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c;
	int lines = 0;

	(void)state;
	for (const char *s = BASE; *s != '\0'; s++)
		lines += *s == '\n';
	assert_int_equal(lines, BASE_LINES);
	assert_int_equal(t_parse("t.conf", BASE, &c, &e), 0);
	conf_free(c);
	assert_int_equal(t_parse("t.conf", ROUTE_HDR "listen = 10.0.0.1:1\n"
	    "peer = west\ntarget = 10.0.0.1:1\nallow = ::/0\n", &c, &e), 0);
	conf_free(c);
	assert_int_equal(e.n, 0);
}

static void
test_missing_all(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c;

	(void)state;
	assert_int_equal(t_parse("east.conf", "# x\n[site]\nname = e\n", &c,
	    &e), WM_ERR_CONFIG);
	assert_null(c);
	assert_int_equal(e.n, 3);
	t_expect(&e, 0, "east.conf:2: certificate: missing in [site]", NULL);
	t_expect(&e, 1, "east.conf:2: private-key: missing in [site]", NULL);
	t_expect(&e, 2, "east.conf:2: ca: missing in [site]", NULL);
	t_errs_free(&e);
}

static void
test_multiple_errors(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c;
	static const char text[] =
	    "orphan = 1\n"			/* 1: outside a section */
	    "[site]\n"				/* 2: certificate missing */
	    "name = east\n"
	    "private-key = k\n"
	    "ca = c\n"
	    "window = 1\n"			/* 6: out of range */
	    "window = 2m\n"			/* 7: duplicate */
	    "[peer west]\n"
	    "keepalive = forever\n"		/* 9: bad duration */
	    "[zone z]\n"			/* 10: unknown section */
	    "whatever = 1\n"			/* skipped */
	    "[route r]\n"
	    "listen = 10.0.0.1:1\n"
	    "peer = south\n"			/* 14: unknown peer */
	    "target = 10.0.0.2:1\n"
	    "allow = 10.0.0.0/8\n"
	    "no equals sign\n";		/* 17 */

	(void)state;
	assert_int_equal(t_parse("m.conf", text, &c, &e), WM_ERR_CONFIG);
	assert_null(c);
	assert_int_equal(e.n, 8);
	t_expect(&e, 0, "m.conf:1: orphan: ", "outside a section");
	t_expect(&e, 1, "m.conf:6: window: ", "expected a size");
	t_expect(&e, 2, "m.conf:7: window: ", "duplicate key (first set at "
	    "line 6)");
	t_expect(&e, 3, "m.conf:2: certificate: ", "missing in [site]");
	t_expect(&e, 4, "m.conf:9: keepalive: ", "expected a duration");
	t_expect(&e, 5, "m.conf:10: [zone z]: ", "unknown section");
	t_expect(&e, 6, "m.conf:17: no equals sign: ", "key = value");
	t_expect(&e, 7, "m.conf:14: peer: ", "unknown peer");
	t_errs_free(&e);
}

static void
test_line_api(void **state)
{
	struct t_errs e = { 0 };
	struct conf_parse *p;
	struct conf *c;
	char longline[4200];

	(void)state;
	/* Lines with and without newlines; no error callback. */
	p = conf_parse_new("/srv/w.conf", NULL, NULL);
	assert_non_null(p);
	conf_parse_line(p, "[site]\n", 1);
	conf_parse_line(p, "name = w\r\n", 2);
	conf_parse_line(p, "certificate = w.pem", 3);
	conf_parse_line(p, "private-key = w.key\n", 4);
	conf_parse_line(p, "ca = ca.pem\r\n", 5);
	/* The longest line allowed: 4096 bytes plus its newline. */
	memset(longline, 'x', sizeof(longline));
	longline[0] = '#';
	longline[4096] = '\n';
	longline[4097] = '\0';
	conf_parse_line(p, longline, 6);
	assert_int_equal(conf_parse_finish(p, &c), 0);
	assert_string_equal(c->site.name, "w");
	assert_string_equal(c->site.ca, "/srv/ca.pem");
	assert_string_equal(c->site.control, "/run/wanmig/w.sock");
	conf_free(c);

	/* Errors are counted without a callback. */
	p = conf_parse_new("/srv/w.conf", NULL, NULL);
	assert_non_null(p);
	conf_parse_line(p, "bogus", 1);
	assert_int_equal(conf_parse_finish(p, &c), WM_ERR_CONFIG);
	assert_null(c);

	/* One byte too long. */
	p = conf_parse_new("l.conf", t_collect, &e);
	assert_non_null(p);
	longline[4096] = 'x';
	longline[4097] = '\0';
	conf_parse_line(p, longline, 1);
	memset(longline, 'y', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	conf_parse_line(p, longline, 2);
	assert_int_equal(conf_parse_finish(p, &c), WM_ERR_CONFIG);
	assert_int_equal(e.n, 3);
	t_expect(&e, 0, "l.conf:1: line: ", "line too long (max 4096 bytes)");
	t_expect(&e, 1, "l.conf:2: line: ", "line too long");
	t_expect(&e, 2, "l.conf:2: [site]: ", "missing section");
	t_errs_free(&e);

	/* NULL parser (allocation failed upstream) is tolerated. */
	conf_parse_line(NULL, "x", 1);
	assert_int_equal(conf_parse_finish(NULL, &c), WM_ERR_NOMEM);
	assert_null(c);
	conf_free(NULL);
	conf_dump(NULL, stdout);
}

static void
test_limits(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c;
	char dir[PATH_MAX], want[PATH_MAX + 64];
	char *text, *s;
	size_t cap = 1 << 20;

	(void)state;
	text = malloc(cap);
	assert_non_null(text);

	/* 257 peers: the last is refused (line 5 + 257). */
	s = text + snprintf(text, cap, SITE_OK);
	for (int i = 0; i <= 256; i++)
		s += snprintf(s, cap - (size_t)(s - text), "[peer p%d]\n", i);
	assert_int_equal(t_parse("t.conf", text, &c, &e), WM_ERR_CONFIG);
	assert_int_equal(e.n, 1);
	t_expect(&e, 0, "t.conf:262: [peer p256]: ", "too many peers (max 256)");
	t_errs_free(&e);

	/* 257 routes. */
	s = text + snprintf(text, cap, SITE_OK "[peer w]\n");
	for (int i = 0; i <= 256; i++)
		s += snprintf(s, cap - (size_t)(s - text),
		    "[route r%d]\nlisten = 10.0.0.1:%d\npeer = w\n"
		    "target = 10.0.0.2:1\nallow = ::/0\n", i, 1000 + i);
	assert_int_equal(t_parse("t.conf", text, &c, &e), WM_ERR_CONFIG);
	assert_int_equal(e.n, 1);
	t_expect(&e, 0, "t.conf:1287: [route r256]: ",
	    "too many routes (max 256)");
	t_errs_free(&e);

	/* 256 prefixes fit, one more does not, also across lines. */
	s = text + snprintf(text, cap, SITE_OK "[peer w]\ntargets =");
	for (int i = 0; i < 256; i++)
		s += snprintf(s, cap - (size_t)(s - text), " 10.0.%d.0/24", i);
	snprintf(s, cap - (size_t)(s - text), "\n");
	assert_int_equal(t_parse("t.conf", text, &c, &e), 0);
	assert_int_equal(c->peers[0].ntargets, 256);
	conf_free(c);
	snprintf(s, cap - (size_t)(s - text), "\ntargets = 10.1.0.0/16\n");
	assert_int_equal(t_parse("t.conf", text, &c, &e), WM_ERR_CONFIG);
	assert_int_equal(e.n, 1);
	t_expect(&e, 0, "t.conf:8: targets: ", "too many prefixes (max 256)");
	t_errs_free(&e);

	/* A relative path that becomes too long once resolved. */
	memset(dir, 'd', 3000);
	dir[0] = '/';
	snprintf(dir + 3000, sizeof(dir) - 3000, "/t.conf");
	s = text + snprintf(text, cap, SITE_OK "control = ");
	memset(s, 'p', 1500);
	s += 1500;
	snprintf(s, cap - (size_t)(s - text), "\n");
	assert_int_equal(t_parse(dir, text, &c, &e), WM_ERR_CONFIG);
	assert_int_equal(e.n, 1);
	snprintf(want, sizeof(want), "%s:6: control: ", dir);
	t_expect(&e, 0, want, "path too long");
	t_errs_free(&e);
	free(text);
}

/* Dump, re-read the dump, dump again: both dumps are identical. */
static void
test_dump_roundtrip(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c, *c2;
	char *d1 = NULL, *d2 = NULL;
	size_t l1, l2;
	FILE *f;

	(void)state;
	assert_int_equal(t_parse("/etc/wanmig/east.conf", full_text, &c, &e),
	    0);
	f = open_memstream(&d1, &l1);
	assert_non_null(f);
	conf_dump(c, f);
	fclose(f);
	assert_non_null(strstr(d1, "\n[site]\nname = east\n"));
	assert_non_null(strstr(d1, "\nwindow = 16m\n"));
	assert_non_null(strstr(d1, "\nshutdown-timeout = 90s\n"));
	assert_non_null(strstr(d1, "\nsyslog = yes\n"));
	assert_non_null(strstr(d1, "\nlog-level = debug\n"));
	assert_non_null(strstr(d1, "\nprivate-key = /etc/wanmig/east.key\n"));
	assert_non_null(strstr(d1, "\n[peer west]\naddress = [fd00::2]:7800\n"
	    "targets = 10.98.1.0/24\ntargets = 10.98.3.0/24\n"
	    "targets = fd00:1::/64\ntargets = 192.168.0.0/16\n"
	    "keepalive = 2s\ntimeout = 60s\n"));
	assert_non_null(strstr(d1, "\n[peer north]\nkeepalive = 5s\n"
	    "timeout = 20s\n"));
	assert_non_null(strstr(d1, "\n[route to-north]\nlisten = 0.0.0.0:4445"
	    "\npeer = north\n"));

	assert_int_equal(t_parse("/elsewhere/dump.conf", d1, &c2, &e), 0);
	assert_int_equal(e.n, 0);
	f = open_memstream(&d2, &l2);
	assert_non_null(f);
	conf_dump(c2, f);
	fclose(f);
	/* Only the first comment line (the file name) differs. */
	assert_string_equal(strchr(d1, '\n'), strchr(d2, '\n'));
	free(d1);
	free(d2);
	conf_free(c);
	conf_free(c2);
}

static void
t_write_file(char *name, const char *data, size_t len)
{
	int fd;

	strcpy(name, "/tmp/t_conf_XXXXXX");
	fd = mkstemp(name);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void
test_load(void **state)
{
	struct t_errs e = { 0 };
	struct conf *c;
	char name[64], want[128], *big;
	size_t n;
	static const char good[] = "[site]\r\nname = east\r\n"
	    "certificate = east.pem\nprivate-key = east.key\nca = ca.pem";

	(void)state;
	t_write_file(name, good, sizeof(good) - 1);
	assert_int_equal(conf_load(name, &c, t_collect, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(c->path, name);
	assert_string_equal(c->dir, "/tmp");
	assert_string_equal(c->site.certificate, "/tmp/east.pem");
	assert_string_equal(c->site.ca, "/tmp/ca.pem");
	conf_free(c);
	unlink(name);

	/* Errors carry the file name and the right line numbers. */
	big = malloc(20000);
	assert_non_null(big);
	n = (size_t)snprintf(big, 20000, SITE_OK "window = x\n#");
	memset(big + n, 'z', 9000);		/* line 7: too long */
	n += 9000;
	memcpy(big + n, "\nsys\0log = on\n", 14);	/* line 8: NUL */
	n += 14;
	n += (size_t)snprintf(big + n, 20000 - n, "syslog = bad\n");
	t_write_file(name, big, n);
	free(big);
	assert_int_equal(conf_load(name, &c, t_collect, &e), WM_ERR_CONFIG);
	assert_null(c);
	assert_int_equal(e.n, 4);
	snprintf(want, sizeof(want), "%s:6: window: ", name);
	t_expect(&e, 0, want, "expected a size");
	snprintf(want, sizeof(want), "%s:7: line: ", name);
	t_expect(&e, 1, want, "line too long");
	snprintf(want, sizeof(want), "%s:8: line: ", name);
	t_expect(&e, 2, want, "NUL byte");
	snprintf(want, sizeof(want), "%s:9: syslog: ", name);
	t_expect(&e, 3, want, "expected yes, no");
	t_errs_free(&e);
	unlink(name);

	/* A file that does not exist. */
	assert_int_equal(conf_load("/nonexistent/wanmig.conf", &c, t_collect,
	    &e), WM_ERR_SYS);
	assert_null(c);
	assert_int_equal(e.n, 1);
	t_expect(&e, 0, "/nonexistent/wanmig.conf:0: file: ", "cannot open");
	t_errs_free(&e);
}

/*
 * The shipped examples: conf/examples/{east,west}.conf, found next to this
 * source file (CMake compiles it by absolute path), else through
 * $WM_TEST_DATA (tests/data), else from the current folder.
 */
static void
t_example_path(char *buf, size_t len, const char *file)
{
	const char *data = getenv("WM_TEST_DATA");
	const char *tail = strstr(__FILE__, "tests/unit/t_conf.c");

	if (tail != NULL) {
		snprintf(buf, len, "%.*sconf/examples/%s",
		    (int)(tail - __FILE__), __FILE__, file);
		if (access(buf, R_OK) == 0)
			return;
	}
	if (data != NULL) {
		snprintf(buf, len, "%s/../../conf/examples/%s", data, file);
		if (access(buf, R_OK) == 0)
			return;
	}
	snprintf(buf, len, "conf/examples/%s", file);
}

static void
t_check_route(const struct conf *c, const char *name, const char *listen,
    const char *peer, const char *target, const char *allow)
{
	const struct conf_route *r = conf_route_find(c, name);
	char b[64];

	assert_non_null(r);
	assert_string_equal(t_addr(&r->listen, b), listen);
	assert_string_equal(r->peer, peer);
	assert_string_equal(t_addr(&r->target, b), target);
	assert_int_equal(r->nallow, 1);
	assert_string_equal(t_cidr(&r->allow[0], b), allow);
}

static void
t_check_example(const char *file, const char *site, const char *peer,
    const char *peer_addr, const char *targets, const char *route,
    const char *listen, const char *target, const char *allow)
{
	struct t_errs e = { 0 };
	const struct conf_peer *pr;
	struct conf *c;
	char path[PATH_MAX], want[PATH_MAX + 32], b[64];

	t_example_path(path, sizeof(path), file);
	if (conf_load(path, &c, t_collect, &e) != 0) {
		t_errs_print(&e);
		fail_msg("%s does not load", path);
	}
	assert_string_equal(c->site.name, site);
	assert_true(c->site.has_listen);
	assert_string_equal(t_addr(&c->site.listen, b), "0.0.0.0:7800");
	snprintf(want, sizeof(want), "%s/%s.pem", c->dir, site);
	assert_string_equal(c->site.certificate, want);
	snprintf(want, sizeof(want), "%s/%s.key", c->dir, site);
	assert_string_equal(c->site.private_key, want);
	snprintf(want, sizeof(want), "%s/ca.pem", c->dir);
	assert_string_equal(c->site.ca, want);
	snprintf(want, sizeof(want), "/run/wanmig/%s.sock", site);
	assert_string_equal(c->site.control, want);
	assert_int_equal(c->npeers, 1);
	pr = conf_peer_find(c, peer);
	assert_non_null(pr);
	assert_true(pr->has_address);
	assert_string_equal(t_addr(&pr->address, b), peer_addr);
	assert_int_equal(pr->ntargets, 1);
	assert_string_equal(t_cidr(&pr->targets[0], b), targets);
	assert_true(pr->timeout_ms > pr->keepalive_ms);
	assert_int_equal(c->nroutes, 1);
	t_check_route(c, route, listen, peer, target, allow);
	conf_free(c);
}

static void
test_examples(void **state)
{
	(void)state;
	t_check_example("east.conf", "east", "west", "10.99.0.2:7800",
	    "10.98.1.0/24", "to-west", "10.98.1.1:4444", "10.98.2.10:4444",
	    "10.98.1.0/24");
	t_check_example("west.conf", "west", "east", "10.99.0.1:7800",
	    "10.98.2.0/24", "to-east", "10.98.2.1:4444", "10.98.1.10:4444",
	    "10.98.2.0/24");
}

/* ---- announcing migrated VMs: [site] announce-*, [announce ROUTE] ---- */

/* BASE (a source route to-west) plus what a destination site announces. */
#define ANNOUNCE_OK							\
	BASE								\
	"[announce web1]\n"		/* 15 */			\
	"peer = west\n"							\
	"mac = 52:54:00:12:34:56\n"					\
	"ip = 10.98.2.50, fd00::50\n"					\
	"mac = 52:54:00:AB:CD:EF  # second NIC\n"			\
	"ip = 10.98.3.50\n"		/* 20 */			\
	"vlan = 0\n"							\
	"\n"								\
	"[announce db1]\n"		/* 23 */			\
	"mac = 02:00:00:00:00:01\n"					\
	"interface = bond0.42\n"

static void
test_announce(void **state)
{
	struct t_errs e = { 0 };
	const struct conf_announce *a;
	struct conf *c, *c2;
	char text[2048], *d1 = NULL, *d2 = NULL;
	size_t l1, l2;
	FILE *f;

	(void)state;
	/* Defaults: no interface (nothing announced), QEMU's schedule. */
	assert_int_equal(t_parse("t.conf", BASE, &c, &e), 0);
	assert_string_equal(c->site.announce_interface, "");
	assert_int_equal(c->site.announce_vlan, 0);
	assert_int_equal(c->site.announce_rounds, 5);
	assert_int_equal(c->site.announce_initial_ms, 50);
	assert_int_equal(c->site.announce_step_ms, 100);
	assert_int_equal(c->site.announce_max_ms, 550);
	assert_int_equal(c->nannounces, 0);
	assert_null(conf_announce_find(c, "to-west", "west"));
	conf_free(c);

	snprintf(text, sizeof(text), SITE_OK "announce-interface = eth1\n"
	    "announce-vlan = 4094\nannounce-rounds = 8\nannounce-initial = 1s\n"
	    "announce-step = 0\nannounce-max = 2s\n%s", ANNOUNCE_OK + strlen(
	    SITE_OK));
	assert_int_equal(t_parse("t.conf", text, &c, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(c->site.announce_interface, "eth1");
	assert_int_equal(c->site.announce_vlan, 4094);
	assert_int_equal(c->site.announce_rounds, 8);
	assert_int_equal(c->site.announce_initial_ms, 1000);
	assert_int_equal(c->site.announce_step_ms, 0);
	assert_int_equal(c->site.announce_max_ms, 2000);
	assert_int_equal(c->nannounces, 2);

	/* Lookup by route, filtered by peer when the section names one. */
	a = conf_announce_find(c, "web1", "west");
	assert_non_null(a);
	assert_null(conf_announce_find(c, "web1", "north"));
	assert_true(conf_announce_find(c, "db1", "anyone") == &c->announces[1]);
	assert_null(conf_announce_find(c, "to-west", "west"));
	assert_string_equal(a->peer, "west");
	assert_int_equal(a->nmacs, 2);
	assert_memory_equal(a->macs[0].b, "\x52\x54\x00\x12\x34\x56", 6);
	assert_memory_equal(a->macs[1].b, "\x52\x54\x00\xab\xcd\xef", 6);
	assert_int_equal(a->nips, 3);
	assert_int_equal(a->ips[0].family, AF_INET);
	assert_memory_equal(a->ips[0].addr, "\x0a\x62\x02\x32", 4);
	assert_int_equal(a->ips[0].mac, 0);
	assert_int_equal(a->ips[1].family, AF_INET6);
	assert_memory_equal(a->ips[1].addr, "\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x50",
	    16);
	assert_int_equal(a->ips[1].mac, 0);
	assert_int_equal(a->ips[2].mac, 1);
	assert_true(a->has_vlan);
	assert_int_equal(a->vlan, 0);
	assert_string_equal(a->interface, "");
	assert_string_equal(c->announces[1].interface, "bond0.42");
	assert_false(c->announces[1].has_vlan);

	/* The dump keeps each address after its MAC and reads back equal. */
	f = open_memstream(&d1, &l1);
	assert_non_null(f);
	conf_dump(c, f);
	fclose(f);
	assert_non_null(strstr(d1, "\nannounce-interface = eth1\n"
	    "announce-vlan = 4094\nannounce-rounds = 8\nannounce-initial = 1s\n"
	    "announce-step = 0s\nannounce-max = 2s\n"));
	assert_non_null(strstr(d1, "\n[announce web1]\npeer = west\n"
	    "mac = 52:54:00:12:34:56\nip = 10.98.2.50\nip = fd00::50\n"
	    "mac = 52:54:00:ab:cd:ef\nip = 10.98.3.50\nvlan = 0\n"));
	assert_non_null(strstr(d1, "\n[announce db1]\n"
	    "mac = 02:00:00:00:00:01\ninterface = bond0.42\n"));
	assert_int_equal(t_parse("/x/dump.conf", d1, &c2, &e), 0);
	f = open_memstream(&d2, &l2);
	assert_non_null(f);
	conf_dump(c2, f);
	fclose(f);
	assert_string_equal(strchr(d1, '\n'), strchr(d2, '\n'));
	free(d1);
	free(d2);
	conf_free(c);
	conf_free(c2);
	assert_int_equal(e.n, 0);
}

/* One [announce] line after the site's interface, expecting one error. */
#define ANN_SITE SITE_OK "announce-interface = eth1\n"	/* 6 lines */
#define ANN_HDR ANN_SITE "[announce r]\n"		/* 7 lines */
#define ANN_MAC ANN_HDR "mac = 52:54:00:12:34:56\n"	/* 8 lines */

static const struct t_errcase announce_errcases[] = {
	/* [site] keys */
	{ SITE_OK "announce-interface = a/b\n", "t.conf:6: announce-interface: ",
	    "expected a network interface name" },
	{ SITE_OK "announce-interface = 0123456789abcdef\n",
	    "t.conf:6: announce-interface: ", "1 to 15 characters" },
	{ SITE_OK "announce-interface = ..\n", "t.conf:6: announce-interface: ",
	    "expected a network interface name" },
	{ SITE_OK "announce-vlan = 4095\n", "t.conf:6: announce-vlan: ",
	    "expected a whole number from 0 to 4094, got \"4095\"" },
	{ SITE_OK "announce-vlan = -1\n", "t.conf:6: announce-vlan: ",
	    "whole number" },
	{ SITE_OK "announce-vlan = 10x\n", "t.conf:6: announce-vlan: ",
	    "whole number" },
	{ SITE_OK "announce-rounds = 0\n", "t.conf:6: announce-rounds: ",
	    "from 1 to 1000" },
	{ SITE_OK "announce-rounds = 99999999999999999999\n",
	    "t.conf:6: announce-rounds: ", "from 1 to 1000" },
	{ SITE_OK "announce-initial = 0ms\n", "t.conf:6: announce-initial: ",
	    "expected a duration from 1ms to 100s" },
	{ SITE_OK "announce-step = 101s\n", "t.conf:6: announce-step: ",
	    "expected a duration from 0s to 100s" },
	{ SITE_OK "announce-max = soon\n", "t.conf:6: announce-max: ",
	    "expected a duration" },
	{ ANN_SITE "announce-vlan = 1\nannounce-vlan = 2\n",
	    "t.conf:8: announce-vlan: ", "duplicate key (first set at line 7)" },
	/* [announce] sections */
	{ ANN_SITE "[announce]\n", "t.conf:7: [announce]: ",
	    "missing name, expected [announce ROUTE]" },
	{ ANN_SITE "[announce a b]\n", "t.conf:7: [announce a b]: ", "bad name" },
	{ ANN_MAC "[announce r]\n", "t.conf:9: [announce r]: ",
	    "duplicate section (first at line 7)" },
	{ ANN_HDR, "t.conf:7: mac: ", "missing in [announce r]" },
	{ ANN_HDR "ip = 10.0.0.1\nmac = 52:54:00:12:34:56\n", "t.conf:8: ip: ",
	    "put it after the \"mac = ...\" it is on" },
	{ ANN_HDR "mac = 52:54:00:12:34\n", "t.conf:8: mac: ",
	    "expected a MAC address such as 52:54:00:12:34:56, got "
	    "\"52:54:00:12:34\"" },
	{ ANN_HDR "mac = 52-54-00-12-34-56\n", "t.conf:8: mac: ",
	    "expected a MAC address" },
	{ ANN_HDR "mac = 52:54:00:12:34:5g\n", "t.conf:8: mac: ",
	    "expected a MAC address" },
	{ ANN_HDR "mac = 52:54:00:12:34:567\n", "t.conf:8: mac: ",
	    "expected a MAC address" },
	{ ANN_HDR "mac = 01:00:5e:00:00:01\n", "t.conf:8: mac: ",
	    "01:00:5e:00:00:01 is not a unicast MAC address" },
	{ ANN_HDR "mac = ff:ff:ff:ff:ff:ff\n", "t.conf:8: mac: ",
	    "not a unicast MAC address" },
	{ ANN_HDR "mac = 00:00:00:00:00:00\n", "t.conf:8: mac: ",
	    "not a unicast MAC address" },
	{ ANN_HDR "mac = ,\n", "t.conf:8: mac: ",
	    "expected at least one MAC address" },
	{ ANN_MAC "ip = 10.0.0.0/24\n", "t.conf:9: ip: ",
	    "expected an IPv4 or IPv6 address" },
	{ ANN_MAC "ip = host.example\n", "t.conf:9: ip: ",
	    "expected an IPv4 or IPv6 address" },
	{ ANN_MAC "vlan = 5000\n", "t.conf:9: vlan: ", "from 0 to 4094" },
	{ ANN_MAC "vlan = 1\nvlan = 2\n", "t.conf:10: vlan: ",
	    "duplicate key (first set at line 9)" },
	{ ANN_MAC "interface = \"eth0\"x y\n", "t.conf:9: interface: ",
	    "expected a network interface name" },
	{ ANN_MAC "peer = nobody\n", "t.conf:9: peer: ",
	    "unknown peer \"nobody\"" },
	{ ANN_MAC "listen = 10.0.0.1:1\n", "t.conf:9: listen: ",
	    "unknown key in [announce r]" },
	{ SITE_OK "[announce r]\nmac = 52:54:00:12:34:56\n",
	    "t.conf:6: interface: ", "[announce r] has nowhere to send: set "
	    "announce-interface in [site] or interface here" },
};

static void
test_announce_errors(void **state)
{
	char text[8192];
	struct t_errs e = { 0 };
	struct conf *c;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(announce_errcases) /
	    sizeof(announce_errcases[0]); i++) {
		const struct t_errcase *tc = &announce_errcases[i];
		struct conf *cc = (struct conf *)&e;	/* must become NULL */
		int rc;

		rc = t_parse("t.conf", tc->text, &cc, &e);
		if (rc != WM_ERR_CONFIG || cc != NULL || e.n != 1) {
			print_error("case %zu (%s): rc %d, %d errors\n", i,
			    tc->prefix, rc, e.n);
			t_errs_print(&e);
			fail();
		}
		t_expect(&e, 0, tc->prefix, tc->substr);
		t_errs_free(&e);
	}

	/* Bounds: CONF_ANNOUNCE_MACS_MAX MACs and _IPS_MAX addresses. */
	n = (size_t)snprintf(text, sizeof(text), ANN_HDR);
	for (int i = 0; i <= CONF_ANNOUNCE_MACS_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "mac = 02:00:00:00:00:%02x\n", i + 1);
	assert_int_equal(t_parse("t.conf", text, &c, &e), WM_ERR_CONFIG);
	assert_int_equal(e.n, 1);
	t_expect(&e, 0, "t.conf:40: mac: ", "too many MAC addresses (max 32)");
	t_errs_free(&e);
	n = (size_t)snprintf(text, sizeof(text), ANN_MAC);
	for (int i = 0; i <= CONF_ANNOUNCE_IPS_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "ip = 10.0.0.%d\n", i + 1);
	assert_int_equal(t_parse("t.conf", text, &c, &e), WM_ERR_CONFIG);
	assert_int_equal(e.n, 1);
	t_expect(&e, 0, "t.conf:73: ip: ", "too many addresses (max 64)");
	t_errs_free(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_base_valid),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_missing_all),
		cmocka_unit_test(test_multiple_errors),
		cmocka_unit_test(test_line_api),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_dump_roundtrip),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_announce),
		cmocka_unit_test(test_announce_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

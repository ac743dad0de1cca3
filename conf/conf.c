/*
 * conf.c - parser, validator and dumper for the gateway's configuration.
 *
 * Each line is classified (blank/comment, "[section]", "key = value") and
 * values go through the keyword table in conf_keys.h. A section is checked
 * when the next one opens (defaults, required keys, per-section rules); the
 * whole file is cross-checked in conf_parse_finish(). Errors are counted and
 * reported, never fatal, so that one run lists them all.
 */
#include "conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_keys.h"
#include "wm_err.h"
#include "wm_log.h"

enum conf_sect {
	CONF_S_NONE,		/* before the first section header */
	CONF_S_SITE,
	CONF_S_PEER,
	CONF_S_ROUTE,
	CONF_S_ANNOUNCE,
	CONF_S_SKIP,		/* a rejected header: its keys are ignored */
};

enum conf_type {
	CONF_T_NAME,		/* char[CONF_NAME_MAX], [A-Za-z0-9._-] */
	CONF_T_ADDR,		/* struct wm_addr (+ bool has_ flag) */
	CONF_T_PATH,		/* char[PATH_MAX], relative to conf->dir */
	CONF_T_LOGLEVEL,	/* int, enum wm_log_level */
	CONF_T_BOOL,		/* bool */
	CONF_T_DURATION,	/* uint64_t milliseconds */
	CONF_T_SIZE,		/* uint64_t bytes */
	CONF_T_CIDRS,		/* struct wm_cidr * (+ size_t count) */
	CONF_T_RATE,		/* uint64_t bits per second, 0 = unlimited */
	CONF_T_CONGESTION,	/* int, enum conf_congestion */
	CONF_T_CODEC,		/* int, enum conf_codec */
	CONF_T_IFNAME,		/* char[CONF_IFNAME_MAX], a network interface */
	CONF_T_UINT,		/* uint32_t in [min, max] (+ bool has_ flag) */
	CONF_T_MACS,		/* struct conf_mac * (+ size_t count) */
	CONF_T_IPS,		/* struct conf_ip * (+ size_t count); each
				   belongs to the section's last MAC so far */
};

/* Keywords of the enumerated types, in the order of their values. */
struct conf_enum {
	const char *const *names;
	int n;
	const char *expect;     /* for the error message */
};
static const char *const conf_cc_names[] = { "system", "bbr", "cubic" };
static const char *const conf_codec_names[] = { "auto", "none", "lz4", "zstd" };
static const struct conf_enum conf_cc_enum = { conf_cc_names, 3,
	"bbr, cubic or system" };
static const struct conf_enum conf_codec_enum = { conf_codec_names, 4,
	"auto, lz4, zstd or none" };

#define CONF_F_REQUIRED 0x1
#define CONF_F_REPEAT 0x2

enum conf_key_id {
#define CONF_KEY_ENUM(id, ...) id,
	CONF_KEYS(CONF_KEY_ENUM)
#undef CONF_KEY_ENUM
	CK_COUNT
};

struct conf_key {
	enum conf_sect sect;
	const char *name;
	enum conf_type type;
	size_t off;
	size_t aux;
	unsigned flags;
	uint64_t min;
	uint64_t max;
	const char *dflt;
};

static const struct conf_key conf_keys[CK_COUNT] = {
#define CONF_KEY_ROW(id, sect, kw, type, off, aux, flags, min, max, dflt) \
	[id] = { sect, kw, type, off, aux, flags, min, max, dflt },
	CONF_KEYS(CONF_KEY_ROW)
#undef CONF_KEY_ROW
};

static const char *const conf_log_levels[] = { "error", "warn", "info",
	"debug" };

/*
 * Where each key of one section was set: 0 = absent, > 0 = line, < 0 = the
 * negated line of a value that was rejected (so that later checks do not
 * pile more errors on it).
 */
struct conf_seen {
	int line[CK_COUNT];
};

struct conf_parse {
	struct conf *c;
	conf_error_cb errcb;
	void *arg;
	unsigned nerr;
	bool nomem;
	int lastline;
	enum conf_sect sect;		/* section being read */
	size_t idx;			/* its index in peers[] / routes[] */
	bool have_site;
	struct conf_seen site_seen;
	struct conf_seen *peer_seen;	/* parallel to c->peers */
	struct conf_seen *route_seen;	/* parallel to c->routes */
	struct conf_seen *announce_seen; /* parallel to c->announces */
	size_t peer_cap;
	size_t route_cap;
	size_t announce_cap;
};

static void conf_error(struct conf_parse *, int, const char *, const char *,
    ...) __attribute__((format(printf, 4, 5)));

/* Reports "FILE:LINE: KEY: message"; KEY is cut if absurdly long. */
static void
conf_error(struct conf_parse *p, int line, const char *key, const char *fmt,
    ...)
{
	char msg[1024], out[PATH_MAX + 1200];
	va_list ap;
	int klen = (int)strnlen(key, 80);

	p->nerr++;
	if (p->errcb == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(out, sizeof(out), "%s:%d: %.*s%s: %s", p->c->path, line,
	    klen, key, key[klen] != '\0' ? "..." : "", msg);
	p->errcb(out, p->arg);
}

static bool
conf_is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Trims blanks in place; returns the first non-blank character. */
static char *
conf_trim(char *s)
{
	size_t len;

	while (conf_is_space(*s))
		s++;
	len = strlen(s);
	while (len > 0 && conf_is_space(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* Cuts a '#' or ';' comment that starts the line or follows a blank. */
static void
conf_strip_comment(char *s)
{
	for (size_t i = 0; s[i] != '\0'; i++) {
		if ((s[i] == '#' || s[i] == ';') &&
		    (i == 0 || conf_is_space(s[i - 1]))) {
			s[i] = '\0';
			return;
		}
	}
}

static bool
conf_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len >= CONF_NAME_MAX)
		return false;
	for (; *s != '\0'; s++) {
		char ch = *s;

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		    ch == '-'))
			return false;
	}
	return true;
}

/* Formats milliseconds so that wm_duration_parse reads them back. */
static const char *
conf_duration_format(uint64_t ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ms", ms);
	return buf;
}

/* Formats bytes so that wm_size_parse reads them back. */
static const char *
conf_size_format(uint64_t v, char *buf, size_t len)
{
	static const char suffix[] = "kmg";
	int i = -1;

	while (i < 2 && v != 0 && v % 1024 == 0) {
		v /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, suffix[i]);
	return buf;
}

static bool
conf_addr_equal(const struct wm_addr *a, const struct wm_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* "[site]", "[peer NAME]", "[route NAME]" for the section being read. */
static const char *
conf_sect_label(const struct conf_parse *p, enum conf_sect sect, size_t idx,
    char *buf, size_t len)
{
	switch (sect) {
	case CONF_S_SITE:
		snprintf(buf, len, "[site]");
		break;
	case CONF_S_PEER:
		snprintf(buf, len, "[peer %s]", p->c->peers[idx].name);
		break;
	case CONF_S_ROUTE:
		snprintf(buf, len, "[route %s]", p->c->routes[idx].name);
		break;
	case CONF_S_ANNOUNCE:
		snprintf(buf, len, "[announce %s]", p->c->announces[idx].name);
		break;
	default:
		snprintf(buf, len, "[?]");
		break;
	}
	return buf;
}

/* The struct, the seen-lines and the header line of a section. */
static void *
conf_sect_base(struct conf_parse *p, enum conf_sect sect, size_t idx,
    struct conf_seen **seen, int *line)
{
	switch (sect) {
	case CONF_S_SITE:
		*seen = &p->site_seen;
		*line = p->c->site.line;
		return &p->c->site;
	case CONF_S_PEER:
		*seen = &p->peer_seen[idx];
		*line = p->c->peers[idx].line;
		return &p->c->peers[idx];
	case CONF_S_ROUTE:
		*seen = &p->route_seen[idx];
		*line = p->c->routes[idx].line;
		return &p->c->routes[idx];
	case CONF_S_ANNOUNCE:
		*seen = &p->announce_seen[idx];
		*line = p->c->announces[idx].line;
		return &p->c->announces[idx];
	default:
		*seen = NULL;
		*line = 0;
		return NULL;
	}
}

static int
conf_set_path(struct conf_parse *p, const struct conf_key *k, char *dst,
    const char *val, int line)
{
	const char *dir = p->c->dir;
	size_t dlen = strlen(dir);
	int n;

	if (val[0] == '/')
		n = snprintf(dst, PATH_MAX, "%s", val);
	else
		n = snprintf(dst, PATH_MAX, "%s%s%s", dir,
		    dlen > 0 && dir[dlen - 1] == '/' ? "" : "/", val);
	if (n < 0 || n >= PATH_MAX) {
		dst[0] = '\0';
		conf_error(p, line, k->name, "path too long (max %d bytes)",
		    PATH_MAX - 1);
		return -1;
	}
	return 0;
}

static int
conf_set_bounded(struct conf_parse *p, const struct conf_key *k,
    uint64_t *dst, const char *val, int line)
{
	char lo[32], hi[32];
	uint64_t v;
	int rc;

	if (k->type == CONF_T_DURATION)
		rc = wm_duration_parse(val, &v);
	else
		rc = wm_size_parse(val, &v);
	if (rc == 0 && v >= k->min && v <= k->max) {
		*dst = v;
		return 0;
	}
	if (k->type == CONF_T_DURATION)
		conf_error(p, line, k->name, "expected a duration from %s to %s "
		    "(e.g. 500ms, 30s, 2m), got \"%.64s\"",
		    conf_duration_format(k->min, lo, sizeof(lo)),
		    conf_duration_format(k->max, hi, sizeof(hi)), val);
	else
		conf_error(p, line, k->name, "expected a size from %s to %s "
		    "(e.g. 512k, 8m), got \"%.64s\"",
		    conf_size_format(k->min, lo, sizeof(lo)),
		    conf_size_format(k->max, hi, sizeof(hi)), val);
	return -1;
}

/* Appends each prefix of a comma and/or blank separated list. */
static int
conf_set_cidrs(struct conf_parse *p, const struct conf_key *k, void *base,
    char *val, int line)
{
	struct wm_cidr **list = (struct wm_cidr **)((char *)base + k->off);
	size_t *n = (size_t *)((char *)base + k->aux);
	char *tok, *save = NULL;
	size_t ntok = 0;
	int rc = 0;

	for (tok = strtok_r(val, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		struct wm_cidr cidr, *grown;

		if (wm_cidr_parse(tok, &cidr) != 0) {
			conf_error(p, line, k->name, "expected an address "
			    "prefix such as 10.0.0.0/8 or fd00::/8 (host bits "
			    "zero), got \"%.64s\"", tok);
			rc = -1;
			continue;
		}
		if (*n >= CONF_CIDRS_MAX) {
			conf_error(p, line, k->name, "too many prefixes "
			    "(max %d)", CONF_CIDRS_MAX);
			return -1;
		}
		grown = realloc(*list, (*n + 1) * sizeof(**list));
		if (grown == NULL) {
			p->nomem = true;
			conf_error(p, line, k->name, "out of memory");
			return -1;
		}
		*list = grown;
		(*list)[(*n)++] = cidr;
		ntok++;
	}
	if (rc == 0 && ntok == 0) {
		conf_error(p, line, k->name, "expected at least one address "
		    "prefix");
		rc = -1;
	}
	return rc;
}

/* As Linux's dev_valid_name(): 1..15 bytes, no '/', ':' or blank, not "."
 * or "..". */
static bool
conf_ifname_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len >= CONF_IFNAME_MAX || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0)
		return false;
	for (; *s != '\0'; s++)
		if (*s == '/' || *s == ':' || conf_is_space(*s) ||
		    (unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static int
conf_hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
conf_mac_parse(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		int hi = conf_hexval(s[0]), lo = hi < 0 ? -1 : conf_hexval(s[1]);

		if (lo < 0 || s[2] != (i < 5 ? ':' : '\0'))
			return WM_ERR_INVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
		s += 3;
	}
	return 0;
}

static int
conf_set_uint(struct conf_parse *p, const struct conf_key *k, void *base,
    const char *val, int line)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(val, &end, 10);
	if (val[0] < '0' || val[0] > '9' || *end != '\0' || errno != 0 ||
	    v < k->min || v > k->max) {
		conf_error(p, line, k->name, "expected a whole number from %"
		    PRIu64 " to %" PRIu64 ", got \"%.64s\"", k->min, k->max,
		    val);
		return -1;
	}
	*(uint32_t *)((char *)base + k->off) = (uint32_t)v;
	if (k->aux != CONF_NOAUX)
		*(bool *)((char *)base + k->aux) = true;
	return 0;
}

/*
 * Appends each MAC (CONF_T_MACS) or address (CONF_T_IPS) of a comma and/or
 * blank separated list. Only [announce] has these keys: an address belongs
 * to the last MAC given before it in the section.
 */
static int
conf_set_announce_list(struct conf_parse *p, const struct conf_key *k,
    struct conf_announce *a, char *val, int line)
{
	char *tok, *save = NULL;
	size_t ntok = 0;
	int rc = 0;

	for (tok = strtok_r(val, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		struct conf_mac mac;
		struct conf_ip ip;
		void *grown;

		memset(&ip, 0, sizeof(ip));
		if (k->type == CONF_T_MACS) {
			static const uint8_t zero[6];

			if (conf_mac_parse(tok, mac.b) != 0) {
				conf_error(p, line, k->name, "expected a MAC "
				    "address such as 52:54:00:12:34:56, got "
				    "\"%.64s\"", tok);
				rc = -1;
				continue;
			}
			if ((mac.b[0] & 1) != 0 ||
			    memcmp(mac.b, zero, sizeof(zero)) == 0) {
				conf_error(p, line, k->name, "%s is not a "
				    "unicast MAC address", tok);
				rc = -1;
				continue;
			}
			if (a->nmacs >= CONF_ANNOUNCE_MACS_MAX) {
				conf_error(p, line, k->name, "too many MAC "
				    "addresses (max %d)", CONF_ANNOUNCE_MACS_MAX);
				return -1;
			}
			grown = realloc(a->macs, (a->nmacs + 1) *
			    sizeof(*a->macs));
			if (grown == NULL)
				goto nomem;
			a->macs = grown;
			a->macs[a->nmacs++] = mac;
		} else {
			if (inet_pton(AF_INET, tok, ip.addr) == 1) {
				ip.family = AF_INET;
			} else if (inet_pton(AF_INET6, tok, ip.addr) == 1) {
				ip.family = AF_INET6;
			} else {
				conf_error(p, line, k->name, "expected an IPv4 "
				    "or IPv6 address such as 10.98.2.50 or "
				    "fd00::50, got \"%.64s\"", tok);
				rc = -1;
				continue;
			}
			if (a->nmacs == 0) {
				conf_error(p, line, k->name, "an address "
				    "belongs to a NIC: put it after the \"mac = "
				    "...\" it is on");
				return -1;
			}
			if (a->nips >= CONF_ANNOUNCE_IPS_MAX) {
				conf_error(p, line, k->name, "too many "
				    "addresses (max %d)", CONF_ANNOUNCE_IPS_MAX);
				return -1;
			}
			ip.mac = a->nmacs - 1;
			grown = realloc(a->ips, (a->nips + 1) * sizeof(*a->ips));
			if (grown == NULL)
				goto nomem;
			a->ips = grown;
			a->ips[a->nips++] = ip;
		}
		ntok++;
	}
	if (rc == 0 && ntok == 0) {
		conf_error(p, line, k->name, "expected at least one %s",
		    k->type == CONF_T_MACS ? "MAC address" : "address");
		rc = -1;
	}
	return rc;
nomem:
	p->nomem = true;
	conf_error(p, line, k->name, "out of memory");
	return -1;
}

/* Parses val into the field k describes; reports and returns -1 if bad. */
static int
conf_set_value(struct conf_parse *p, const struct conf_key *k, void *base,
    char *val, int line)
{
	void *field = (char *)base + k->off;
	int level;

	switch (k->type) {
	case CONF_T_NAME:
		if (!conf_name_valid(val)) {
			conf_error(p, line, k->name, "expected a name of 1 to %d "
			    "characters from A-Z a-z 0-9 . _ -, got \"%.64s\"",
			    CONF_NAME_MAX - 1, val);
			return -1;
		}
		snprintf(field, CONF_NAME_MAX, "%s", val);
		return 0;
	case CONF_T_ADDR:
		if (wm_addr_parse(val, field) != 0) {
			conf_error(p, line, k->name, "expected a numeric "
			    "ADDRESS:PORT such as 10.0.0.1:7800, *:7800 or "
			    "[fd00::1]:7800, got \"%.64s\"", val);
			return -1;
		}
		if (k->aux != CONF_NOAUX)
			*(bool *)((char *)base + k->aux) = true;
		return 0;
	case CONF_T_PATH:
		return conf_set_path(p, k, field, val, line);
	case CONF_T_LOGLEVEL:
		level = wm_log_level_parse(val);
		if (level < 0) {
			conf_error(p, line, k->name, "expected error, warn, "
			    "info or debug, got \"%.64s\"", val);
			return -1;
		}
		*(int *)field = level;
		return 0;
	case CONF_T_BOOL:
		if (strcmp(val, "yes") == 0 || strcmp(val, "true") == 0 ||
		    strcmp(val, "on") == 0) {
			*(bool *)field = true;
			return 0;
		}
		if (strcmp(val, "no") == 0 || strcmp(val, "false") == 0 ||
		    strcmp(val, "off") == 0) {
			*(bool *)field = false;
			return 0;
		}
		conf_error(p, line, k->name, "expected yes, no, true, false, "
		    "on or off, got \"%.64s\"", val);
		return -1;
	case CONF_T_DURATION:
	case CONF_T_SIZE:
		return conf_set_bounded(p, k, field, val, line);
	case CONF_T_CIDRS:
		return conf_set_cidrs(p, k, base, val, line);
	case CONF_T_RATE:
		if (wm_rate_parse(val, field) != 0) {
			conf_error(p, line, k->name, "expected a rate in bits/s "
			    "such as 250mbit, 1gbit, 500k or unlimited, got "
			    "\"%.64s\"", val);
			return -1;
		}
		return 0;
	case CONF_T_CONGESTION:
	case CONF_T_CODEC: {
		const struct conf_enum *e = k->type == CONF_T_CODEC ?
		    &conf_codec_enum : &conf_cc_enum;

		for (int i = 0; i < e->n; i++) {
			if (strcmp(val, e->names[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		conf_error(p, line, k->name, "expected %s, got \"%.64s\"",
		    e->expect, val);
		return -1;
	}
	case CONF_T_IFNAME:
		if (!conf_ifname_valid(val)) {
			conf_error(p, line, k->name, "expected a network "
			    "interface name of 1 to %d characters, got "
			    "\"%.64s\"", CONF_IFNAME_MAX - 1, val);
			return -1;
		}
		snprintf(field, CONF_IFNAME_MAX, "%s", val);
		return 0;
	case CONF_T_UINT:
		return conf_set_uint(p, k, base, val, line);
	case CONF_T_MACS:
	case CONF_T_IPS:
		return conf_set_announce_list(p, k, base, val, line);
	}
	return -1;
}

/* Applies defaults and the checks that need the whole section. */
static void
conf_section_close(struct conf_parse *p)
{
	struct conf_seen *seen;
	char label[CONF_NAME_MAX + 16], dflt[64];
	void *base;
	int hline;

	base = conf_sect_base(p, p->sect, p->idx, &seen, &hline);
	if (base == NULL) {
		p->sect = CONF_S_NONE;
		return;
	}
	conf_sect_label(p, p->sect, p->idx, label, sizeof(label));
	for (size_t id = 0; id < CK_COUNT; id++) {
		const struct conf_key *k = &conf_keys[id];

		if (k->sect != p->sect || seen->line[id] != 0)
			continue;
		if (k->flags & CONF_F_REQUIRED) {
			conf_error(p, hline, k->name, "missing in %s", label);
		} else if (k->dflt != NULL) {
			snprintf(dflt, sizeof(dflt), "%s", k->dflt);
			conf_set_value(p, k, base, dflt, hline);
		}
	}
	if (p->sect == CONF_S_SITE) {
		struct conf_site *s = base;

		if (seen->line[CK_SITE_CONTROL] == 0 && s->name[0] != '\0')
			snprintf(s->control, sizeof(s->control),
			    "/run/wanmig/%s.sock", s->name);
	} else if (p->sect == CONF_S_PEER) {
		const struct conf_peer *pr = base;
		int kl = seen->line[CK_PEER_KEEPALIVE];
		int tl = seen->line[CK_PEER_TIMEOUT];
		char other[32];

		if (kl >= 0 && tl >= 0 && pr->timeout_ms <= pr->keepalive_ms) {
			if (tl > 0)
				conf_error(p, tl, "timeout", "must be greater "
				    "than keepalive (%s)", conf_duration_format(
				    pr->keepalive_ms, other, sizeof(other)));
			else
				conf_error(p, kl > 0 ? kl : hline, "keepalive",
				    "must be less than timeout (%s)",
				    conf_duration_format(pr->timeout_ms, other,
				    sizeof(other)));
		}
	}
	p->sect = CONF_S_NONE;
}

/*
 * Returns arr grown to hold at least n + 1 elem-sized items (new ones
 * zeroed), or NULL with arr untouched if memory is short.
 */
static void *
conf_grow(void *arr, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	char *grown;

	if (n < *cap)
		return arr;
	ncap = *cap == 0 ? 4 : *cap * 2;
	if ((grown = realloc(arr, ncap * elem)) == NULL)
		return NULL;
	memset(grown + *cap * elem, 0, (ncap - *cap) * elem);
	*cap = ncap;
	return grown;
}

static void
conf_peer_open(struct conf_parse *p, const char *label, const char *name,
    int line)
{
	struct conf *c = p->c;
	size_t cap = p->peer_cap;
	void *arr;

	for (size_t i = 0; i < c->npeers; i++) {
		if (strcmp(c->peers[i].name, name) == 0) {
			conf_error(p, line, label, "duplicate section (first "
			    "at line %d)", c->peers[i].line);
			return;
		}
	}
	if (c->npeers >= CONF_PEERS_MAX) {
		conf_error(p, line, label, "too many peers (max %d)",
		    CONF_PEERS_MAX);
		return;
	}
	/* Both arrays keep the same capacity: grow the conf's, then ours. */
	if ((arr = conf_grow(c->peers, &cap, c->npeers,
	    sizeof(*c->peers))) == NULL)
		goto nomem;
	c->peers = arr;
	if ((arr = conf_grow(p->peer_seen, &p->peer_cap, c->npeers,
	    sizeof(*p->peer_seen))) == NULL)
		goto nomem;
	p->peer_seen = arr;
	snprintf(c->peers[c->npeers].name, CONF_NAME_MAX, "%s", name);
	c->peers[c->npeers].line = line;
	p->idx = c->npeers++;
	p->sect = CONF_S_PEER;
	return;
nomem:
	p->nomem = true;
	conf_error(p, line, label, "out of memory");
}

static void
conf_route_open(struct conf_parse *p, const char *label, const char *name,
    int line)
{
	struct conf *c = p->c;
	size_t cap = p->route_cap;
	void *arr;

	for (size_t i = 0; i < c->nroutes; i++) {
		if (strcmp(c->routes[i].name, name) == 0) {
			conf_error(p, line, label, "duplicate section (first "
			    "at line %d)", c->routes[i].line);
			return;
		}
	}
	if (c->nroutes >= CONF_ROUTES_MAX) {
		conf_error(p, line, label, "too many routes (max %d)",
		    CONF_ROUTES_MAX);
		return;
	}
	/* Both arrays keep the same capacity: grow the conf's, then ours. */
	if ((arr = conf_grow(c->routes, &cap, c->nroutes,
	    sizeof(*c->routes))) == NULL)
		goto nomem;
	c->routes = arr;
	if ((arr = conf_grow(p->route_seen, &p->route_cap, c->nroutes,
	    sizeof(*p->route_seen))) == NULL)
		goto nomem;
	p->route_seen = arr;
	snprintf(c->routes[c->nroutes].name, CONF_NAME_MAX, "%s", name);
	c->routes[c->nroutes].line = line;
	p->idx = c->nroutes++;
	p->sect = CONF_S_ROUTE;
	return;
nomem:
	p->nomem = true;
	conf_error(p, line, label, "out of memory");
}

static void
conf_announce_open(struct conf_parse *p, const char *label, const char *name,
    int line)
{
	struct conf *c = p->c;
	size_t cap = p->announce_cap;
	void *arr;

	for (size_t i = 0; i < c->nannounces; i++) {
		if (strcmp(c->announces[i].name, name) == 0) {
			conf_error(p, line, label, "duplicate section (first "
			    "at line %d)", c->announces[i].line);
			return;
		}
	}
	if (c->nannounces >= CONF_ANNOUNCES_MAX) {
		conf_error(p, line, label, "too many [announce] sections "
		    "(max %d)", CONF_ANNOUNCES_MAX);
		return;
	}
	/* Both arrays keep the same capacity: grow the conf's, then ours. */
	if ((arr = conf_grow(c->announces, &cap, c->nannounces,
	    sizeof(*c->announces))) == NULL)
		goto nomem;
	c->announces = arr;
	if ((arr = conf_grow(p->announce_seen, &p->announce_cap,
	    c->nannounces, sizeof(*p->announce_seen))) == NULL)
		goto nomem;
	p->announce_seen = arr;
	snprintf(c->announces[c->nannounces].name, CONF_NAME_MAX, "%s", name);
	c->announces[c->nannounces].line = line;
	p->idx = c->nannounces++;
	p->sect = CONF_S_ANNOUNCE;
	return;
nomem:
	p->nomem = true;
	conf_error(p, line, label, "out of memory");
}

/* s: the trimmed line, starting with '['. */
static void
conf_section_open(struct conf_parse *p, char *s, int line)
{
	char inner[CONF_LINE_MAX + 1];
	char *rb, *type, *name;

	conf_section_close(p);
	p->sect = CONF_S_SKIP;
	rb = strchr(s, ']');
	if (rb == NULL) {
		conf_error(p, line, s, "expected ']' to close the section "
		    "header");
		return;
	}
	if (rb[1] != '\0') {
		rb[1] = '\0';
		conf_error(p, line, s, "unexpected text after ']'");
		return;
	}
	/* s is the header as written (the KEY of messages); parse a copy. */
	snprintf(inner, sizeof(inner), "%.*s", (int)(rb - s - 1), s + 1);
	type = conf_trim(inner);
	name = type + strcspn(type, " \t");
	if (*name != '\0')
		*name++ = '\0';
	name = conf_trim(name);

	if (strcmp(type, "site") == 0) {
		if (*name != '\0') {
			conf_error(p, line, s, "[site] takes no name (set it "
			    "with \"name = ...\")");
		} else if (p->have_site) {
			conf_error(p, line, s, "duplicate section (first at "
			    "line %d)", p->c->site.line);
		} else {
			p->have_site = true;
			p->c->site.line = line;
			p->sect = CONF_S_SITE;
		}
		return;
	}
	if (strcmp(type, "peer") != 0 && strcmp(type, "route") != 0 &&
	    strcmp(type, "announce") != 0) {
		conf_error(p, line, s, "unknown section (expected [site], "
		    "[peer NAME], [route NAME] or [announce ROUTE])");
		return;
	}
	if (*name == '\0') {
		conf_error(p, line, s, "missing name, expected [%s %s]", type,
		    type[0] == 'a' ? "ROUTE" : "NAME");
		return;
	}
	if (!conf_name_valid(name)) {
		conf_error(p, line, s, "bad name, expected 1 to %d characters "
		    "from A-Z a-z 0-9 . _ -", CONF_NAME_MAX - 1);
		return;
	}
	if (type[0] == 'p')
		conf_peer_open(p, s, name, line);
	else if (type[0] == 'a')
		conf_announce_open(p, s, name, line);
	else
		conf_route_open(p, s, name, line);
}

/* s: the trimmed line, neither blank nor a header. */
static void
conf_key_value(struct conf_parse *p, char *s, int line)
{
	char label[CONF_NAME_MAX + 16];
	struct conf_seen *seen;
	const struct conf_key *k = NULL;
	char *eq, *key, *val;
	void *base;
	size_t id;
	int hline;

	eq = strchr(s, '=');
	if (eq == NULL) {
		conf_error(p, line, s, "expected \"key = value\"");
		return;
	}
	*eq = '\0';
	key = conf_trim(s);
	val = conf_trim(eq + 1);
	if (*key == '\0') {
		conf_error(p, line, "=", "missing key before '='");
		return;
	}
	if (p->sect == CONF_S_SKIP)
		return;
	if (p->sect == CONF_S_NONE) {
		conf_error(p, line, key, "key outside a section (expected "
		    "[site], [peer NAME], [route NAME] or [announce ROUTE] "
		    "first)");
		return;
	}
	for (id = 0; id < CK_COUNT; id++) {
		if (conf_keys[id].sect == p->sect &&
		    strcmp(conf_keys[id].name, key) == 0) {
			k = &conf_keys[id];
			break;
		}
	}
	conf_sect_label(p, p->sect, p->idx, label, sizeof(label));
	if (k == NULL) {
		conf_error(p, line, key, "unknown key in %s", label);
		return;
	}
	base = conf_sect_base(p, p->sect, p->idx, &seen, &hline);
	if (seen->line[id] != 0 && !(k->flags & CONF_F_REPEAT)) {
		conf_error(p, line, key, "duplicate key (first set at line %d)",
		    abs(seen->line[id]));
		return;
	}
	if (*val == '\0') {
		conf_error(p, line, key, "empty value");
		seen->line[id] = -line;
		return;
	}
	if (conf_set_value(p, k, base, val, line) != 0)
		seen->line[id] = -line;
	else if (seen->line[id] == 0)
		seen->line[id] = line;
}

/*
 * Sets c->dir to the folder of c->path, made absolute (against the current
 * folder) so that a daemon's later chdir("/") does not break relative paths.
 * Falls back to the folder as written if that cannot be done.
 */
static void
conf_dir_init(struct conf *c)
{
	char cwd[PATH_MAX], folder[PATH_MAX];
	const char *slash = strrchr(c->path, '/'), *rel;
	int n;

	if (slash == NULL)
		snprintf(folder, sizeof(folder), ".");
	else if (slash == c->path)
		snprintf(folder, sizeof(folder), "/");
	else
		snprintf(folder, sizeof(folder), "%.*s",
		    (int)(slash - c->path), c->path);
	rel = strncmp(folder, "./", 2) == 0 ? folder + 2 : folder;
	if (folder[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		n = -1;
	else if (strcmp(folder, ".") == 0)
		n = snprintf(c->dir, sizeof(c->dir), "%s", cwd);
	else
		n = snprintf(c->dir, sizeof(c->dir), "%s/%s", cwd, rel);
	if (n < 0 || (size_t)n >= sizeof(c->dir))
		snprintf(c->dir, sizeof(c->dir), "%s", folder);
}

struct conf_parse *
conf_parse_new(const char *path, conf_error_cb errcb, void *arg)
{
	struct conf_parse *p;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->c = calloc(1, sizeof(*p->c))) == NULL) {
		free(p);
		return NULL;
	}
	p->errcb = errcb;
	p->arg = arg;
	if (path == NULL || *path == '\0')
		path = "(config)";
	snprintf(p->c->path, sizeof(p->c->path), "%s", path);

	conf_dir_init(p->c);
	return p;
}

void
conf_parse_line(struct conf_parse *p, const char *line, int lineno)
{
	char buf[CONF_LINE_MAX + 3];
	size_t len;
	char *s;

	if (p == NULL)
		return;
	p->lastline = lineno;
	len = strnlen(line, CONF_LINE_MAX + 2);
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > CONF_LINE_MAX) {
		conf_error(p, lineno, "line", "line too long (max %d bytes)",
		    CONF_LINE_MAX);
		return;
	}
	memcpy(buf, line, len);
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			conf_error(p, lineno, "line", "control character 0x%02x "
			    "at column %zu", ch, i + 1);
			return;
		}
	}
	conf_strip_comment(buf);
	s = conf_trim(buf);
	if (*s == '\0')
		return;
	if (*s == '[')
		conf_section_open(p, s, lineno);
	else
		conf_key_value(p, s, lineno);
}

/* Route cross-checks: the peer exists, listeners are unique. */
static void
conf_check_routes(struct conf_parse *p)
{
	const struct conf *c = p->c;
	char addr[WM_ADDRSTRLEN];

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct conf_route *r = &c->routes[i];
		int pl = p->route_seen[i].line[CK_ROUTE_PEER];
		int ll = p->route_seen[i].line[CK_ROUTE_LISTEN];

		if (pl > 0 && conf_peer_find(c, r->peer) == NULL)
			conf_error(p, pl, "peer", "unknown peer \"%s\" (no "
			    "[peer %s] section)", r->peer, r->peer);
		if (ll <= 0)
			continue;
		wm_addr_format((const struct sockaddr *)&r->listen.ss, addr,
		    sizeof(addr));
		if (c->site.has_listen &&
		    conf_addr_equal(&r->listen, &c->site.listen)) {
			conf_error(p, ll, "listen", "%s is also the site's WAN "
			    "listener", addr);
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			if (p->route_seen[j].line[CK_ROUTE_LISTEN] > 0 &&
			    conf_addr_equal(&r->listen, &c->routes[j].listen)) {
				conf_error(p, ll, "listen", "%s is already the "
				    "listener of [route %s] (line %d)", addr,
				    c->routes[j].name,
				    p->route_seen[j].line[CK_ROUTE_LISTEN]);
				break;
			}
		}
	}
}

/* [announce] cross-checks: the peer exists, an interface is known. */
static void
conf_check_announces(struct conf_parse *p)
{
	const struct conf *c = p->c;

	for (size_t i = 0; i < c->nannounces; i++) {
		const struct conf_announce *a = &c->announces[i];
		int pl = p->announce_seen[i].line[CK_ANNOUNCE_PEER];

		if (pl > 0 && conf_peer_find(c, a->peer) == NULL)
			conf_error(p, pl, "peer", "unknown peer \"%s\" (no "
			    "[peer %s] section)", a->peer, a->peer);
		if (a->interface[0] == '\0' &&
		    c->site.announce_interface[0] == '\0' &&
		    p->announce_seen[i].line[CK_ANNOUNCE_INTERFACE] == 0 &&
		    p->site_seen.line[CK_SITE_ANNOUNCE_INTERFACE] == 0)
			conf_error(p, a->line, "interface", "[announce %s] has "
			    "nowhere to send: set announce-interface in [site] "
			    "or interface here", a->name);
	}
}

int
conf_parse_finish(struct conf_parse *p, struct conf **out)
{
	int rc;

	if (out != NULL)
		*out = NULL;
	if (p == NULL)
		return WM_ERR_NOMEM;
	conf_section_close(p);
	if (!p->have_site)
		conf_error(p, p->lastline > 0 ? p->lastline : 1, "[site]",
		    "missing section (exactly one [site] is required)");
	conf_check_routes(p);
	conf_check_announces(p);

	if (p->nomem) {
		rc = WM_ERR_NOMEM;
	} else if (p->nerr > 0) {
		rc = WM_ERR_CONFIG;
	} else {
		rc = 0;
		if (out != NULL) {
			*out = p->c;
			p->c = NULL;
		}
	}
	conf_free(p->c);
	free(p->peer_seen);
	free(p->route_seen);
	free(p->announce_seen);
	free(p);
	return rc;
}

int
conf_load(const char *path, struct conf **out, conf_error_cb errcb,
    void *arg)
{
	struct conf_parse *p = NULL;
	char buf[CONF_LINE_MAX + 3];
	FILE *f = NULL;
	int ch, lineno = 0, rc;

	if (out != NULL)
		*out = NULL;
	if ((p = conf_parse_new(path, errcb, arg)) == NULL) {
		rc = WM_ERR_NOMEM;
		goto out;
	}
	if ((f = fopen(path, "r")) == NULL) {
		conf_error(p, 0, "file", "cannot open: %s", strerror(errno));
		rc = WM_ERR_SYS;
		goto out;
	}
	/*
	 * Reads by hand rather than with fgets: a line is never split in
	 * two, a NUL byte is caught, and an endless line costs no memory.
	 */
	for (;;) {
		size_t len = 0;
		bool nul = false;

		while ((ch = getc(f)) != EOF && ch != '\n') {
			if (ch == '\0')
				nul = true;
			if (len < sizeof(buf) - 1)
				buf[len++] = (char)ch;
		}
		if (ch == EOF && len == 0)
			break;
		buf[len] = '\0';
		lineno++;
		if (nul) {
			p->lastline = lineno;
			conf_error(p, lineno, "line", "NUL byte in line");
		} else {
			conf_parse_line(p, buf, lineno);
		}
		if (ch == EOF)
			break;
	}
	if (ferror(f)) {
		conf_error(p, lineno, "file", "read error: %s", strerror(errno));
		rc = WM_ERR_SYS;
		goto out;
	}
	rc = conf_parse_finish(p, out);
	p = NULL;
out:
	if (p != NULL) {
		/* Abandon the parse: finish frees it and reports nothing new. */
		p->errcb = NULL;
		conf_parse_finish(p, NULL);
	}
	if (f != NULL)
		fclose(f);
	return rc;
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->npeers; i++)
		free(c->peers[i].targets);
	for (size_t i = 0; i < c->nroutes; i++)
		free(c->routes[i].allow);
	for (size_t i = 0; i < c->nannounces; i++) {
		free(c->announces[i].macs);
		free(c->announces[i].ips);
	}
	free(c->peers);
	free(c->routes);
	free(c->announces);
	free(c);
}

const struct conf_peer *
conf_peer_find(const struct conf *c, const char *name)
{
	if (c == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < c->npeers; i++)
		if (strcmp(c->peers[i].name, name) == 0)
			return &c->peers[i];
	return NULL;
}

const struct conf_route *
conf_route_find(const struct conf *c, const char *name)
{
	if (c == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].name, name) == 0)
			return &c->routes[i];
	return NULL;
}

const struct conf_announce *
conf_announce_find(const struct conf *c, const char *route, const char *peer)
{
	const struct conf_announce *any = NULL;

	if (c == NULL || route == NULL)
		return NULL;
	for (size_t i = 0; i < c->nannounces; i++) {
		const struct conf_announce *a = &c->announces[i];

		if (strcmp(a->name, route) != 0)
			continue;
		if (a->peer[0] == '\0')
			any = a;
		else if (peer != NULL && strcmp(a->peer, peer) == 0)
			return a;
	}
	return any;
}

/* Writes an [announce] section's MACs, each followed by its addresses. */
static void
conf_dump_nics(FILE *f, const struct conf_announce *a)
{
	char ip[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < a->nmacs; i++) {
		const uint8_t *b = a->macs[i].b;

		fprintf(f, "mac = %02x:%02x:%02x:%02x:%02x:%02x\n", b[0], b[1],
		    b[2], b[3], b[4], b[5]);
		for (size_t j = 0; j < a->nips; j++)
			if (a->ips[j].mac == i && inet_ntop(a->ips[j].family,
			    a->ips[j].addr, ip, sizeof(ip)) != NULL)
				fprintf(f, "ip = %s\n", ip);
	}
}

/* Writes every keyword of one section that has a value. */
static void
conf_dump_section(FILE *f, enum conf_sect sect, const void *base)
{
	char buf[WM_ADDRSTRLEN + 64];

	for (size_t id = 0; id < CK_COUNT; id++) {
		const struct conf_key *k = &conf_keys[id];
		const void *field = (const char *)base + k->off;

		if (k->sect != sect)
			continue;
		switch (k->type) {
		case CONF_T_NAME:
		case CONF_T_PATH:
			if (*(const char *)field != '\0')
				fprintf(f, "%s = %s\n", k->name,
				    (const char *)field);
			break;
		case CONF_T_ADDR:
			if (k->aux != CONF_NOAUX &&
			    !*(const bool *)((const char *)base + k->aux))
				break;
			fprintf(f, "%s = %s\n", k->name, wm_addr_format(
			    (const struct sockaddr *)
			    &((const struct wm_addr *)field)->ss,
			    buf, sizeof(buf)));
			break;
		case CONF_T_LOGLEVEL: {
			int level = *(const int *)field;

			if (level >= 0 && level <= WM_LOG_DEBUG)
				fprintf(f, "%s = %s\n", k->name,
				    conf_log_levels[level]);
			break;
		}
		case CONF_T_BOOL:
			fprintf(f, "%s = %s\n", k->name,
			    *(const bool *)field ? "yes" : "no");
			break;
		case CONF_T_DURATION:
			fprintf(f, "%s = %s\n", k->name, conf_duration_format(
			    *(const uint64_t *)field, buf, sizeof(buf)));
			break;
		case CONF_T_SIZE:
			fprintf(f, "%s = %s\n", k->name, conf_size_format(
			    *(const uint64_t *)field, buf, sizeof(buf)));
			break;
		case CONF_T_RATE:
			fprintf(f, "%s = %s\n", k->name, wm_rate_format(
			    *(const uint64_t *)field, buf, sizeof(buf)));
			break;
		case CONF_T_CODEC:
		case CONF_T_CONGESTION: {
			const struct conf_enum *e = k->type == CONF_T_CODEC ?
			    &conf_codec_enum : &conf_cc_enum;
			int v = *(const int *)field;

			if (v >= 0 && v < e->n)
				fprintf(f, "%s = %s\n", k->name, e->names[v]);
			break;
		}
		case CONF_T_CIDRS: {
			const struct wm_cidr *list =
			    *(struct wm_cidr *const *)field;
			size_t n = *(const size_t *)((const char *)base +
			    k->aux);

			for (size_t i = 0; i < n; i++)
				fprintf(f, "%s = %s\n", k->name, wm_cidr_format(
				    &list[i], buf, sizeof(buf)));
			break;
		}
		case CONF_T_IFNAME:
			if (*(const char *)field != '\0')
				fprintf(f, "%s = %s\n", k->name,
				    (const char *)field);
			break;
		case CONF_T_UINT:
			if (k->aux == CONF_NOAUX ||
			    *(const bool *)((const char *)base + k->aux))
				fprintf(f, "%s = %u\n", k->name,
				    (unsigned)*(const uint32_t *)field);
			break;
		case CONF_T_MACS:
			conf_dump_nics(f, base);
			break;
		case CONF_T_IPS:
			break;	/* written by conf_dump_nics, after their MAC */
		}
	}
}

void
conf_dump(const struct conf *c, FILE *f)
{
	if (c == NULL)
		return;
	fprintf(f, "# effective configuration of %s\n", c->path);
	fprintf(f, "[site]\n");
	conf_dump_section(f, CONF_S_SITE, &c->site);
	for (size_t i = 0; i < c->npeers; i++) {
		fprintf(f, "\n[peer %s]\n", c->peers[i].name);
		conf_dump_section(f, CONF_S_PEER, &c->peers[i]);
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		fprintf(f, "\n[route %s]\n", c->routes[i].name);
		conf_dump_section(f, CONF_S_ROUTE, &c->routes[i]);
	}
	for (size_t i = 0; i < c->nannounces; i++) {
		fprintf(f, "\n[announce %s]\n", c->announces[i].name);
		conf_dump_section(f, CONF_S_ANNOUNCE, &c->announces[i]);
	}
}

#include "wm_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wm_err.h"

static int
parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s == '\0' || !isdigit((unsigned char)*s))
		return WM_ERR_INVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > 65535)
		return WM_ERR_INVAL;
	*port = (uint16_t)v;
	return 0;
}

int
wm_addr_parse(const char *s, struct wm_addr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon;
	uint16_t port;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

		if (rb == NULL || rb[1] != ':')
			return WM_ERR_INVAL;
		hlen = (size_t)(rb - s - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return WM_ERR_INVAL;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (parse_port(rb + 2, &port) != 0)
			return WM_ERR_INVAL;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return WM_ERR_INVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		out->len = sizeof(*sin6);
		return 0;
	}
	colon = strrchr(s, ':');
	if (colon == NULL || strchr(s, ':') != colon)
		return WM_ERR_INVAL;
	hlen = (size_t)(colon - s);
	if (hlen == 0 || hlen >= sizeof(host))
		return WM_ERR_INVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (parse_port(colon + 1, &port) != 0)
		return WM_ERR_INVAL;
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	if (strcmp(host, "*") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return WM_ERR_INVAL;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	out->len = sizeof(*sin);
	return 0;
}

const char *
wm_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "(family %d)", sa->sa_family);
	}
	return buf;
}

int
wm_cidr_parse(const char *s, struct wm_cidr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned maxlen;

	memset(out, 0, sizeof(*out));
	if (hlen == 0 || hlen >= sizeof(host))
		return WM_ERR_INVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		maxlen = 128;
	} else {
		return WM_ERR_INVAL;
	}
	out->prefix = maxlen;
	if (slash != NULL) {
		char *end;
		unsigned long v;

		if (!isdigit((unsigned char)slash[1]))
			return WM_ERR_INVAL;
		errno = 0;
		v = strtoul(slash + 1, &end, 10);
		if (errno != 0 || *end != '\0' || v > maxlen)
			return WM_ERR_INVAL;
		out->prefix = (unsigned)v;
	}
	/* Host bits must be zero: "10.1.2.3/8" is almost always a typo. */
	for (unsigned bit = out->prefix; bit < maxlen; bit++)
		if (out->addr[bit / 8] & (0x80u >> (bit % 8)))
			return WM_ERR_INVAL;
	return 0;
}

const char *
wm_cidr_format(const struct wm_cidr *c, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	inet_ntop(c->family, c->addr, host, sizeof(host));
	snprintf(buf, len, "%s/%u", host, c->prefix);
	return buf;
}

bool
wm_cidr_match(const struct wm_cidr *c, const struct sockaddr *sa)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const uint8_t *a;
	int family;

	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		family = AF_INET6;
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0 && c->family == AF_INET) {
			a += 12;
			family = AF_INET;
		}
	} else {
		return false;
	}
	if (family != c->family)
		return false;
	unsigned full = c->prefix / 8, rest = c->prefix % 8;
	if (memcmp(a, c->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (a[full] & mask) == (c->addr[full] & mask);
}

bool
wm_cidr_match_any(const struct wm_cidr *c, size_t n, const struct sockaddr *sa)
{
	for (size_t i = 0; i < n; i++)
		if (wm_cidr_match(&c[i], sa))
			return true;
	return false;
}

static int
parse_scaled(const char *s, uint64_t *out, const char *const *suffix,
    const uint64_t *scale, size_t nsuffix)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return WM_ERR_INVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return WM_ERR_INVAL;
	for (size_t i = 0; i < nsuffix; i++) {
		if (strcasecmp(end, suffix[i]) == 0) {
			if (v > UINT64_MAX / scale[i])
				return WM_ERR_INVAL;
			*out = v * scale[i];
			return 0;
		}
	}
	return WM_ERR_INVAL;
}

int
wm_size_parse(const char *s, uint64_t *out)
{
	static const char *const suf[] = { "", "k", "m", "g", "kb", "mb", "gb" };
	static const uint64_t mul[] = { 1, 1ull << 10, 1ull << 20, 1ull << 30,
		1ull << 10, 1ull << 20, 1ull << 30 };
	return parse_scaled(s, out, suf, mul, sizeof(mul) / sizeof(mul[0]));
}

int
wm_duration_parse(const char *s, uint64_t *out_ms)
{
	static const char *const suf[] = { "", "ms", "s", "m", "h" };
	static const uint64_t mul[] = { 1000, 1, 1000, 60000, 3600000 };
	return parse_scaled(s, out_ms, suf, mul, sizeof(mul) / sizeof(mul[0]));
}

int
wm_rate_parse(const char *s, uint64_t *out_bps)
{
	static const char *const suf[] = { "", "bit", "k", "kbit", "m", "mbit",
		"g", "gbit" };
	static const uint64_t mul[] = { 1, 1, 1000, 1000, 1000000, 1000000,
		1000000000, 1000000000 };

	if (strcmp(s, "unlimited") == 0) {
		*out_bps = 0;
		return 0;
	}
	return parse_scaled(s, out_bps, suf, mul, sizeof(mul) / sizeof(mul[0]));
}

const char *
wm_rate_format(uint64_t bps, char *buf, size_t len)
{
	if (bps == 0)
		snprintf(buf, len, "unlimited");
	else if (bps % 1000000000 == 0)
		snprintf(buf, len, "%" PRIu64 "gbit", bps / 1000000000);
	else if (bps % 1000000 == 0)
		snprintf(buf, len, "%" PRIu64 "mbit", bps / 1000000);
	else if (bps % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "kbit", bps / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "bit", bps);
	return buf;
}

uint64_t
wm_now_ms(void)
{
	return wm_now_us() / 1000;
}

uint64_t
wm_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
wm_strcut(char *dst, size_t size, const char *src)
{
	size_t k = strnlen(src, size - 1);

	memcpy(dst, src, k);
	dst[k] = '\0';
}

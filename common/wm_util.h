/*
 * wm_util.h - small helpers shared by every module: addresses, CIDRs,
 * sizes and durations as the config file and the control socket spell them.
 */
#ifndef WM_COMMON_WM_UTIL_H
#define WM_COMMON_WM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define WM_ADDRSTRLEN 64 /* "[v6 address]:port" plus NUL */

/* Big-endian integers on the wire (tunnel frames, the codec's blocks,
 * QEMU's stream): inline, as the codec reads them per page. */
static inline void
wm_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
wm_put_be64(uint8_t *p, uint64_t v)
{
	wm_put_be32(p, (uint32_t)(v >> 32));
	wm_put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t
wm_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
wm_get_be64(const uint8_t *p)
{
	return (uint64_t)wm_get_be32(p) << 32 | wm_get_be32(p + 4);
}

/* A numeric socket address, IPv4 or IPv6, with a port. */
struct wm_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* A network prefix: family AF_INET or AF_INET6, address bytes, length. */
struct wm_cidr {
	int family;
	uint8_t addr[16];
	unsigned prefix;
};

/*
 * Parses "1.2.3.4:80", "[::1]:80", "*:80" (any IPv4) or "[::]:80".
 * Numeric only: no name resolution. Returns 0 or WM_ERR_INVAL.
 */
int wm_addr_parse(const char *s, struct wm_addr *out);
/* Formats an address as wm_addr_parse reads it; returns buf. */
const char *wm_addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* Parses "10.0.0.0/8", "fd00::/8", or a bare address (full length). */
int wm_cidr_parse(const char *s, struct wm_cidr *out);
/* Formats a prefix as "addr/len"; returns buf. */
const char *wm_cidr_format(const struct wm_cidr *c, char *buf, size_t len);
/* True if sa (AF_INET or AF_INET6; v4-mapped v6 counts as v4) is inside c. */
bool wm_cidr_match(const struct wm_cidr *c, const struct sockaddr *sa);
/* True if sa is inside any of the n prefixes. */
bool wm_cidr_match_any(const struct wm_cidr *c, size_t n,
    const struct sockaddr *sa);
/* Parses "512", "64k", "8m", "1g" (powers of 1024). Returns 0 or WM_ERR_INVAL. */
int wm_size_parse(const char *s, uint64_t *out);
/* Parses "250", "250ms", "30s", "5m" into milliseconds (bare = seconds). */
int wm_duration_parse(const char *s, uint64_t *out_ms);
/*
 * Parses a link rate in bits per second: "250mbit", "1gbit", "500k",
 * "100m", "1g" (decimal: k = 1000), "0" or "unlimited" = 0.
 */
int wm_rate_parse(const char *s, uint64_t *out_bps);
/* Formats bits per second as wm_rate_parse reads it ("250mbit"). */
const char *wm_rate_format(uint64_t bps, char *buf, size_t len);
/* Copies src into dst (size > 0 bytes), cut to fit; always terminated.
 * For reasons and messages, where a cut one beats none. */
void wm_strcut(char *dst, size_t size, const char *src);
/* Monotonic clock in milliseconds / microseconds. */
uint64_t wm_now_ms(void);
uint64_t wm_now_us(void);

#endif

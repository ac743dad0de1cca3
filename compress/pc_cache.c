/*
 * pc_cache.c - the mirrored caches, the page delta, and small helpers the
 * encoder and the decoder share.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <zstd.h>

#include "pc_int.h"

void
pc_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

uint32_t
pc_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

void
pc_buf_init(struct pc_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
pc_buf_cleanup(struct pc_buf *b)
{
	free(b->p);
	pc_buf_init(b);
}

uint8_t *
pc_buf_reserve(struct pc_buf *b, size_t n)
{
	if (b->p == NULL || b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *p;

		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2)
				return NULL;
			cap *= 2;
		}
		if ((p = realloc(b->p, cap)) == NULL)
			return NULL;
		b->p = p;
		b->cap = cap;
	}
	return b->p + b->len;
}

void
pc_page_store(uint8_t *dst, const uint8_t *src)
{
#ifdef __SSE2__
	/* non-temporal stores: no read for ownership of the cold line, and
	 * the cache keeps what the next pages need */
	for (size_t i = 0; i < PC_PAGE; i += 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 32));
		__m128i d = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 48));

		_mm_stream_si128((__m128i *)(void *)(dst + i), a);
		_mm_stream_si128((__m128i *)(void *)(dst + i + 16), b);
		_mm_stream_si128((__m128i *)(void *)(dst + i + 32), c);
		_mm_stream_si128((__m128i *)(void *)(dst + i + 48), d);
	}
	_mm_sfence();
#else
	memcpy(dst, src, PC_PAGE);
#endif
}

uint32_t
pc_cache_pages(uint64_t bytes, int pow2)
{
	uint64_t n = bytes / PC_PAGE;

	if (n > (1u << 30))
		n = 1u << 30;
	if (pow2 && n > 0) {
		uint64_t p = 1;

		while (p * 2 <= n)
			p *= 2;
		n = p;
	}
	return (uint32_t)n;
}

/*
 * Page memory straight from the kernel: it is backed only once written, so
 * a stream that never fills its caches never costs their size; and in huge
 * pages where the kernel allows (madvise mode), which saves a page fault
 * per 4 KiB on the way, the first pass's main cost otherwise.
 */
static uint8_t *
pages_alloc(uint32_t n)
{
	size_t len = (size_t)n * PC_PAGE;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, len, MADV_HUGEPAGE);
#endif
	return p;
}

static void
pages_free(uint8_t *p, uint32_t n)
{
	if (p != NULL)
		munmap(p, (size_t)n * PC_PAGE);
}

int
pc_cache_init(struct pc_cache *c, uint32_t nx, uint32_t nd)
{
	memset(c, 0, sizeof(*c));
	if (nx > 0) {
		c->nx = nx;
		while ((1u << c->xbits) < nx)
			c->xbits++;
		if ((c->xtag = calloc(nx, sizeof(*c->xtag))) == NULL ||
		    (c->xpage = pages_alloc(nx)) == NULL)
			goto fail;
	}
	if (nd > 0) {
		c->nd = nd;
		if ((c->dpage = pages_alloc(nd)) == NULL)
			goto fail;
	}
	return 0;
fail:
	pc_cache_cleanup(c);
	return -1;
}

void
pc_cache_cleanup(struct pc_cache *c)
{
	free(c->xtag);
	pages_free(c->xpage, c->nx);
	pages_free(c->dpage, c->nd);
	memset(c, 0, sizeof(*c));
}

uint64_t
pc_cache_bytes(const struct pc_cache *c)
{
	return (uint64_t)c->nx * (PC_PAGE + sizeof(*c->xtag)) +
	    (uint64_t)c->nd * PC_PAGE;
}

static size_t
put_varint(uint8_t *p, uint32_t v)
{
	if (v < 0x80) {
		p[0] = (uint8_t)v;
		return 1;
	}
	p[0] = (uint8_t)(v | 0x80);
	p[1] = (uint8_t)(v >> 7);
	return 2;
}

static uint64_t
load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

long
pc_delta_encode(const uint8_t *old, const uint8_t *new_, uint8_t *out,
    size_t cap)
{
	size_t i = 0, o = 0;

	while (i < PC_PAGE) {
		size_t j = i, k, last, n;

		while (j + 8 <= PC_PAGE && load64(old + j) == load64(new_ + j))
			j += 8;
		while (j < PC_PAGE && old[j] == new_[j])
			j++;
		if (j == PC_PAGE)
			break;
		/* the changed run ends at 5 unchanged bytes in a row: a new
		 * run would cost about as much as carrying them */
		for (last = j, k = j + 1; k < PC_PAGE && k - last <= 4; k++)
			if (old[k] != new_[k])
				last = k;
		n = last + 1 - j;
		if (o + 4 + n > cap)
			return -1;
		o += put_varint(out + o, (uint32_t)(j - i));
		o += put_varint(out + o, (uint32_t)n);
		memcpy(out + o, new_ + j, n);
		o += n;
		i = last + 1;
	}
	return (long)o;
}

static int
get_varint(const uint8_t *d, size_t len, size_t *at, uint32_t *v)
{
	if (*at >= len)
		return -1;
	if (d[*at] < 0x80) {
		*v = d[(*at)++];
		return 0;
	}
	if (*at + 1 >= len || d[*at + 1] >= 0x80)
		return -1;
	*v = (uint32_t)(d[*at] & 0x7F) | (uint32_t)d[*at + 1] << 7;
	*at += 2;
	return 0;
}

int
pc_delta_apply(uint8_t *page, const uint8_t *d, size_t len)
{
	size_t at = 0, pos = 0;

	while (at < len) {
		uint32_t skip, n;

		if (get_varint(d, len, &at, &skip) != 0 ||
		    get_varint(d, len, &at, &n) != 0)
			return -1;
		if (skip > PC_PAGE - pos || n > PC_PAGE - pos - skip ||
		    n > len - at)
			return -1;
		pos += skip;
		memcpy(page + pos, d + at, n);
		pos += n;
		at += n;
	}
	return 0;
}

unsigned
pc_zstd_wlog(uint64_t dedup_cache)
{
	unsigned w = PC_ZSTD_WLOG_MIN;

	while (w < PC_ZSTD_WLOG_MAX && (1ull << (w + 1)) <= dedup_cache)
		w++;
	return w;
}

const char *
pc_algo_name(enum pc_algo a)
{
	switch (a) {
	case PC_ALGO_NONE:
		return "none";
	case PC_ALGO_LZ4:
		return "lz4";
	case PC_ALGO_ZSTD:
		return "zstd";
	}
	return "?";
}

const char *
pc_class_name(enum pc_class c)
{
	static const char *const names[PC_NCLASS] = {
		"zero", "dedup", "delta", "literal", "opaque",
	};

	return (unsigned)c < PC_NCLASS ? names[c] : "?";
}

/* zstd level 1's speed on this CPU, bytes/s, measured once on text-like
 * data (about 4 ms). */
static double
zstd_speed(void)
{
	static double speed;
	enum { N = 1 << 20 };
	uint8_t *src, *dst;
	size_t cap = ZSTD_compressBound(N);
	struct timespec a, b;
	uint32_t x = 12345;

	if (speed > 0)
		return speed;
	src = malloc(N);
	dst = malloc(cap);
	if (src == NULL || dst == NULL) {
		free(src);
		free(dst);
		return 0;
	}
	for (size_t i = 0; i < N; i++) {
		x = x * 1103515245u + 12345u;
		/* a small alphabet with repeats, like memory, not noise */
		src[i] = (uint8_t)((x >> 16) % 23 + (i % 4096 < 1024 ? 0 : 'a'));
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	(void)ZSTD_compress(dst, cap, src, N, 1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	free(src);
	free(dst);
	speed = N / ((double)(b.tv_sec - a.tv_sec) +
	    (double)(b.tv_nsec - a.tv_nsec) / 1e9 + 1e-9);
	return speed;
}

enum pc_algo
pc_algo_auto(uint64_t link_Bps)
{
	/* zstd while the CPU compresses at least 4 times faster than the link
	 * carries (the encoder's other work and the TLS fit in the rest);
	 * LZ4 on fast links or when the rate is unknown. */
	if (link_Bps == 0)
		return PC_ALGO_LZ4;
	return (double)link_Bps * 4 < zstd_speed() ? PC_ALGO_ZSTD : PC_ALGO_LZ4;
}

/*
 * fz_pc_parse.c - libFuzzer target: the QEMU stream parser, and the whole
 * page codec round trip (compress/pc_parse.c, pc_enc.c, pc_dec.c).
 *
 * The input is one configuration byte, then a stream as QEMU would write
 * it (the seeds in corpus/pc_parse/ are generated QEMU streams, whole,
 * truncated and damaged).
 *
 * (a) The stream goes through a bare pc_parser three times: whole, then
 *     cut in chunks of sizes drawn from the input, the unconsumed tail of
 *     each call held and fed again in front of the next bytes as the
 *     encoder's feed() does; what is still held at the end counts as raw.
 *     The raw and page callbacks must hand back every byte of the stream
 *     exactly once, in order, each from its place in the buffer being
 *     fed; a call holds back less than the longest record; an opaque
 *     parser consumes everything; and the pages, the other records, the
 *     final state and the tail held do not depend on the cuts.
 * (b) The stream is encoded (algorithm and cache sizes from the
 *     configuration byte; caches of a few pages so that they evict; fed in
 *     chunks, flushed now and then) and decoded: the decoder must accept
 *     it and give back exactly the stream, and the encoder's statistics
 *     must agree with what the parser saw in (a).
 *
 * Configuration byte c: algorithm c % 3 (none, lz4, zstd), caches
 * caches[(c / 3) % 4], the parser off when (c / 12) % 8 == 7.
 */
#include <stdbool.h>
#include <string.h>

#include "fz.h"
#include "pc.h"

/* The longest record the parser may have to hold back: COMPRESS_PAGE, an
 * 8-byte header, a block name of up to 255 bytes, be32 length, up to two
 * pages of data. */
#define MAX_HELD (8 + 1 + 255 + 4 + 2 * PC_PAGE)

/* (xbzrle-cache, dedup-cache) for the round trip */
static const uint64_t caches[4][2] = {
	{ 64u << 10, 64u << 10 },       /* 16 pages each */
	{ 64u << 10, 0 },               /* no dedup */
	{ 0, 64u << 10 },               /* no deltas */
	{ 16u << 10, 8u << 10 },        /* 4 and 2: eviction all the time */
};

struct ck {
	const uint8_t *s;       /* the stream */
	size_t n;
	size_t pos;             /* bytes of it the callbacks handed back */
	const uint8_t *buf;     /* what the current pc_parser_feed() got */
	size_t buf_len;
	size_t buf_pos;         /* stream offset of buf[0] */
	uint64_t events;        /* hash of the page and other callbacks */
	uint64_t pages, zeros, opaques;
};

struct pass {
	uint64_t events, pages, zeros, opaques;
	size_t held;            /* tail the parser never consumed */
	bool opaque;
	const char *why;
};

static void
ck_bytes(struct ck *ck, const uint8_t *p, size_t len)
{
	/* from the buffer being fed, right where the previous callback
	 * stopped, and the stream's next bytes: nothing lost or reordered */
	FZ_CHECK(ck->buf != NULL);
	FZ_CHECK(ck->pos >= ck->buf_pos);
	FZ_CHECK(p == ck->buf + (ck->pos - ck->buf_pos));
	FZ_CHECK(len <= ck->buf_len - (ck->pos - ck->buf_pos));
	FZ_CHECK(len <= ck->n - ck->pos);
	FZ_CHECK(len == 0 || memcmp(p, ck->s + ck->pos, len) == 0);
	ck->pos += len;
}

static void
ck_event(struct ck *ck, uint64_t what, uint64_t key)
{
	uint64_t ev[3] = { what, ck->pos, key };

	ck->events = fz_hash(ck->events, ev, sizeof(ev));
}

static void
on_raw(void *arg, const uint8_t *p, size_t len)
{
	ck_bytes(arg, p, len);
}

static void
on_page(void *arg, uint64_t key, const uint8_t *page)
{
	struct ck *ck = arg;

	ck_event(ck, 100, key);
	ck_bytes(ck, page, PC_PAGE);
	ck->pages++;
}

static void
on_other(void *arg, uint64_t key, enum pc_class cls)
{
	struct ck *ck = arg;

	FZ_CHECK(cls == PC_ZERO || cls == PC_OPAQUE);
	ck_event(ck, cls, key);
	if (cls == PC_ZERO)
		ck->zeros++;
	else
		ck->opaques++;
}

/* One pc_parser_feed() call, checked. */
static size_t
ck_feed(struct pc_parser *ps, struct ck *ck, const uint8_t *p, size_t n)
{
	size_t start = ck->pos, c;

	ck->buf = p;
	ck->buf_len = n;
	ck->buf_pos = ck->pos;
	c = pc_parser_feed(ps, p, n);
	ck->buf = NULL;
	FZ_CHECK(c <= n);
	FZ_CHECK(ck->pos - start == c);
	FZ_CHECK(n - c < MAX_HELD);
	if (pc_parser_opaque(ps, NULL))
		FZ_CHECK(c == n);
	return c;
}

/* n more bytes, held records fed again in front of them in steps of
 * step bytes (compress/pc_enc.c's feed()). */
static void
feed(struct pc_parser *ps, struct ck *ck, struct pc_buf *carry,
    const uint8_t *p, size_t n, size_t step)
{
	size_t c;
	uint8_t *q;

	while (carry->len > 0 && n > 0) {
		size_t l0 = carry->len, add = n < step ? n : step;

		FZ_CHECK((q = pc_buf_reserve(carry, add)) != NULL);
		memcpy(q, p, add);
		carry->len += add;
		c = ck_feed(ps, ck, carry->p, carry->len);
		if (c >= l0) {
			/* the held record completed: go on from the input */
			p += c - l0;
			n -= c - l0;
			carry->len = 0;
		} else {
			if (c > 0)
				memmove(carry->p, carry->p + c, carry->len - c);
			carry->len -= c;
			p += add;
			n -= add;
		}
	}
	if (n > 0) {
		c = ck_feed(ps, ck, p, n);
		if (c < n) {
			FZ_CHECK((q = pc_buf_reserve(carry, n - c)) != NULL);
			memcpy(q, p + c, n - c);
			carry->len += n - c;
		}
	}
}

/* Parses s in chunks of 1..maxchunk bytes (0: all at once). */
static void
parse_pass(const uint8_t *s, size_t n, uint32_t seed, size_t maxchunk,
    size_t step, struct pass *r)
{
	static const struct pc_parser_cbs cbs = {
		.raw = on_raw, .page = on_page, .other = on_other,
	};
	struct ck ck = { .s = s, .n = n, .events = FZ_HASH_INIT };
	struct pc_parser *ps = pc_parser_new(&cbs, &ck);
	struct pc_buf carry;
	size_t off = 0;

	FZ_CHECK(ps != NULL);
	pc_buf_init(&carry);
	if (seed == 0)
		seed = 1;
	while (off < n) {
		size_t k = maxchunk == 0 ? n - off :
		    1 + fz_rand(&seed) % maxchunk;

		if (k > n - off)
			k = n - off;
		feed(ps, &ck, &carry, s + off, k, step);
		off += k;
	}
	/* the stream ended inside a record: its bytes go as they are */
	if (carry.len > 0) {
		ck.buf = carry.p;
		ck.buf_len = carry.len;
		ck.buf_pos = ck.pos;
		ck_bytes(&ck, carry.p, carry.len);
	}
	FZ_CHECK(ck.pos == n);
	r->events = ck.events;
	r->pages = ck.pages;
	r->zeros = ck.zeros;
	r->opaques = ck.opaques;
	r->held = carry.len;
	r->opaque = pc_parser_opaque(ps, &r->why);
	pc_parser_free(ps);
	pc_buf_cleanup(&carry);
}

static void
same_pass(const struct pass *a, const struct pass *b)
{
	FZ_CHECK(a->events == b->events);
	FZ_CHECK(a->pages == b->pages);
	FZ_CHECK(a->zeros == b->zeros);
	FZ_CHECK(a->opaques == b->opaques);
	FZ_CHECK(a->held == b->held);
	FZ_CHECK(a->opaque == b->opaque);
	if (a->opaque)
		FZ_CHECK(a->why != NULL && b->why != NULL &&
		    strcmp(a->why, b->why) == 0);
}

static void
roundtrip(const uint8_t *s, size_t n, uint8_t cfg, const struct pass *pa)
{
	const uint64_t *cc = caches[(cfg / 3) % 4];
	struct pc_params p = {
		.algo = (enum pc_algo)(cfg % 3), .level = 1,
		.xbzrle_cache = cc[0], .dedup_cache = cc[1],
		.parse = (cfg / 12) % 8 != 7,
	};
	struct pc_dec_limits lim = { cc[0], cc[1] };
	struct pc_enc *e = pc_enc_new(&p);
	struct pc_dec *d = pc_dec_new(&lim);
	struct pc_buf enc, dec;
	struct pc_stats st;
	uint32_t seed = fz_seed(s, n) ^ cfg;
	char err[256] = "";
	size_t off = 0;

	FZ_CHECK(e != NULL && d != NULL);
	pc_buf_init(&enc);
	pc_buf_init(&dec);
	if (seed == 0)
		seed = 1;
	while (off < n) {
		size_t max = fz_rand(&seed) % 2 ? 300 : 20000;
		size_t k = 1 + fz_rand(&seed) % max;

		if (k > n - off)
			k = n - off;
		FZ_CHECK(pc_enc_feed(e, s + off, k, &enc) == 0);
		off += k;
		if (fz_rand(&seed) % 4 == 0)
			FZ_CHECK(pc_enc_flush(e, &enc) == 0);
	}
	FZ_CHECK(pc_enc_finish(e, &enc) == 0);
	pc_enc_get_stats(e, &st);
	FZ_CHECK(st.raw_bytes == n);
	FZ_CHECK(st.enc_bytes == enc.len);
	if (p.parse) {
		/* the encoder's parser saw what the bare one saw */
		FZ_CHECK(st.opaque == pa->opaque);
		FZ_CHECK(st.pages[PC_ZERO] + st.pages[PC_DEDUP] +
		    st.pages[PC_DELTA] + st.pages[PC_LITERAL] ==
		    pa->pages + pa->zeros);
		FZ_CHECK(st.pages[PC_OPAQUE] == pa->opaques);
	} else {
		FZ_CHECK(st.opaque);
		for (int i = 0; i < PC_NCLASS; i++)
			FZ_CHECK(st.pages[i] == 0);
	}
	if (pc_dec_all(d, enc.p, enc.len, &dec, err, sizeof(err)) != 0) {
		fprintf(stderr, "fz_pc_parse: decoding (%s, caches %llu/%llu, "
		    "parse %d) failed: %s\n", pc_algo_name(p.algo),
		    (unsigned long long)cc[0], (unsigned long long)cc[1],
		    p.parse, err);
		abort();
	}
	FZ_CHECK(pc_dec_done(d));
	FZ_CHECK(dec.len == n);
	FZ_CHECK(n == 0 || memcmp(dec.p, s, n) == 0);
	pc_enc_free(e);
	pc_dec_free(d);
	pc_buf_cleanup(&enc);
	pc_buf_cleanup(&dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pass whole, cut, fine;
	const uint8_t *s;
	size_t n;
	uint32_t seed;

	if (size == 0)
		return 0;
	s = data + 1;
	n = size - 1;
	seed = fz_seed(data, size);
	/* (a) the parser alone: whole; in chunks up to two records long,
	 * held records re-fed 8 KiB at a time as the encoder does; in small
	 * chunks, re-fed a few bytes at a time */
	parse_pass(s, n, seed, 0, 8192, &whole);
	parse_pass(s, n, seed, 2 * MAX_HELD, 8192, &cut);
	same_pass(&whole, &cut);
	parse_pass(s, n, seed ^ 0x5A5A5A5Au, 48, 1 + seed % 16, &fine);
	same_pass(&whole, &fine);
	/* (b) encoder and decoder */
	roundtrip(s, n, data[0], &whole);
	return 0;
}

/*
 * pc_enc.c - the encoder: QEMU's bytes in, blocks of operations out.
 *
 * The parser hands over raw bytes and pages; the encoder turns each page
 * into the cheapest operation the decoder's (mirrored) caches allow, and
 * ends a block when it is large enough or when the caller flushes because
 * the source went quiet, so nothing waits for more input (the last round
 * and the device state are the VM's downtime).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <xxhash.h>
#include <zstd.h>

#include "pc_int.h"

#define BLOCK_OPS (256u << 10)          /* operations per block, about */
#define BLOCK_OUT (1u << 20)            /* decoded bytes per block, at most */
#define OP_ROOM (1 + 10 + 4 + PC_PAGE)  /* the largest page operation */
#define CARRY_STEP 8192u                /* more than one record */

struct pc_enc {
	struct pc_params p;
	struct pc_parser *ps;
	struct pc_cache c;
	uint32_t *didx;         /* content hash -> dedup slot + 1 */
	uint32_t dmask;
	uint64_t *dhash;        /* content hash of each dedup slot */
	struct pc_buf ops;      /* the block being built */
	size_t raw_at;          /* length field of the open RAW, or 0 */
	uint64_t out_len;       /* bytes it decodes to */
	XXH3_state_t *bsum, *digest;
	uint64_t prev_key;
	struct pc_buf carry;    /* an incomplete record */
	struct pc_buf *out;     /* where blocks go, during a call */
	bool failed, started, finished;
	ZSTD_CCtx *zc;
	unsigned wlog;          /* zstd's window, log2 */
	unsigned skip, skip_run; /* blocks still to store as they are, and
	                            the length of that run (block_end) */
	uint64_t mem;
	struct pc_stats st;
};

static int block_end(struct pc_enc *e);

static size_t
put_key(uint8_t *p, struct pc_enc *e, uint64_t key)
{
	int64_t d = (int64_t)(key - (e->prev_key + 1));
	uint64_t z = ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
	size_t n = 0;

	e->prev_key = key;
	while (z >= 0x80) {
		p[n++] = (uint8_t)(z | 0x80);
		z >>= 7;
	}
	p[n++] = (uint8_t)z;
	return n;
}

/* Room for n more operation bytes in the current block, or NULL. */
static uint8_t *
ops_room(struct pc_enc *e, size_t n)
{
	if (e->ops.len + n > BLOCK_OPS + OP_ROOM ||
	    e->out_len + PC_PAGE > BLOCK_OUT) {
		if (block_end(e) != 0)
			return NULL;
	}
	return pc_buf_reserve(&e->ops, n);
}

static void
on_raw(void *arg, const uint8_t *p, size_t len)
{
	struct pc_enc *e = arg;

	while (len > 0 && !e->failed) {
		size_t room, oroom, k;
		uint8_t *q;

		if (e->raw_at == 0) {
			if ((q = ops_room(e, 5 + 64)) == NULL) {
				e->failed = true;
				return;
			}
			q[0] = PC_OP_RAW;
			e->raw_at = e->ops.len + 1;
			e->ops.len += 5;
			pc_put_le32(e->ops.p + e->raw_at, 0);
		}
		room = e->ops.len < BLOCK_OPS ? BLOCK_OPS - e->ops.len : 0;
		oroom = e->out_len < BLOCK_OUT ? BLOCK_OUT - e->out_len : 0;
		if (oroom < room)
			room = oroom;
		k = len < room ? len : room;
		if (k > 0) {
			if ((q = pc_buf_reserve(&e->ops, k)) == NULL) {
				e->failed = true;
				return;
			}
			memcpy(q, p, k);
			XXH3_64bits_update(e->bsum, p, k);
			e->ops.len += k;
			e->out_len += k;
			pc_put_le32(e->ops.p + e->raw_at,
			    pc_get_le32(e->ops.p + e->raw_at) + (uint32_t)k);
			p += k;
			len -= k;
		}
		if (len > 0 && block_end(e) != 0)
			e->failed = true;
	}
}

static bool
is_zero(const uint8_t *pg)
{
	return pg[0] == 0 && memcmp(pg, pg + 1, PC_PAGE - 1) == 0;
}

static void
dedup_insert(struct pc_enc *e, const uint8_t *pg, uint64_t h)
{
	struct pc_cache *c = &e->c;
	uint32_t s = c->dhead;

	if (c->nd == 0)
		return;
	pc_page_store(c->dpage + (size_t)s * PC_PAGE, pg);
	e->dhash[s] = h;
	e->didx[h & e->dmask] = s + 1;
	c->dhead = s + 1 == c->nd ? 0 : s + 1;
	if (c->dfill < c->nd)
		c->dfill++;
}

static void
xstore(struct pc_enc *e, uint64_t key, const uint8_t *pg)
{
	struct pc_cache *c = &e->c;
	uint32_t s;

	if (c->nx == 0)
		return;
	s = pc_xslot(c, key);
	c->xtag[s] = key + 1;
	if (pg != NULL)
		pc_page_store(c->xpage + (size_t)s * PC_PAGE, pg);
	else
		memset(c->xpage + (size_t)s * PC_PAGE, 0, PC_PAGE);
}

static void
on_page(void *arg, uint64_t key, const uint8_t *pg)
{
	struct pc_enc *e = arg;
	struct pc_cache *c = &e->c;
	uint8_t *q;
	size_t n;
	uint64_t h;

	if (e->failed)
		return;
	if ((q = ops_room(e, OP_ROOM)) == NULL) {
		e->failed = true;
		return;
	}
	e->raw_at = 0;
	XXH3_64bits_update(e->bsum, pg, PC_PAGE);
	e->out_len += PC_PAGE;
	if (is_zero(pg)) {
		q[0] = PC_OP_ZERO;
		n = 1 + put_key(q + 1, e, key);
		xstore(e, key, NULL);
		e->st.pages[PC_ZERO]++;
		goto done;
	}
	h = XXH3_64bits(pg, PC_PAGE);
	if (c->nd > 0) {
		uint32_t s = e->didx[h & e->dmask];

		/* the hash only finds the candidate; the bytes decide */
		if (s != 0 && e->dhash[s - 1] == h &&
		    memcmp(c->dpage + (size_t)(s - 1) * PC_PAGE, pg,
		    PC_PAGE) == 0) {
			q[0] = PC_OP_REF;
			n = 1 + put_key(q + 1, e, key);
			pc_put_le32(q + n, s - 1);
			n += 4;
			xstore(e, key, pg);
			e->st.pages[PC_DEDUP]++;
			goto done;
		}
	}
	if (c->nx > 0) {
		uint32_t s = pc_xslot(c, key);

		if (c->xtag[s] == key + 1) {
			uint8_t *old = c->xpage + (size_t)s * PC_PAGE;
			uint64_t prev = e->prev_key;
			size_t k = 1 + put_key(q + 1, e, key);
			long d = pc_delta_encode(old, pg, q + k + 2,
			    PC_DELTA_MAX);

			if (d >= 0) {
				q[0] = PC_OP_DELTA;
				q[k] = (uint8_t)d;
				q[k + 1] = (uint8_t)(d >> 8);
				n = k + 2 + (size_t)d;
				pc_page_store(old, pg);
				dedup_insert(e, pg, h);
				e->st.pages[PC_DELTA]++;
				goto done;
			}
			e->prev_key = prev; /* the PAGE below numbers it */
		}
	}
	q[0] = PC_OP_PAGE;
	n = 1 + put_key(q + 1, e, key);
	memcpy(q + n, pg, PC_PAGE);
	n += PC_PAGE;
	xstore(e, key, pg);
	dedup_insert(e, pg, h);
	e->st.pages[PC_LITERAL]++;
done:
	e->ops.len += n;
}

static void
on_other(void *arg, uint64_t key, enum pc_class cls)
{
	struct pc_enc *e = arg;
	struct pc_cache *c = &e->c;
	uint8_t *q;

	e->st.pages[cls]++;
	if (cls != PC_OPAQUE || c->nx == 0 || e->failed)
		return;
	/* QEMU changed the page in a way we do not follow: the cached copy
	 * is stale at both ends. */
	if (c->xtag[pc_xslot(c, key)] != key + 1)
		return;
	if ((q = ops_room(e, 12)) == NULL) {
		e->failed = true;
		return;
	}
	e->raw_at = 0;
	q[0] = PC_OP_DROP;
	e->ops.len += 1 + put_key(q + 1, e, key);
	c->xtag[pc_xslot(c, key)] = 0;
}

struct pc_enc *
pc_enc_new(const struct pc_params *p)
{
	static const struct pc_parser_cbs cbs = {
		.raw = on_raw, .page = on_page, .other = on_other,
	};
	struct pc_enc *e = calloc(1, sizeof(*e));
	uint32_t nx, nd;

	if (e == NULL)
		return NULL;
	e->p = *p;
	nx = pc_cache_pages(p->xbzrle_cache, 1);
	nd = pc_cache_pages(p->dedup_cache, 0);
	if (!p->parse)
		nx = nd = 0;
	if ((e->ps = pc_parser_new(&cbs, e)) == NULL ||
	    pc_cache_init(&e->c, nx, nd) != 0 ||
	    (e->bsum = XXH3_createState()) == NULL ||
	    (e->digest = XXH3_createState()) == NULL)
		goto fail;
	if (nd > 0) {
		uint32_t b = 1;

		while (b < 2 * nd)
			b *= 2;
		e->dmask = b - 1;
		if ((e->didx = calloc(b, sizeof(*e->didx))) == NULL ||
		    (e->dhash = calloc(nd, sizeof(*e->dhash))) == NULL)
			goto fail;
	}
	if (p->algo == PC_ALGO_ZSTD) {
		e->wlog = pc_zstd_wlog(p->parse ? p->dedup_cache : 0);
		if ((e->zc = ZSTD_createCCtx()) == NULL ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(e->zc,
		    ZSTD_c_compressionLevel, p->level > 0 ? p->level : 1)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(e->zc,
		    ZSTD_c_windowLog, (int)e->wlog)) ||
		    (e->wlog >= PC_ZSTD_WLOG_LDM && ZSTD_isError(
		    ZSTD_CCtx_setParameter(e->zc,
		    ZSTD_c_enableLongDistanceMatching, 1))))
			goto fail;
	}
	if (!p->parse)
		pc_parser_set_opaque(e->ps, "not parsed (multifd or other channel)");
	e->mem = sizeof(*e) + pc_cache_bytes(&e->c) +
	    (nd > 0 ? (uint64_t)(e->dmask + 1) * 4 + (uint64_t)nd * 8 : 0);
	XXH3_64bits_reset_withSeed(e->bsum, 1);
	XXH3_128bits_reset(e->digest);
	return e;
fail:
	pc_enc_free(e);
	return NULL;
}

void
pc_enc_free(struct pc_enc *e)
{
	if (e == NULL)
		return;
	pc_parser_free(e->ps);
	pc_cache_cleanup(&e->c);
	free(e->didx);
	free(e->dhash);
	pc_buf_cleanup(&e->ops);
	pc_buf_cleanup(&e->carry);
	XXH3_freeState(e->bsum);
	XXH3_freeState(e->digest);
	ZSTD_freeCCtx(e->zc);
	free(e);
}

static int
emit_preface(struct pc_enc *e)
{
	uint8_t *q;

	if (e->started)
		return 0;
	if ((q = pc_buf_reserve(e->out, PC_PREFACE)) == NULL)
		return -1;
	memcpy(q, "WMPC", 4);
	q[4] = PC_VERSION;
	q[5] = (uint8_t)e->p.algo;
	q[6] = (uint8_t)e->wlog;
	q[7] = 0;
	wm_put_be32(q + 8, e->c.nx);
	wm_put_be32(q + 12, e->c.nd);
	e->out->len += PC_PREFACE;
	e->st.enc_bytes += PC_PREFACE;
	e->started = true;
	return 0;
}

/* Compresses the operations gathered so far into a block on e->out. */
static int
block_end(struct pc_enc *e)
{
	size_t cap, plen = 0;
	uint8_t *q;
	int algo = e->p.algo;
	bool tried;

	e->raw_at = 0;
	if (e->ops.len == 0)
		return 0;
	if (emit_preface(e) != 0)
		return -1;
	/* Bytes that would not compress (encrypted or compressed guest
	 * memory, or a stream the parser could not follow) go as they are
	 * for a run of blocks that doubles, up to PC_SKIP_MAX, while they
	 * stay so: the compressor's time is then spared. The decoder takes
	 * a stored block in any mode; zstd's history just lacks it on both
	 * sides. */
	if (e->skip > 0) {
		e->skip--;
		e->st.blocks_skipped++;
		algo = PC_ALGO_NONE;
	}
	tried = algo != PC_ALGO_NONE;
	if (algo == PC_ALGO_ZSTD)
		cap = ZSTD_compressBound(e->ops.len) + 64;
	else
		cap = (size_t)LZ4_compressBound((int)e->ops.len);
	if (cap < e->ops.len)
		cap = e->ops.len;
	if ((q = pc_buf_reserve(e->out, PC_BLOCK_HDR + cap)) == NULL)
		return -1;
	if (algo == PC_ALGO_LZ4) {
		int r = LZ4_compress_default((const char *)e->ops.p,
		    (char *)q + PC_BLOCK_HDR, (int)e->ops.len, (int)cap);

		if (r <= 0 || (size_t)r >= e->ops.len)
			algo = PC_ALGO_NONE;
		else
			plen = (size_t)r;
	} else if (algo == PC_ALGO_ZSTD) {
		/* one stream across the blocks, each ending flushed: the
		 * decoder's context mirrors ours */
		ZSTD_inBuffer in = { e->ops.p, e->ops.len, 0 };
		ZSTD_outBuffer out = { q + PC_BLOCK_HDR, cap, 0 };
		size_t r;

		do {
			r = ZSTD_compressStream2(e->zc, &out, &in, ZSTD_e_flush);
			if (ZSTD_isError(r))
				return -1;
		} while (r != 0 && out.pos < out.size);
		if (r != 0)
			return -1;
		plen = out.pos;
	}
	if (tried && (algo == PC_ALGO_NONE ||
	    plen > e->ops.len - e->ops.len / PC_SKIP_GAIN)) {
		e->skip_run = e->skip_run == 0 ? 1 :
		    e->skip_run * 2 > PC_SKIP_MAX ? PC_SKIP_MAX : e->skip_run * 2;
		e->skip = e->skip_run;
	} else if (tried) {
		e->skip_run = 0;
	}
	if (algo == PC_ALGO_NONE) {
		memcpy(q + PC_BLOCK_HDR, e->ops.p, e->ops.len);
		plen = e->ops.len;
	}
	q[0] = 'B';
	q[1] = (uint8_t)algo;
	q[2] = q[3] = 0;
	wm_put_be32(q + 4, (uint32_t)e->ops.len);
	wm_put_be32(q + 8, (uint32_t)plen);
	wm_put_be32(q + 12, (uint32_t)e->out_len);
	wm_put_be64(q + 16, XXH3_64bits_digest(e->bsum));
	/* the stream's digest chains the blocks' checksums and lengths:
	 * it covers every byte without a second pass over them */
	XXH3_128bits_update(e->digest, q + 12, 12);
	e->out->len += PC_BLOCK_HDR + plen;
	e->st.enc_bytes += PC_BLOCK_HDR + plen;
	e->st.blocks++;
	XXH3_64bits_reset_withSeed(e->bsum, e->st.blocks + 1);
	e->ops.len = 0;
	e->out_len = 0;
	return 0;
}

static int
feed(struct pc_enc *e, const uint8_t *p, size_t n)
{
	while (e->carry.len > 0 && n > 0 && !e->failed) {
		size_t l0 = e->carry.len, add = n < CARRY_STEP ? n : CARRY_STEP;
		size_t c;
		uint8_t *q = pc_buf_reserve(&e->carry, add);

		if (q == NULL)
			return -1;
		memcpy(q, p, add);
		e->carry.len += add;
		c = pc_parser_feed(e->ps, e->carry.p, e->carry.len);
		if (c >= l0) {
			/* the held record completed: go on from the input */
			p += c - l0;
			n -= c - l0;
			e->carry.len = 0;
		} else {
			memmove(e->carry.p, e->carry.p + c, e->carry.len - c);
			e->carry.len -= c;
			p += add;
			n -= add;
		}
	}
	if (n > 0 && !e->failed) {
		size_t c = pc_parser_feed(e->ps, p, n);
		uint8_t *q;

		if (c < n) {
			if ((q = pc_buf_reserve(&e->carry, n - c)) == NULL)
				return -1;
			memcpy(q, p + c, n - c);
			e->carry.len += n - c;
		}
	}
	return e->failed ? -1 : 0;
}

/* The end of a public call: blocks went to e->out; a failure is final. */
static int
call_end(struct pc_enc *e, int r)
{
	e->out = NULL;
	if (r != 0)
		e->failed = true;
	return r;
}

int
pc_enc_feed(struct pc_enc *e, const uint8_t *p, size_t n, struct pc_buf *out)
{
	if (e->failed || e->finished)
		return -1;
	e->out = out;
	e->st.raw_bytes += n;
	return call_end(e, feed(e, p, n));
}

int
pc_enc_flush(struct pc_enc *e, struct pc_buf *out)
{
	if (e->failed)
		return -1;
	e->out = out;
	return call_end(e, block_end(e));
}

int
pc_enc_finish(struct pc_enc *e, struct pc_buf *out)
{
	uint8_t *q;
	XXH128_canonical_t c;

	if (e->failed || e->finished)
		return -1;
	e->out = out;
	if (emit_preface(e) != 0) /* an empty stream has one too */
		goto fail;
	if (e->carry.len > 0) {
		/* the stream ended inside a record: the bytes go as they are */
		on_raw(e, e->carry.p, e->carry.len);
		e->carry.len = 0;
	}
	if (e->failed || block_end(e) != 0)
		goto fail;
	if ((q = pc_buf_reserve(out, PC_BLOCK_HDR + 24)) == NULL)
		goto fail;
	memset(q, 0, PC_BLOCK_HDR);
	q[0] = 'E';
	wm_put_be32(q + 8, 24);
	/* every byte fed has gone out in a block by now */
	wm_put_be64(q + PC_BLOCK_HDR, e->st.raw_bytes);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(e->digest));
	memcpy(q + PC_BLOCK_HDR + 8, c.digest, 16);
	out->len += PC_BLOCK_HDR + 24;
	e->st.enc_bytes += PC_BLOCK_HDR + 24;
	e->finished = true;
	return call_end(e, 0);
fail:
	return call_end(e, -1);
}

void
pc_enc_get_stats(const struct pc_enc *e, struct pc_stats *st)
{
	const char *why;

	*st = e->st;
	st->opaque = pc_parser_opaque(e->ps, &why);
	if (st->opaque && why != NULL)
		snprintf(st->opaque_why, sizeof(st->opaque_why), "%s", why);
}

uint64_t
pc_enc_memory(const struct pc_enc *e)
{
	/* zstd sizes its context at the first block */
	return e->mem + e->ops.cap + e->carry.cap +
	    (e->zc ? ZSTD_sizeof_CCtx(e->zc) : 0);
}

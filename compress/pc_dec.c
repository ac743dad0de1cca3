/*
 * pc_dec.c - the decoder: blocks of operations in, QEMU's exact bytes out.
 *
 * Every length, slot and reference in a block is checked before it is
 * used, so a damaged or hostile block is an error, never a crash or a read
 * outside the caches; and a block's bytes count as decoded only once they
 * match the block's checksum (the owner releases nothing before that).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <xxhash.h>
#include <zstd.h>

#include "pc_int.h"

#define PAYLOAD_MAX (PC_OPS_MAX + PC_OPS_MAX / 64 + 4096)

struct pc_dec {
	struct pc_dec_limits lim;
	bool started, done, dead;
	enum pc_algo algo;
	struct pc_cache c;
	ZSTD_DCtx *zd;
	uint8_t *ops;           /* PC_OPS_MAX, for decompression */
	uint32_t blockno;
	uint64_t total;
	uint64_t prev_key;
	XXH3_state_t *digest;
	uint64_t units, fault_at;
};

#define FAIL(...) do {                                  \
	snprintf(err, errlen, __VA_ARGS__);             \
	d->dead = true;                                 \
	return -1;                                      \
} while (0)

struct pc_dec *
pc_dec_new(const struct pc_dec_limits *lim)
{
	struct pc_dec *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->lim = *lim;
	if ((d->digest = XXH3_createState()) == NULL) {
		free(d);
		return NULL;
	}
	XXH3_128bits_reset(d->digest);
	return d;
}

void
pc_dec_free(struct pc_dec *d)
{
	if (d == NULL)
		return;
	pc_cache_cleanup(&d->c);
	ZSTD_freeDCtx(d->zd);
	free(d->ops);
	XXH3_freeState(d->digest);
	free(d);
}

void
pc_dec_set_fault(struct pc_dec *d, uint64_t n)
{
	d->fault_at = n;
}

bool
pc_dec_done(const struct pc_dec *d)
{
	return d->done;
}

uint64_t
pc_dec_memory(const struct pc_dec *d)
{
	return sizeof(*d) + pc_cache_bytes(&d->c) + (d->ops ? PC_OPS_MAX : 0) +
	    (d->zd ? ZSTD_sizeof_DCtx(d->zd) : 0);
}

long
pc_dec_next(struct pc_dec *d, const uint8_t *p, size_t avail,
    size_t *out_len, char *err, size_t errlen)
{
	uint32_t ops_len, plen, olen;

	*out_len = 0;
	if (d->dead)
		FAIL("decoder already failed");
	if (d->done) {
		if (avail > 0)
			FAIL("bytes after the end of the encoded stream");
		return 0;
	}
	if (!d->started) {
		if (avail < PC_PREFACE)
			return 0;
		if (memcmp(p, "WMPC", 4) != 0 || p[4] != PC_VERSION)
			FAIL("not an encoded stream of version %d", PC_VERSION);
		if (p[5] > PC_ALGO_ZSTD || p[7] != 0 ||
		    (p[5] == PC_ALGO_ZSTD) != (p[6] != 0))
			FAIL("unknown codec %u", p[5]);
		return PC_PREFACE;
	}
	if (avail < PC_BLOCK_HDR)
		return 0;
	ops_len = wm_get_be32(p + 4);
	plen = wm_get_be32(p + 8);
	olen = wm_get_be32(p + 12);
	if (p[0] == 'E') {
		static const uint8_t zero[PC_BLOCK_HDR];

		if (plen != 24 || memcmp(p + 1, zero, 7) != 0 ||
		    memcmp(p + 12, zero, 12) != 0)
			FAIL("malformed end record");
		return PC_BLOCK_HDR + 24;
	}
	if (p[0] != 'B')
		FAIL("unknown record 0x%02x", p[0]);
	if (p[2] != 0 || p[3] != 0 ||
	    (p[1] != PC_ALGO_NONE && p[1] != d->algo))
		FAIL("block %u: bad header", d->blockno);
	if (ops_len == 0 || ops_len > PC_OPS_MAX || olen > PC_OUT_MAX ||
	    plen > PAYLOAD_MAX || (p[1] == PC_ALGO_NONE && plen != ops_len))
		FAIL("block %u: lengths out of bounds (ops %u, payload %u, "
		    "bytes %u)", d->blockno, ops_len, plen, olen);
	*out_len = olen;
	return (long)(PC_BLOCK_HDR + plen);
}

static int
preface(struct pc_dec *d, const uint8_t *p, char *err, size_t errlen)
{
	uint32_t nx = wm_get_be32(p + 8), nd = wm_get_be32(p + 12);

	if ((nx & (nx - 1)) != 0)
		FAIL("page cache of %u pages: not a power of two", nx);
	if ((uint64_t)nx * PC_PAGE > d->lim.xbzrle_cache)
		FAIL("the sender's xbzrle-cache (%llu bytes) exceeds this "
		    "gateway's (%llu)", (unsigned long long)nx * PC_PAGE,
		    (unsigned long long)d->lim.xbzrle_cache);
	if ((uint64_t)nd * PC_PAGE > d->lim.dedup_cache)
		FAIL("the sender's dedup-cache (%llu bytes) exceeds this "
		    "gateway's (%llu)", (unsigned long long)nd * PC_PAGE,
		    (unsigned long long)d->lim.dedup_cache);
	d->algo = (enum pc_algo)p[5];
	if (d->algo == PC_ALGO_ZSTD && (p[6] < PC_ZSTD_WLOG_MIN ||
	    p[6] > pc_zstd_wlog(d->lim.dedup_cache)))
		FAIL("the sender's zstd window (2^%u bytes) exceeds this "
		    "gateway's (2^%u, from its dedup-cache)", p[6],
		    pc_zstd_wlog(d->lim.dedup_cache));
	if (pc_cache_init(&d->c, nx, nd) != 0 ||
	    (d->ops = malloc(PC_OPS_MAX)) == NULL)
		FAIL("out of memory for the codec caches");
	if (d->algo == PC_ALGO_ZSTD &&
	    ((d->zd = ZSTD_createDCtx()) == NULL ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(d->zd, ZSTD_d_windowLogMax,
	    (int)p[6]))))
		FAIL("out of memory for zstd");
	d->started = true;
	return 0;
}

static int
get_key(struct pc_dec *d, const uint8_t *o, size_t n, size_t *at,
    uint64_t *key)
{
	uint64_t z = 0;
	unsigned shift = 0;

	for (;;) {
		if (*at >= n || shift > 63)
			return -1;
		z |= (uint64_t)(o[*at] & 0x7F) << shift;
		if (!(o[(*at)++] & 0x80))
			break;
		shift += 7;
	}
	*key = d->prev_key + 1 + (uint64_t)((int64_t)(z >> 1) ^
	    -(int64_t)(z & 1));
	d->prev_key = *key;
	return 0;
}

static void
xstore(struct pc_dec *d, uint64_t key, const uint8_t *pg)
{
	uint32_t s;

	if (d->c.nx == 0)
		return;
	s = pc_xslot(&d->c, key);
	d->c.xtag[s] = key + 1;
	pc_page_store(d->c.xpage + (size_t)s * PC_PAGE, pg);
}

static void
dinsert(struct pc_dec *d, const uint8_t *pg)
{
	struct pc_cache *c = &d->c;

	if (c->nd == 0)
		return;
	pc_page_store(c->dpage + (size_t)c->dhead * PC_PAGE, pg);
	c->dhead = c->dhead + 1 == c->nd ? 0 : c->dhead + 1;
	if (c->dfill < c->nd)
		c->dfill++;
}

/* Runs the operations o[0..n) into out (olen bytes exactly). */
static int
run_ops(struct pc_dec *d, const uint8_t *o, size_t n, uint8_t *out,
    size_t olen, char *err, size_t errlen)
{
	size_t at = 0, w = 0;
	struct pc_cache *c = &d->c;

	while (at < n) {
		uint8_t op = o[at++];
		uint64_t key;
		uint32_t len, s;

		if (op == PC_OP_RAW) {
			if (n - at < 4)
				FAIL("block %u: truncated operation", d->blockno);
			len = pc_get_le32(o + at);
			at += 4;
			if (len > n - at || len > olen - w)
				FAIL("block %u: raw run out of bounds", d->blockno);
			if (len > 0) /* out may be NULL for a 0-byte unit */
				memcpy(out + w, o + at, len);
			at += len;
			w += len;
			continue;
		}
		if (op < PC_OP_PAGE || op > PC_OP_DROP)
			FAIL("block %u: unknown operation 0x%02x", d->blockno, op);
		if (get_key(d, o, n, &at, &key) != 0)
			FAIL("block %u: truncated page key", d->blockno);
		if (op == PC_OP_DROP) {
			if (c->nx > 0 && c->xtag[pc_xslot(c, key)] == key + 1)
				c->xtag[pc_xslot(c, key)] = 0;
			continue;
		}
		if (olen - w < PC_PAGE)
			FAIL("block %u: more pages than its length", d->blockno);
		switch (op) {
		case PC_OP_PAGE:
			if (n - at < PC_PAGE)
				FAIL("block %u: truncated page", d->blockno);
			memcpy(out + w, o + at, PC_PAGE);
			at += PC_PAGE;
			xstore(d, key, out + w);
			dinsert(d, out + w);
			break;
		case PC_OP_ZERO:
			memset(out + w, 0, PC_PAGE);
			xstore(d, key, out + w);
			break;
		case PC_OP_REF:
			if (n - at < 4)
				FAIL("block %u: truncated reference", d->blockno);
			s = pc_get_le32(o + at);
			at += 4;
			if (s >= c->dfill)
				FAIL("block %u: reference to dedup slot %u, which "
				    "holds nothing", d->blockno, s);
			memcpy(out + w, c->dpage + (size_t)s * PC_PAGE, PC_PAGE);
			if (d->fault_at != 0 && d->units >= d->fault_at)
				out[w + s % PC_PAGE] ^= 0x10; /* test fault */
			xstore(d, key, out + w);
			break;
		case PC_OP_DELTA:
			if (n - at < 2)
				FAIL("block %u: truncated delta", d->blockno);
			len = (uint32_t)(o[at] | o[at + 1] << 8);
			at += 2;
			if (len > n - at || len > PC_DELTA_MAX)
				FAIL("block %u: delta out of bounds", d->blockno);
			s = c->nx > 0 ? pc_xslot(c, key) : 0;
			if (c->nx == 0 || c->xtag[s] != key + 1)
				FAIL("block %u: delta against a page not held",
				    d->blockno);
			memcpy(out + w, c->xpage + (size_t)s * PC_PAGE, PC_PAGE);
			if (d->fault_at != 0 && d->units >= d->fault_at)
				out[w + s % PC_PAGE] ^= 0x10; /* test fault */
			if (pc_delta_apply(out + w, o + at, len) != 0)
				FAIL("block %u: malformed delta", d->blockno);
			at += len;
			pc_page_store(c->xpage + (size_t)s * PC_PAGE, out + w);
			dinsert(d, out + w);
			break;
		}
		w += PC_PAGE;
	}
	if (w != olen)
		FAIL("block %u: decodes to %zu bytes, not %zu", d->blockno, w,
		    olen);
	return 0;
}

int
pc_dec_unit(struct pc_dec *d, const uint8_t *p, size_t len, uint8_t *out,
    char *err, size_t errlen)
{
	size_t olen;
	long need = pc_dec_next(d, p, len, &olen, err, errlen);
	uint32_t ops_len, plen;
	const uint8_t *ops, *h = p;

	if (need < 0)
		return -1;
	if (need == 0 || (size_t)need != len)
		FAIL("incomplete unit");
	d->units++;
	if (!d->started)
		return preface(d, p, err, errlen);
	if (p[0] == 'E') {
		XXH128_canonical_t c;

		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(d->digest));
		if (wm_get_be64(p + PC_BLOCK_HDR) != d->total)
			FAIL("the stream ends after %llu bytes, the sender "
			    "wrote %llu", (unsigned long long)d->total,
			    (unsigned long long)wm_get_be64(p + PC_BLOCK_HDR));
		if (memcmp(c.digest, p + PC_BLOCK_HDR + 8, 16) != 0)
			FAIL("digest mismatch over the whole stream");
		d->done = true;
		return 0;
	}
	ops_len = wm_get_be32(p + 4);
	plen = wm_get_be32(p + 8);
	p += PC_BLOCK_HDR;
	if (h[1] == PC_ALGO_NONE) {
		ops = p;
	} else if (d->algo == PC_ALGO_LZ4) {
		if (LZ4_decompress_safe((const char *)p, (char *)d->ops,
		    (int)plen, (int)ops_len) != (int)ops_len)
			FAIL("block %u: LZ4 data damaged", d->blockno);
		ops = d->ops;
	} else {
		ZSTD_inBuffer in = { p, plen, 0 };
		ZSTD_outBuffer o = { d->ops, ops_len, 0 };

		while (in.pos < in.size) {
			size_t r = ZSTD_decompressStream(d->zd, &o, &in);

			if (ZSTD_isError(r))
				FAIL("block %u: zstd data damaged (%s)", d->blockno,
				    ZSTD_getErrorName(r));
			if (o.pos == o.size && in.pos < in.size) {
				/* may only be the end of the flushed chunk */
				uint8_t spare;
				ZSTD_outBuffer x = { &spare, 1, 0 };

				r = ZSTD_decompressStream(d->zd, &x, &in);
				if (ZSTD_isError(r) || x.pos != 0)
					FAIL("block %u: zstd data longer than "
					    "its header says", d->blockno);
				if (in.pos < in.size)
					FAIL("block %u: zstd data left over",
					    d->blockno);
			}
		}
		if (o.pos != ops_len)
			FAIL("block %u: zstd data shorter than its header says",
			    d->blockno);
		ops = d->ops;
	}
	if (run_ops(d, ops, ops_len, out, olen, err, errlen) != 0)
		return -1;
	if (XXH3_64bits_withSeed(out, olen, (uint64_t)d->blockno + 1) !=
	    wm_get_be64(h + 16))
		FAIL("block %u: checksum mismatch: decoded bytes differ from "
		    "the source's", d->blockno);
	XXH3_128bits_update(d->digest, h + 12, 12); /* length and checksum */
	d->total += olen;
	d->blockno++;
	return 0;
}

int
pc_dec_all(struct pc_dec *d, const uint8_t *p, size_t n, struct pc_buf *out,
    char *err, size_t errlen)
{
	while (n > 0) {
		size_t olen;
		long k = pc_dec_next(d, p, n, &olen, err, errlen);
		uint8_t *q;

		if (k < 0)
			return -1;
		if (k == 0) {
			snprintf(err, errlen, "encoded stream truncated");
			return -1;
		}
		if ((q = pc_buf_reserve(out, olen)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (pc_dec_unit(d, p, (size_t)k, q, err, errlen) != 0)
			return -1;
		out->len += olen;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

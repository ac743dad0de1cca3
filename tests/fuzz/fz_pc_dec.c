/*
 * fz_pc_dec.c - libFuzzer target: the page codec's decoder
 * (compress/pc_dec.c) on arbitrary bytes, as a destination gateway
 * receives them from the WAN.
 *
 * The input is an encoded stream (the seeds in corpus/pc_dec/ are real
 * encoder output, whole and cut short). It is decoded twice the way the
 * gateway does it, with pc_dec_next() and pc_dec_unit() (pc_dec_all()'s
 * loop): once with all of it at hand, once arriving in chunks cut at
 * places drawn from the input. The decoder sees only the bytes that have
 * arrived, in a buffer that ends exactly there, each unit in a buffer of
 * exactly its length, and writes into one of exactly the size
 * pc_dec_next() asked for, so AddressSanitizer catches any access past
 * them. Errors are expected. Not allowed: a crash, a leak, an overrun, a
 * decoder that goes on after an error, one that holds more memory than
 * its limits allow, or results that depend on the cuts.
 */
#include <stdbool.h>
#include <string.h>

#include "fz.h"
#include "pc.h"

#define LIMIT (1u << 20)        /* both caches */
/* caches, their tags, the operations buffer, and zstd's context with its
 * 1 MiB window */
#define MEM_MAX (2 * LIMIT + LIMIT / PC_PAGE * 8 + PC_OPS_MAX + (4u << 20))

struct res {
	uint64_t hash;          /* of the bytes decoded, unit by unit */
	uint64_t len;
	unsigned units;
	bool done, failed;
};

/* The bytes still to decode, the first at unused ones (p ends exactly
 * at the last byte that arrived), with k more appended. */
static uint8_t *
arrive(uint8_t *p, size_t *len, size_t *at, const uint8_t *more, size_t k)
{
	size_t keep = *len - *at;
	uint8_t *q = malloc(keep + k);

	FZ_CHECK(q != NULL);
	if (keep > 0)
		memcpy(q, p + *at, keep);
	memcpy(q + keep, more, k);
	free(p);
	*len = keep + k;
	*at = 0;
	return q;
}

/* Decodes the units complete in p[*at..len). */
static void
drain(struct pc_dec *d, const uint8_t *p, size_t len, size_t *at,
    struct res *r)
{
	char err[256];

	while (!r->failed) {
		const uint8_t *u = p + *at;
		size_t avail = len - *at, olen = 12345;
		uint8_t *copy = NULL, *out, spare;
		long k;

		k = pc_dec_next(d, u, avail, &olen, err, sizeof(err));
		if (k < 0) {
			r->failed = true;
			break;
		}
		if (k == 0) {
			FZ_CHECK(olen == 0);
			break;
		}
		FZ_CHECK(k >= (long)PC_PREFACE);
		FZ_CHECK(olen <= PC_OUT_MAX);
		if ((size_t)k > avail)
			break;          /* the rest of the unit is on its way */
		if ((size_t)k < avail) {
			FZ_CHECK((copy = malloc((size_t)k)) != NULL);
			memcpy(copy, u, (size_t)k);
			u = copy;
		}
		if ((out = malloc(olen)) == NULL) {
			FZ_CHECK(olen == 0);
			out = &spare;
		}
		if (pc_dec_unit(d, u, (size_t)k, out, err, sizeof(err)) != 0)
			r->failed = true;
		else {
			r->hash = fz_hash(r->hash, out, olen);
			r->len += olen;
			r->units++;
			*at += (size_t)k;
		}
		if (out != &spare)
			free(out);
		free(copy);
		FZ_CHECK(pc_dec_memory(d) <= MEM_MAX);
	}
}

/* Decodes in in chunks drawn from seed (0: all at once). */
static void
decode(const uint8_t *in, size_t n, uint32_t seed, struct res *r)
{
	static const struct pc_dec_limits lim = { LIMIT, LIMIT };
	struct pc_dec *d = pc_dec_new(&lim);
	uint8_t *p = NULL;
	size_t len = 0, at = 0, off = 0, olen;
	char err[256];

	FZ_CHECK(d != NULL);
	memset(r, 0, sizeof(*r));
	r->hash = FZ_HASH_INIT;
	while (off < n && !r->failed) {
		size_t k = n - off;

		if (seed != 0) {
			size_t max = fz_rand(&seed) % 4 == 0 ? 8 : 5000;

			k = 1 + fz_rand(&seed) % max;
			if (k > n - off)
				k = n - off;
		}
		p = arrive(p, &len, &at, in + off, k);
		off += k;
		drain(d, p, len, &at, r);
	}
	r->done = pc_dec_done(d);
	if (r->failed) {
		/* a decoder that failed is dead */
		FZ_CHECK(pc_dec_next(d, p + at, len - at, &olen, err,
		    sizeof(err)) < 0);
		FZ_CHECK(pc_dec_unit(d, p + at, len - at, NULL, err,
		    sizeof(err)) < 0);
	}
	free(p);
	pc_dec_free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct res whole, cut;

	decode(data, size, 0, &whole);
	decode(data, size, fz_seed(data, size), &cut);
	FZ_CHECK(whole.failed == cut.failed);
	FZ_CHECK(whole.done == cut.done);
	FZ_CHECK(whole.units == cut.units);
	FZ_CHECK(whole.len == cut.len);
	FZ_CHECK(whole.hash == cut.hash);
	return 0;
}

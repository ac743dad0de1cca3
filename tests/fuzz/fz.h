/*
 * fz.h - what the fuzz targets (fz_*.c), their corpus replayer (replay.c)
 * and the seed generator (gen_corpus.c) share: libFuzzer's entry point, a
 * check that aborts, and a small deterministic PRNG and hash so that a
 * target draws its chunk sizes from the input alone (an input replays the
 * same way every time, under libFuzzer or not).
 */
#ifndef WM_TESTS_FZ_H
#define WM_TESTS_FZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test failed: libFuzzer saves the input,
 * the replayer dies with it. */
#define FZ_CHECK(cond) do {                                             \
	if (!(cond)) {                                                  \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,  \
		    __LINE__, #cond);                                   \
		abort();                                                \
	}                                                               \
} while (0)

static inline uint32_t
fz_rand(uint32_t *x)
{
	/* xorshift32: never 0 once seeded with non-zero */
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* FNV-1a, 64 bits: fz_hash(FZ_HASH_INIT, p, n), chained. */
static inline uint64_t
fz_hash(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001B3ull;
	return h;
}

#define FZ_HASH_INIT 0xCBF29CE484222325ull

/* A non-zero fz_rand() seed from bytes. */
static inline uint32_t
fz_seed(const uint8_t *p, size_t n)
{
	uint64_t h = fz_hash(FZ_HASH_INIT, p, n);
	uint32_t s = (uint32_t)(h ^ h >> 32);

	return s != 0 ? s : 1;
}

#endif

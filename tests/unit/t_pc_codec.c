/* t_pc_codec.c - the page codec (compress/): parser, encoder, decoder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc.h"
#include "pc_gen.h"
#include "pc_int.h"

static const struct pc_dec_limits big = { 64u << 20, 64u << 20 };

/* Encodes s (fed in chunks drawn from seed, flushing now and then as the
 * gateway does when its input runs dry), checks the decoder gives s back
 * exactly; returns the stats. */
static void
roundtrip(const uint8_t *s, size_t n, enum pc_algo algo, uint64_t xbz,
    uint64_t dd, uint32_t seed, struct pc_stats *st)
{
	struct pc_params p = { algo, 1, xbz, dd, true };
	struct pc_enc *e = pc_enc_new(&p);
	struct pc_dec_limits lim = { xbz, dd };
	struct pc_dec *d = pc_dec_new(&lim);
	struct pc_buf enc, dec;
	char err[256] = "";
	size_t off = 0;

	assert_non_null(e);
	assert_non_null(d);
	pc_buf_init(&enc);
	pc_buf_init(&dec);
	while (off < n) {
		size_t k = 1 + (seed = seed * 1103515245u + 12345u) % 70000;

		if (k > n - off)
			k = n - off;
		assert_int_equal(pc_enc_feed(e, s + off, k, &enc), 0);
		off += k;
		if ((seed >> 20) % 3 == 0)
			assert_int_equal(pc_enc_flush(e, &enc), 0);
	}
	assert_int_equal(pc_enc_finish(e, &enc), 0);
	if (pc_dec_all(d, enc.p, enc.len, &dec, err, sizeof(err)) != 0)
		fail_msg("decode: %s", err);
	assert_true(pc_dec_done(d));
	assert_int_equal(dec.len, n);
	assert_memory_equal(dec.p, s, n);
	pc_enc_get_stats(e, st);
	assert_int_equal(st->raw_bytes, n);
	assert_int_equal(st->enc_bytes, enc.len);
	pc_enc_free(e);
	pc_dec_free(d);
	pc_buf_cleanup(&enc);
	pc_buf_cleanup(&dec);
}

static void
test_qemu_stream(void **state)
{
	struct gen g = { 0 };
	struct pc_stats st;
	enum pc_algo algos[] = { PC_ALGO_NONE, PC_ALGO_LZ4, PC_ALGO_ZSTD };

	(void)state;
	gen_stream(&g, 2048, 2, 42);
	for (int i = 0; i < 3; i++) {
		roundtrip(g.b.p, g.b.len, algos[i], 16u << 20, 16u << 20,
		    (uint32_t)i, &st);
		/* the parser followed the ram section to the device state */
		assert_true(st.opaque);
		assert_string_equal(st.opaque_why, "device state");
		assert_true(st.pages[PC_ZERO] > 100);
		assert_true(st.pages[PC_DEDUP] > 100);
		assert_true(st.pages[PC_DELTA] > 500);
		assert_true(st.pages[PC_LITERAL] > 1000);
		assert_true(st.pages[PC_OPAQUE] > 50);
		if (algos[i] != PC_ALGO_NONE)
			assert_true(st.enc_bytes * 4 < st.raw_bytes);
	}
	pc_buf_cleanup(&g.b);
}

/* Caches far smaller than the stream: eviction stays mirrored. */
static void
test_small_caches(void **state)
{
	struct gen g = { 0 };
	struct pc_stats st;

	(void)state;
	gen_stream(&g, 4096, 2, 7);
	roundtrip(g.b.p, g.b.len, PC_ALGO_LZ4, 64 * PC_PAGE, 10 * PC_PAGE, 3,
	    &st);
	assert_true(st.pages[PC_LITERAL] > 3000);
	roundtrip(g.b.p, g.b.len, PC_ALGO_ZSTD, 0, 0, 4, &st);
	assert_int_equal(st.pages[PC_DEDUP], 0);
	assert_int_equal(st.pages[PC_DELTA], 0);
	pc_buf_cleanup(&g.b);
}

/* Memory: each side holds its caches, zstd's window (as large as the dedup
 * cache) and a fixed part, however long the stream; a decoder refuses a
 * sender asking for more than its own settings. */
static void
test_memory_bound(void **state)
{
	struct pc_params p = { PC_ALGO_ZSTD, 1, 1u << 20, 2u << 20, true };
	struct pc_enc *e = pc_enc_new(&p);
	struct pc_dec_limits lim = { 1u << 20, 2u << 20 }, lim2 = { 1u << 20,
		1u << 20 };
	struct pc_dec *d = pc_dec_new(&lim), *d2 = pc_dec_new(&lim2);
	struct gen g = { 0 };
	struct pc_buf enc, dec;
	char err[256];
	/* caches 1 + 2 MiB, window 2 MiB, fixed part at most 4 MiB */
	const uint64_t bound = (1u << 20) + (2u << 20) + (2u << 20) + (4u << 20);
	uint64_t peak = 0;

	(void)state;
	pc_buf_init(&enc);
	pc_buf_init(&dec);
	/* 32 MiB of pages: 10x the caches */
	gen_stream(&g, 8192, 0, 9);
	for (size_t off = 0; off < g.b.len; off += 100000) {
		size_t k = g.b.len - off < 100000 ? g.b.len - off : 100000;

		assert_int_equal(pc_enc_feed(e, g.b.p + off, k, &enc), 0);
		assert_int_equal(pc_enc_flush(e, &enc), 0);
		if (pc_enc_memory(e) > peak)
			peak = pc_enc_memory(e);
	}
	assert_true(peak > (3u << 20));  /* the caches are counted */
	assert_true(peak <= bound);
	assert_int_equal(pc_enc_finish(e, &enc), 0);
	assert_int_equal(pc_dec_all(d, enc.p, enc.len, &dec, err, sizeof(err)),
	    0);
	assert_true(pc_dec_memory(d) > (3u << 20));
	assert_true(pc_dec_memory(d) <= bound);
	assert_int_equal(dec.len, g.b.len);
	assert_memory_equal(dec.p, g.b.p, g.b.len);
	/* this decoder allows 1 MiB of dedup cache: the preface asks for 2 */
	dec.len = 0;
	assert_int_equal(pc_dec_all(d2, enc.p, enc.len, &dec, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "dedup-cache"));
	pc_enc_free(e);
	pc_dec_free(d);
	pc_dec_free(d2);
	pc_buf_cleanup(&enc);
	pc_buf_cleanup(&dec);
	pc_buf_cleanup(&g.b);
}

/* Not QEMU at all: random bytes, and the empty stream. */
static void
test_random(void **state)
{
	struct pc_stats st;
	size_t n = 3u << 20;
	uint8_t *s = malloc(n);
	uint32_t x = 1;

	(void)state;
	for (size_t i = 0; i < n; i++)
		s[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
	roundtrip(s, n, PC_ALGO_LZ4, 1u << 20, 1u << 20, 5, &st);
	assert_true(st.opaque);
	assert_string_equal(st.opaque_why, "not a QEMU main channel");
	roundtrip(s, 0, PC_ALGO_ZSTD, 1u << 20, 1u << 20, 5, &st);
	/* a QEMU header, then noise */
	memcpy(s, "QEVM\0\0\0\x03", 8);
	roundtrip(s, n, PC_ALGO_ZSTD, 1u << 20, 1u << 20, 6, &st);
	assert_true(st.opaque);
	free(s);
}

/* Bytes that will not compress are stored without trying for a while
 * (runs doubling while they stay so); compression resumes where the bytes
 * compress again. */
static void
test_incompressible(void **state)
{
	struct pc_stats st;
	size_t nr = 4u << 20, nc = 8u << 20;
	uint8_t *s = malloc(nr + nc);
	uint32_t x = 9;

	(void)state;
	assert_non_null(s);
	for (size_t i = 0; i < nr; i++)
		s[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
	for (size_t i = 0; i < nc; i++)
		s[nr + i] = (uint8_t)"wanmig stores noise as it is "[i % 29];
	for (int a = 0; a < 2; a++) {
		roundtrip(s, nr + nc, a ? PC_ALGO_LZ4 : PC_ALGO_ZSTD, 1u << 20,
		    1u << 20, 11, &st);
		assert_true(st.blocks_skipped > st.blocks / 4);
		assert_true(st.blocks_skipped < st.blocks);
		/* the noise costs little more than itself, and most of the
		 * text is compressed again */
		assert_true(st.enc_bytes < nr + nc / 2);
	}
	free(s);
}

/* Real-format streams with damage the parser must survive: every result
 * still round-trips exactly. */
static void
test_mutated(void **state)
{
	struct gen g = { 0 };
	struct pc_stats st;
	uint32_t x = 99;

	(void)state;
	gen_stream(&g, 256, 1, 11);
	for (int i = 0; i < 200; i++) {
		uint8_t *s = malloc(g.b.len + 64);
		size_t n = g.b.len, at;

		memcpy(s, g.b.p, n);
		for (int k = 0; k < 1 + i % 4; k++) {
			x = x * 1103515245u + 12345u;
			at = (x >> 8) % n;
			switch (x % 3) {
			case 0: /* flip */
				s[at] ^= (uint8_t)(1u << (x >> 29));
				break;
			case 1: /* cut */
				memmove(s + at, s + at + 1, n - at - 1);
				n--;
				break;
			default: /* insert */
				memmove(s + at + 1, s + at, n - at);
				s[at] = (uint8_t)(x >> 24);
				n++;
				break;
			}
		}
		roundtrip(s, n, i % 2 ? PC_ALGO_LZ4 : PC_ALGO_ZSTD, 1u << 20,
		    1u << 20, (uint32_t)i, &st);
		free(s);
	}
	pc_buf_cleanup(&g.b);
}

/* Damage to the encoded stream is caught: never a wrong result. */
static void
test_damage_detected(void **state)
{
	struct gen g = { 0 };
	struct pc_params p = { PC_ALGO_LZ4, 1, 1u << 20, 1u << 20, true };
	struct pc_enc *e = pc_enc_new(&p);
	struct pc_buf enc, dec;
	char err[256];
	uint32_t x = 5;
	int caught = 0;

	(void)state;
	pc_buf_init(&enc);
	pc_buf_init(&dec);
	gen_stream(&g, 512, 1, 13);
	assert_int_equal(pc_enc_feed(e, g.b.p, g.b.len, &enc), 0);
	assert_int_equal(pc_enc_finish(e, &enc), 0);
	for (int i = 0; i < 300; i++) {
		struct pc_dec *d = pc_dec_new(&big);
		size_t at = (x = x * 1103515245u + 12345u) % enc.len;
		int r;

		enc.p[at] ^= (uint8_t)(1u << (x >> 29));
		dec.len = 0;
		r = pc_dec_all(d, enc.p, enc.len, &dec, err, sizeof(err));
		if (r == 0) {
			/* only a flip the result does not depend on */
			assert_int_equal(dec.len, g.b.len);
			assert_memory_equal(dec.p, g.b.p, g.b.len);
		} else {
			caught++;
		}
		enc.p[at] ^= (uint8_t)(1u << (x >> 29));
		pc_dec_free(d);
	}
	assert_true(caught > 250);
	/* truncation: no END, no done */
	{
		struct pc_dec *d = pc_dec_new(&big);

		dec.len = 0;
		assert_int_equal(pc_dec_all(d, enc.p, enc.len - 48, &dec, err,
		    sizeof(err)), 0);
		assert_false(pc_dec_done(d));
		pc_dec_free(d);
	}
	pc_enc_free(e);
	pc_buf_cleanup(&enc);
	pc_buf_cleanup(&dec);
	pc_buf_cleanup(&g.b);
}

/* The delta: exact, and bounded. */
static void
test_delta(void **state)
{
	uint8_t a[PC_PAGE], b[PC_PAGE], d[PC_PAGE];
	long n;

	(void)state;
	gen_page(a, 1, 0);
	memcpy(b, a, sizeof(b));
	b[0] ^= 1;
	b[100] ^= 2;
	b[101] ^= 2;
	b[4095] ^= 3;
	n = pc_delta_encode(a, b, d, sizeof(d));
	assert_true(n > 0 && n < 20);
	assert_int_equal(pc_delta_apply(a, d, (size_t)n), 0);
	assert_memory_equal(a, b, PC_PAGE);
	/* every byte changed: does not fit in 2 KiB */
	for (size_t i = 0; i < PC_PAGE; i++)
		b[i] = (uint8_t)~a[i];
	assert_int_equal(pc_delta_encode(a, b, d, 2048), -1);
	/* runs past the page are refused */
	assert_int_equal(pc_delta_apply(a,
	    (const uint8_t *)"\x80\x20\x05", 3), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qemu_stream),
		cmocka_unit_test(test_small_caches),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_incompressible),
		cmocka_unit_test(test_mutated),
		cmocka_unit_test(test_damage_detected),
		cmocka_unit_test(test_delta),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

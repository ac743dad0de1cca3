/*
 * b_codec.c - the page codec (compress/) on captured QEMU migration
 * streams: speed, size, and a byte-exact round trip, next to plain zstd and
 * LZ4 on the same bytes. Prints markdown tables; asserts nothing but the
 * round trip.
 *
 *   b_codec [options] FILE...          benchmark (tables on stdout)
 *   b_codec --verify [options] FILE... round trip only: exit 1 on mismatch
 *
 * Options:
 *   --modes LIST        codec modes, comma separated, from lz4, zstd1,
 *                       zstd3, none (default: all four)
 *   --runs N            runs of each measurement, best taken (default 3)
 *   --chunk BYTES       encoder input per pc_enc_feed (default 256k, a
 *                       socket read of a busy gateway), pc_enc_flush
 *                       after each
 *   --no-flush          feed the chunks without flushing in between
 *   --xbzrle-cache B    codec page cache (default 64m, the product's)
 *   --dedup-cache B     codec dedup cache (default 64m)
 *   --no-ref            skip the plain zstd / LZ4 reference runs
 *   --no-warm           skip the warm runs (below)
 *   --profile enc|dec N after one checked round trip, run only the
 *                       encoder (or decoder) N times warm, no tables: a
 *                       clean workload for perf record
 *   sizes take a k, m or g suffix (powers of 1024)
 *
 * Speeds are MB/s with MB = 10^6 bytes, of raw stream bytes (what QEMU
 * wrote) per second of CPU time of the one thread doing the work
 * (CLOCK_THREAD_CPUTIME_ID); wall-clock figures are printed as well. For
 * the decoder the bytes are the decoded ones, the same number. The codec's
 * timings ("cold") include everything its caller pays per migration:
 * creating the contexts, the page faults of the 2 x 64 MiB caches on each
 * side as they fill (the codec calloc()s them, fresh from mmap), the
 * checksums. The "warm" figures are the steady state of a long stream:
 * malloc is told to keep and reuse freed memory (M_MMAP_MAX 0), so the
 * caches come back already mapped (calloc clears them), and the clock
 * starts after pc_enc_new() / after the decoder took the preface (where
 * it allocates its caches). Wall-clock figures are of the cold runs.
 *
 * References, on the whole file in memory, single-threaded:
 *   zstd -1 / zstd -3  ZSTD_compressCCtx() at that level (the parameters
 *                      libzstd picks for the file's size, as the CLI),
 *                      ZSTD_decompressDCtx();
 *   lz4                LZ4_compress_default() on independent 4 MiB blocks
 *                      (the lz4 CLI's default block layout, without its
 *                      frame checksum), LZ4_decompress_safe().
 *
 * Targets printed with PASS/FAIL (from the codec's issue): with LZ4 the
 * encoder >= 1000 MB/s and the decoder >= 2500 MB/s per core; with zstd
 * (level 1) encoder and decoder each >= 80 % of zstd -1's own compress and
 * decompress speed on the same bytes; in every mode the encoded stream
 * <= 0.7 x the zstd -3 size of the whole stream. A speed target is judged
 * on the cold figure (what a migration pays), the warm verdict next to it.
 *
 * Exit status: 0, also when a target is missed; 1 when a round trip does
 * not give the exact bytes back (or a codec call fails); 2 usage or I/O.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lz4.h>
#include <zstd.h>

#include "pc.h"

#define MB 1e6
#define LZ4_REF_BLOCK (4u << 20)
#define LZ4_TARGET_ENC 1000.0
#define LZ4_TARGET_DEC 2500.0
#define ZSTD_TARGET_FRAC 0.8
#define SIZE_TARGET_FRAC 0.7

struct mode {
	const char *name;
	enum pc_algo algo;
	int level;
};

static const struct mode all_modes[] = {
	{ "lz4", PC_ALGO_LZ4, 0 },
	{ "zstd1", PC_ALGO_ZSTD, 1 },
	{ "zstd3", PC_ALGO_ZSTD, 3 },
	{ "none", PC_ALGO_NONE, 0 },
};
#define NMODES (sizeof(all_modes) / sizeof(all_modes[0]))

struct opts {
	bool verify_only;
	bool modes[NMODES];
	int runs;
	size_t chunk;
	bool flush;
	uint64_t xbz, dedup;
	bool ref;
	bool warm;
	char profile;   /* 'e' or 'd': --profile, else 0 */
	int profile_n;
};

/* One timing: CPU time of this thread and wall time, seconds. */
struct timing {
	double cpu, wall;
	long minflt;
};

struct clk {
	struct timespec c, w;
	long minflt;
};

/* Results for one codec mode on one stream. */
struct mres {
	bool ok;
	struct timing enc, dec;     /* cold */
	struct timing wenc, wdec;   /* warm */
	uint64_t enc_bytes;
	struct pc_stats st;
};

/* Results for one reference compressor on one stream. */
struct rres {
	const char *name;
	struct timing comp, decomp;
	uint64_t size;
};

static long
minflt_now(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru) != 0)
		return 0;
	return ru.ru_minflt;
}

static void
clk_start(struct clk *k)
{
	k->minflt = minflt_now();
	clock_gettime(CLOCK_MONOTONIC, &k->w);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &k->c);
}

static double
ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static struct timing
clk_stop(const struct clk *k)
{
	struct timespec c, w;
	struct timing t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
	clock_gettime(CLOCK_MONOTONIC, &w);
	t.cpu = ts_diff(&k->c, &c);
	t.wall = ts_diff(&k->w, &w);
	t.minflt = minflt_now() - k->minflt;
	return t;
}

/* Keeps the better of two timings (by CPU time). */
static void
best(struct timing *b, const struct timing *t, int run)
{
	if (run == 0 || t->cpu < b->cpu)
		*b = *t;
}

static double
speed(uint64_t bytes, double s)
{
	return s > 0 ? (double)bytes / MB / s : 0;
}

/* malloc + touch every page, so first-touch faults stay out of timings
 * of the reference compressors and of buffers the gateway would reuse. */
static uint8_t *
alloc_touched(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	if (p != NULL)
		memset(p, 0, n);
	return p;
}

static uint8_t *
load_file(const char *path, size_t *len)
{
	struct stat sb;
	uint8_t *p;
	size_t got = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &sb) != 0) {
		fprintf(stderr, "b_codec: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if ((p = malloc((size_t)sb.st_size + 1)) == NULL) {
		fprintf(stderr, "b_codec: %s: out of memory\n", path);
		close(fd);
		return NULL;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, p + got, (size_t)sb.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "b_codec: %s: read: %s\n", path,
			    r < 0 ? strerror(errno) : "short file");
			free(p);
			close(fd);
			return NULL;
		}
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return p;
}

/* ---- the codec ---------------------------------------------------------- */

/*
 * Encodes s[0..n) into enc (emptied first; its capacity is reused). Returns
 * 0, or -1 if a codec call failed.
 */
static int
encode(const struct opts *o, const struct mode *m, const uint8_t *s,
    size_t n, bool warm, struct pc_buf *enc, struct pc_stats *st,
    struct timing *t)
{
	struct pc_params p = { m->algo, m->level, o->xbz, o->dedup, true };
	struct pc_enc *e;
	struct clk k;
	size_t off = 0;
	int r = 0;

	enc->len = 0;
	if (!warm)
		clk_start(&k);
	if ((e = pc_enc_new(&p)) == NULL)
		return -1;
	if (warm)
		clk_start(&k);
	while (off < n && r == 0) {
		size_t c = n - off < o->chunk ? n - off : o->chunk;

		r = pc_enc_feed(e, s + off, c, enc);
		if (r == 0 && o->flush)
			r = pc_enc_flush(e, enc);
		off += c;
	}
	if (r == 0)
		r = pc_enc_finish(e, enc);
	*t = clk_stop(&k);
	pc_enc_get_stats(e, st);
	pc_enc_free(e);
	if (r == 0 && st->enc_bytes != enc->len) {
		fprintf(stderr, "b_codec: the encoder counts %llu bytes, it "
		    "wrote %zu\n", (unsigned long long)st->enc_bytes, enc->len);
		r = -1;
	}
	return r;
}

/*
 * Decodes enc into out (room for cap bytes), the way the gateway does:
 * unit by unit. Returns the decoded length, or -1 (message printed).
 */
static long long
decode(const struct opts *o, const struct pc_buf *enc, uint8_t *out,
    size_t cap, bool warm, struct timing *t)
{
	struct pc_dec_limits lim = { o->xbz, o->dedup };
	struct pc_dec *d;
	const uint8_t *p = enc->p;
	size_t left = enc->len, w = 0;
	char err[256] = "";
	struct clk k;
	int r = 0;
	bool timing = !warm;

	clk_start(&k);
	if ((d = pc_dec_new(&lim)) == NULL)
		return -1;
	while (left > 0) {
		size_t olen;
		long u = pc_dec_next(d, p, left, &olen, err, sizeof(err));

		if (u <= 0) {
			if (u == 0)
				snprintf(err, sizeof(err), "encoded stream "
				    "truncated");
			r = -1;
			break;
		}
		if (olen > cap - w) {
			snprintf(err, sizeof(err), "decodes to more than the "
			    "%zu bytes of the source", cap);
			r = -1;
			break;
		}
		if (pc_dec_unit(d, p, (size_t)u, out + w, err,
		    sizeof(err)) != 0) {
			r = -1;
			break;
		}
		w += olen;
		p += u;
		left -= (size_t)u;
		if (!timing) {
			/* warm: the preface (the caches' allocation) is done */
			clk_start(&k);
			timing = true;
		}
	}
	if (r == 0 && !pc_dec_done(d)) {
		snprintf(err, sizeof(err), "no END record");
		r = -1;
	}
	*t = clk_stop(&k);
	pc_dec_free(d);
	if (r != 0) {
		fprintf(stderr, "b_codec: decode: %s\n", err);
		return -1;
	}
	return (long long)w;
}

static bool
same_bytes(const char *what, const uint8_t *s, size_t n, const uint8_t *d,
    long long dn)
{
	if (dn < 0)
		return false;
	if ((size_t)dn != n) {
		fprintf(stderr, "b_codec: %s: %lld bytes back, not %zu\n", what,
		    dn, n);
		return false;
	}
	if (memcmp(s, d, n) != 0) {
		size_t i = 0;

		while (s[i] == d[i])
			i++;
		fprintf(stderr, "b_codec: %s: bytes differ, first at %zu\n",
		    what, i);
		return false;
	}
	return true;
}

/* Warm: freed memory stays in the heap and is handed out again. */
static void
malloc_warm(bool on)
{
	mallopt(M_MMAP_MAX, on ? 0 : 65536);
	mallopt(M_TRIM_THRESHOLD, on ? INT32_MAX : 128 * 1024);
	if (!on)
		malloc_trim(0);
}

/* One encode + decode + comparison; 0 or -1. */
static int
roundtrip(const struct opts *o, const struct mode *m, const char *what,
    const uint8_t *s, size_t n, bool warm, struct pc_buf *enc, uint8_t *out,
    struct pc_stats *st, struct timing *te, struct timing *td)
{
	long long dn;

	if (encode(o, m, s, n, warm, enc, st, te) != 0) {
		fprintf(stderr, "b_codec: %s: encoder failed\n", what);
		return -1;
	}
	/* poison the output: stale bytes of the previous run cannot pass
	 * for decoded ones */
	memset(out, 0xA5, n < 4096 ? n : 4096);
	if (n > 4096)
		out[n - 1] = (uint8_t)~s[n - 1];
	dn = decode(o, enc, out, n, warm, td);
	return same_bytes(what, s, n, out, dn) ? 0 : -1;
}

/* Runs one mode o->runs times cold, then as many warm (once, cold, when
 * only verifying); keeps the best timings. */
static void
run_mode(const struct opts *o, const struct mode *m, const char *file,
    const uint8_t *s, size_t n, struct pc_buf *enc, uint8_t *out,
    struct mres *res)
{
	int runs = o->verify_only ? 1 : o->runs;
	char what[300];

	snprintf(what, sizeof(what), "%s, %s", file, m->name);
	memset(res, 0, sizeof(*res));
	res->ok = true;
	for (int i = 0; i < runs; i++) {
		struct timing te, td;

		if (roundtrip(o, m, what, s, n, false, enc, out, &res->st, &te,
		    &td) != 0) {
			res->ok = false;
			res->enc_bytes = enc->len;
			break;
		}
		best(&res->enc, &te, i);
		best(&res->dec, &td, i);
		res->enc_bytes = enc->len;
	}
	if (res->ok && o->warm && !o->verify_only) {
		malloc_warm(true);
		/* one more run than cold: the first fills the heap */
		for (int i = 0; i <= runs; i++) {
			struct timing te, td;
			struct pc_stats st;

			if (roundtrip(o, m, what, s, n, true, enc, out, &st, &te,
			    &td) != 0) {
				res->ok = false;
				break;
			}
			if (i > 0) {
				best(&res->wenc, &te, i - 1);
				best(&res->wdec, &td, i - 1);
			}
		}
		malloc_warm(false);
	}
	if (res->ok && o->profile != 0) {
		/* only the one phase, warm, for perf; the round trip above
		 * checked the bytes */
		struct timing t, bt;
		struct pc_stats st;

		memset(&bt, 0, sizeof(bt));
		malloc_warm(true);
		for (int i = 0; i < o->profile_n; i++) {
			if (o->profile == 'e' ?
			    encode(o, m, s, n, true, enc, &st, &t) != 0 :
			    decode(o, enc, out, n, true, &t) < 0) {
				res->ok = false;
				break;
			}
			best(&bt, &t, i);
		}
		malloc_warm(false);
		printf("%s: %s x %d warm, best %.0f MB/s cpu\n", what,
		    o->profile == 'e' ? "encode" : "decode", o->profile_n,
		    speed(n, bt.cpu));
	}
	if (o->verify_only)
		printf("%s %s: %s (%zu -> %llu bytes)\n", res->ok ? "ok  " :
		    "FAIL", what, res->ok ? "round trip exact" : "MISMATCH", n,
		    (unsigned long long)res->enc_bytes);
}

/* ---- references ----------------------------------------------------------- */

static int
ref_zstd(const struct opts *o, int level, const uint8_t *s, size_t n,
    uint8_t *cbuf, size_t ccap, uint8_t *out, struct rres *r)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	int rc = 0;

	if (cc == NULL || dc == NULL) {
		rc = -1;
		goto done;
	}
	for (int i = 0; i < o->runs; i++) {
		struct clk k;
		struct timing t;
		size_t c, d;

		clk_start(&k);
		c = ZSTD_compressCCtx(cc, cbuf, ccap, s, n, level);
		t = clk_stop(&k);
		if (ZSTD_isError(c)) {
			fprintf(stderr, "b_codec: zstd: %s\n",
			    ZSTD_getErrorName(c));
			rc = -1;
			goto done;
		}
		best(&r->comp, &t, i);
		r->size = c;
		clk_start(&k);
		d = ZSTD_decompressDCtx(dc, out, n, cbuf, c);
		t = clk_stop(&k);
		if (ZSTD_isError(d) || !same_bytes("zstd reference", s, n, out,
		    (long long)d)) {
			rc = -1;
			goto done;
		}
		best(&r->decomp, &t, i);
	}
done:
	ZSTD_freeCCtx(cc);
	ZSTD_freeDCtx(dc);
	return rc;
}

static int
ref_lz4(const struct opts *o, const uint8_t *s, size_t n, uint8_t *cbuf,
    size_t ccap, uint8_t *out, struct rres *r)
{
	for (int i = 0; i < o->runs; i++) {
		struct clk k;
		struct timing t;
		size_t off = 0, w = 0, at = 0;

		/* each block: be32 compressed length, then the block */
		clk_start(&k);
		for (off = 0; off < n; off += LZ4_REF_BLOCK) {
			int bn = (int)(n - off < LZ4_REF_BLOCK ? n - off :
			    LZ4_REF_BLOCK);
			int c = LZ4_compress_default((const char *)s + off,
			    (char *)cbuf + w + 4, bn,
			    (int)(ccap - w - 4 > INT32_MAX ? INT32_MAX :
			    ccap - w - 4));

			if (c <= 0)
				return -1;
			memcpy(cbuf + w, &c, 4);
			w += 4 + (size_t)c;
		}
		t = clk_stop(&k);
		best(&r->comp, &t, i);
		r->size = w;
		clk_start(&k);
		for (off = 0, at = 0; at < w;) {
			int c;
			int d;

			memcpy(&c, cbuf + at, 4);
			d = LZ4_decompress_safe((const char *)cbuf + at + 4,
			    (char *)out + off, c, (int)(n - off < LZ4_REF_BLOCK ?
			    n - off : LZ4_REF_BLOCK));
			if (d < 0)
				return -1;
			at += 4 + (size_t)c;
			off += (size_t)d;
		}
		t = clk_stop(&k);
		if (!same_bytes("lz4 reference", s, n, out, (long long)off))
			return -1;
		best(&r->decomp, &t, i);
	}
	return 0;
}

/* ---- output --------------------------------------------------------------- */

static const char *
pass(bool ok)
{
	return ok ? "PASS" : "**FAIL**";
}

/* One speed target row; returns 1 if missed (judged on the cold figure,
 * what a migration pays), else 0. */
static int
target_speed(const struct opts *o, const char *name, uint64_t n,
    const struct timing *cold, const struct timing *warm, double need,
    const char *why)
{
	double c = speed(n, cold->cpu), w = speed(n, warm->cpu);

	printf("| %s | %.0f", name, c);
	if (o->warm)
		printf(" (%.0f)", w);
	printf(" | >= %.0f%s%s%s | %s", need, why ? " (" : "", why ? why : "",
	    why ? ")" : "", pass(c >= need));
	if (o->warm)
		printf(" (warm: %s)", w >= need ? "PASS" : "FAIL");
	printf(" |\n");
	return c < need;
}

/* Returns the number of targets missed. */
static int
report(const struct opts *o, const char *file, size_t n,
    const struct mres *mr, const struct rres *rr, int nref)
{
	const struct rres *z1 = NULL, *z3 = NULL;
	int missed = 0;

	for (int i = 0; i < nref; i++) {
		if (strcmp(rr[i].name, "zstd -1") == 0)
			z1 = &rr[i];
		else if (strcmp(rr[i].name, "zstd -3") == 0)
			z3 = &rr[i];
	}
	printf("\n### %s: %.1f MB\n\n", file, (double)n / MB);
	printf("| mode | enc MB/s cpu | enc warm | enc wall | dec MB/s cpu | "
	    "dec warm | dec wall | size MB | ratio | / zstd -3 | blocks | "
	    "enc faults | round trip |\n");
	printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
	for (size_t i = 0; i < NMODES; i++) {
		const struct mres *r = &mr[i];

		if (!o->modes[i])
			continue;
		if (!r->ok) {
			printf("| pc %s | | | | | | | | | | | | **MISMATCH** |\n",
			    all_modes[i].name);
			continue;
		}
		printf("| pc %s | %.0f | ", all_modes[i].name,
		    speed(n, r->enc.cpu));
		if (o->warm)
			printf("%.0f", speed(n, r->wenc.cpu));
		printf(" | %.0f | %.0f | ", speed(n, r->enc.wall),
		    speed(n, r->dec.cpu));
		if (o->warm)
			printf("%.0f", speed(n, r->wdec.cpu));
		printf(" | %.0f | %.2f | %.4f | ", speed(n, r->dec.wall),
		    (double)r->enc_bytes / MB, (double)r->enc_bytes / (double)n);
		if (z3 != NULL)
			printf("%.3f", (double)r->enc_bytes / (double)z3->size);
		printf(" | %llu | %ld | exact |\n",
		    (unsigned long long)r->st.blocks, r->enc.minflt);
	}
	for (int i = 0; i < nref; i++) {
		const struct rres *r = &rr[i];

		printf("| %s (ref) | %.0f | | %.0f | %.0f | | %.0f | %.2f | "
		    "%.4f | ", r->name, speed(n, r->comp.cpu),
		    speed(n, r->comp.wall), speed(n, r->decomp.cpu),
		    speed(n, r->decomp.wall), (double)r->size / MB,
		    (double)r->size / (double)n);
		if (z3 != NULL)
			printf("%.3f", (double)r->size / (double)z3->size);
		printf(" | | | exact |\n");
	}

	printf("\nPages by class (the parser's page records and QEMU's zero "
	    "records; percent of all):\n\n| mode |");
	for (int c = 0; c < PC_NCLASS; c++)
		printf(" %s |", pc_class_name((enum pc_class)c));
	printf(" pages | parser |\n|---|");
	for (int c = 0; c < PC_NCLASS; c++)
		printf("--:|");
	printf("--:|---|\n");
	for (size_t i = 0; i < NMODES; i++) {
		const struct pc_stats *cs = &mr[i].st;
		uint64_t tot = 0;

		if (!o->modes[i] || !mr[i].ok)
			continue;
		for (int c = 0; c < PC_NCLASS; c++)
			tot += cs->pages[c];
		printf("| pc %s |", all_modes[i].name);
		for (int c = 0; c < PC_NCLASS; c++)
			printf(" %llu (%.1f %%) |", (unsigned long long)cs->pages[c],
			    tot ? 100.0 * (double)cs->pages[c] / (double)tot : 0);
		printf(" %llu | %s%s |\n", (unsigned long long)tot,
		    cs->opaque ? "opaque from: " : "followed to the end",
		    cs->opaque ? cs->opaque_why : "");
	}

	printf("\n| target | measured cold%s | required | result |\n",
	    o->warm ? " (warm)" : "");
	printf("|---|--:|--:|---|\n");
	if (o->modes[0] && mr[0].ok) {
		const struct mres *r = &mr[0];

		missed += target_speed(o, "lz4: encoder MB/s per core", n,
		    &r->enc, &r->wenc, LZ4_TARGET_ENC, NULL);
		missed += target_speed(o, "lz4: decoder MB/s per core", n,
		    &r->dec, &r->wdec, LZ4_TARGET_DEC, NULL);
	}
	if (o->modes[1] && mr[1].ok && z1 != NULL) {
		const struct mres *r = &mr[1];
		double ze = speed(n, z1->comp.cpu), zd = speed(n, z1->decomp.cpu);
		char why[64];

		snprintf(why, sizeof(why), "80 %% of zstd -1's %.0f", ze);
		missed += target_speed(o, "zstd1: encoder MB/s per core", n,
		    &r->enc, &r->wenc, ZSTD_TARGET_FRAC * ze, why);
		snprintf(why, sizeof(why), "80 %% of zstd -1's %.0f", zd);
		missed += target_speed(o, "zstd1: decoder MB/s per core", n,
		    &r->dec, &r->wdec, ZSTD_TARGET_FRAC * zd, why);
	}
	if (z3 != NULL) {
		for (size_t i = 0; i < NMODES; i++) {
			double lim = SIZE_TARGET_FRAC * (double)z3->size;

			if (!o->modes[i] || !mr[i].ok)
				continue;
			printf("| %s: encoded MB | %.2f (%.3f x zstd -3) | <= "
			    "%.2f (0.7 x zstd -3's %.2f) | %s |\n",
			    all_modes[i].name, (double)mr[i].enc_bytes / MB,
			    (double)mr[i].enc_bytes / (double)z3->size, lim / MB,
			    (double)z3->size / MB,
			    pass((double)mr[i].enc_bytes <= lim));
			missed += (double)mr[i].enc_bytes > lim;
		}
	}
	return missed;
}

/* ---- main ------------------------------------------------------------------- */

static int
parse_size(const char *s, uint64_t *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': x <<= 10; end++; break;
	case 'm': case 'M': x <<= 20; end++; break;
	case 'g': case 'G': x <<= 30; end++; break;
	default: break;
	}
	if (*end != '\0')
		return -1;
	*v = x;
	return 0;
}

static int
parse_modes(const char *s, bool *modes)
{
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	memset(modes, 0, NMODES * sizeof(*modes));
	for (char *t = strtok_r(buf, ",", &save); t != NULL;
	    t = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < NMODES; i++)
			if (strcmp(t, all_modes[i].name) == 0)
				break;
		if (i == NMODES)
			return -1;
		modes[i] = true;
	}
	return 0;
}

static _Noreturn void
usage(void)
{
	fprintf(stderr,
	    "usage: b_codec [--verify] [--modes lz4,zstd1,zstd3,none] "
	    "[--runs N]\n"
	    "               [--chunk BYTES] [--no-flush] [--xbzrle-cache B] "
	    "[--dedup-cache B]\n"
	    "               [--no-ref] [--no-warm] [--profile enc|dec N] "
	    "FILE...\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct opts o = {
		.runs = 3, .chunk = 256u << 10, .flush = true,
		.xbz = 64u << 20, .dedup = 64u << 20, .ref = true, .warm = true,
	};
	int i, failed = 0, missed = 0, nfiles = 0;

	for (size_t m = 0; m < NMODES; m++)
		o.modes[m] = true;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		uint64_t v;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		} else if (strcmp(a, "--verify") == 0) {
			o.verify_only = true;
		} else if (strcmp(a, "--no-flush") == 0) {
			o.flush = false;
		} else if (strcmp(a, "--no-ref") == 0) {
			o.ref = false;
		} else if (strcmp(a, "--no-warm") == 0) {
			o.warm = false;
		} else if (i + 1 >= argc) {
			usage();
		} else if (strcmp(a, "--modes") == 0) {
			if (parse_modes(argv[++i], o.modes) != 0)
				usage();
		} else if (strcmp(a, "--profile") == 0) {
			const char *ph = argv[++i];

			if (i + 1 >= argc || (strcmp(ph, "enc") != 0 &&
			    strcmp(ph, "dec") != 0) ||
			    parse_size(argv[++i], &v) != 0 || v < 1 ||
			    v > 1000)
				usage();
			o.profile = ph[0];
			o.profile_n = (int)v;
			o.verify_only = true;
		} else if (strcmp(a, "--runs") == 0) {
			if (parse_size(argv[++i], &v) != 0 || v < 1 || v > 100)
				usage();
			o.runs = (int)v;
		} else if (strcmp(a, "--chunk") == 0) {
			if (parse_size(argv[++i], &v) != 0 || v < 1 ||
			    v > (1u << 30))
				usage();
			o.chunk = (size_t)v;
		} else if (strcmp(a, "--xbzrle-cache") == 0) {
			if (parse_size(argv[++i], &o.xbz) != 0)
				usage();
		} else if (strcmp(a, "--dedup-cache") == 0) {
			if (parse_size(argv[++i], &o.dedup) != 0)
				usage();
		} else {
			usage();
		}
	}
	if (i >= argc)
		usage();
	for (int j = i; j < argc; j++) {
		struct stat sb;

		errno = 0;
		if (stat(argv[j], &sb) != 0 || !S_ISREG(sb.st_mode) ||
		    sb.st_size == 0) {
			fprintf(stderr, "b_codec: %s: %s\n", argv[j],
			    errno ? strerror(errno) : "not a non-empty file");
			return 2;
		}
	}

	if (!o.verify_only) {
		printf("## Page codec on captured migration streams\n\n");
		printf("Encoder fed %zu-byte chunks%s; caches: xbzrle %llu MiB, "
		    "dedup %llu MiB; best of %d runs; MB = 10^6 bytes; speeds "
		    "in raw stream bytes per second of one core's CPU time "
		    "(CLOCK_THREAD_CPUTIME_ID), cold (fresh contexts, as per "
		    "migration) and warm (caches already mapped, setup not "
		    "timed), wall clock of the cold runs next to them; \"enc "
		    "faults\": minor page faults during the best cold encoder "
		    "run; "
		    "liblz4 %s, libzstd %s.\n", o.chunk,
		    o.flush ? ", pc_enc_flush after each" : ", no flush",
		    (unsigned long long)(o.xbz >> 20),
		    (unsigned long long)(o.dedup >> 20), o.runs,
		    LZ4_versionString(), ZSTD_versionString());
	}
	for (; i < argc; i++) {
		const char *file = argv[i], *base = strrchr(file, '/');
		size_t n = 0, ccap;
		uint8_t *s = load_file(file, &n), *out = NULL, *cbuf = NULL;
		struct pc_buf enc;
		struct mres mr[NMODES];
		struct rres rr[3];
		int nref = 0;

		base = base ? base + 1 : file;
		if (s == NULL)
			return 2;
		nfiles++;
		pc_buf_init(&enc);
		ccap = ZSTD_compressBound(n) + (size_t)LZ4_compressBound(
		    LZ4_REF_BLOCK) * (n / LZ4_REF_BLOCK + 1);
		/* the encoded stream: "none" stays under n + small overheads;
		 * reserved and touched once, reused by every run */
		if (pc_buf_reserve(&enc, n + n / 8 + (16u << 20)) == NULL ||
		    (out = alloc_touched(n)) == NULL) {
			fprintf(stderr, "b_codec: out of memory\n");
			return 2;
		}
		memset(enc.p, 0, enc.cap);
		memset(mr, 0, sizeof(mr));
		for (size_t m = 0; m < NMODES; m++) {
			if (!o.modes[m])
				continue;
			run_mode(&o, &all_modes[m], base, s, n, &enc, out, &mr[m]);
			if (!mr[m].ok)
				failed++;
			if (!o.verify_only)
				fprintf(stderr, "b_codec: %s %s done\n", base,
				    all_modes[m].name);
		}
		pc_buf_cleanup(&enc);
		if (!o.verify_only && o.ref) {
			static const struct { const char *name; int level; }
			    refs[] = { { "zstd -1", 1 }, { "zstd -3", 3 },
			    { "lz4", 0 } };

			if ((cbuf = alloc_touched(ccap)) == NULL) {
				fprintf(stderr, "b_codec: out of memory\n");
				return 2;
			}
			for (size_t r = 0; r < 3; r++) {
				struct rres *x = &rr[nref];
				int rc;

				memset(x, 0, sizeof(*x));
				x->name = refs[r].name;
				rc = refs[r].level > 0 ? ref_zstd(&o,
				    refs[r].level, s, n, cbuf, ccap, out, x) :
				    ref_lz4(&o, s, n, cbuf, ccap, out, x);
				if (rc != 0) {
					fprintf(stderr, "b_codec: %s reference "
					    "failed\n", x->name);
					failed++;
					continue;
				}
				nref++;
			}
			free(cbuf);
		}
		if (!o.verify_only)
			missed += report(&o, base, n, mr, rr, nref);
		free(out);
		free(s);
	}
	if (o.verify_only)
		printf("%s: %d file(s), %d mismatch(es)\n", failed ? "FAIL" :
		    "ok", nfiles, failed);
	else
		printf("\n%d target(s) missed; round trips: %s.\n", missed,
		    failed ? "**MISMATCH**" : "all exact");
	return failed ? 1 : 0;
}

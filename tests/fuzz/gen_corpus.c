/*
 * gen_corpus.c - writes the seed corpora of the page codec's fuzz targets:
 *
 *   fz_gen_corpus corpus/pc_parse corpus/pc_dec
 *
 * pc_parse: a configuration byte (see fz_pc_parse.c), then a QEMU-format
 * stream: whole streams of a few pages from tests/unit/pc_gen.h, the same
 * cut short at awkward places, and small hand-built streams that each
 * take the parser down one path (every top-level element and ram record
 * type, each reason to give up). pc_dec: the encoder's output for those
 * streams with each algorithm, in several blocks, whole and cut short.
 * Every file is under 64 KiB; the directories must exist. Seeds the
 * fuzzer found later are merged in beside these (see README.md).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"
#include "pc.h"
#include "pc_gen.h"

#define FILE_MAX (64u << 10)

static const char *parse_dir, *dec_dir;
static size_t nfiles, nbytes;
static unsigned nseeds;

static void
write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[4096];
	FILE *f;

	if (n >= FILE_MAX) {
		fprintf(stderr, "gen_corpus: %s: %zu bytes, too big\n", name,
		    n);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL ||
	    (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	nfiles++;
	nbytes += n;
}

/* Encodes s as the gateway would (chunks of chunk bytes, a flush every
 * flush chunks, 0: never) and checks it decodes back. */
static void
encode(const struct pc_buf *s, enum pc_algo algo, uint64_t xbz, uint64_t dd,
    size_t chunk, unsigned flush, struct pc_buf *out)
{
	struct pc_params p = { algo, 1, xbz, dd, true };
	struct pc_dec_limits lim = { xbz, dd };
	struct pc_enc *e = pc_enc_new(&p);
	struct pc_dec *d = pc_dec_new(&lim);
	struct pc_buf dec;
	char err[256];
	unsigned i = 0;

	FZ_CHECK(e != NULL && d != NULL);
	pc_buf_init(out);
	pc_buf_init(&dec);
	for (size_t off = 0; off < s->len; off += chunk, i++) {
		size_t k = s->len - off < chunk ? s->len - off : chunk;

		FZ_CHECK(pc_enc_feed(e, s->p + off, k, out) == 0);
		if (flush > 0 && i % flush == flush - 1)
			FZ_CHECK(pc_enc_flush(e, out) == 0);
	}
	FZ_CHECK(pc_enc_finish(e, out) == 0);
	if (pc_dec_all(d, out->p, out->len, &dec, err, sizeof(err)) != 0) {
		fprintf(stderr, "gen_corpus: decoding failed: %s\n", err);
		exit(1);
	}
	FZ_CHECK(pc_dec_done(d) && dec.len == s->len);
	FZ_CHECK(s->len == 0 || memcmp(dec.p, s->p, s->len) == 0);
	pc_enc_free(e);
	pc_dec_free(d);
	pc_buf_cleanup(&dec);
}

/* A pc_parse seed; the configuration byte goes round the algorithms and
 * cache sizes, one in eight with the parser off. */
static void
parse_seed(const char *name, const struct pc_buf *s)
{
	uint8_t *p = malloc(s->len + 1);
	uint8_t cfg = (uint8_t)(nseeds % 12);

	FZ_CHECK(p != NULL);
	if (nseeds % 8 == 7)
		cfg = 7 * 12 + (uint8_t)(nseeds % 3);
	nseeds++;
	p[0] = cfg;
	if (s->len > 0)
		memcpy(p + 1, s->p, s->len);
	write_file(parse_dir, name, p, s->len + 1);
	free(p);
}

/* pc_dec seeds: s encoded with each algorithm; with cut, also cut short
 * at a few places (inside the preface, a block header, a payload, END). */
static void
dec_seeds(const char *name, const struct pc_buf *s, uint64_t xbz,
    uint64_t dd, unsigned flush, bool cut)
{
	static const enum pc_algo algos[] = {
		PC_ALGO_NONE, PC_ALGO_LZ4, PC_ALGO_ZSTD,
	};
	char fn[256];

	for (int i = 0; i < 3; i++) {
		struct pc_buf e;

		encode(s, algos[i], xbz, dd, 4096, flush, &e);
		snprintf(fn, sizeof(fn), "%s.%s", name, pc_algo_name(algos[i]));
		write_file(dec_dir, fn, e.p, e.len);
		if (cut && e.len > 100) {
			static const size_t at[] = { 9, 30, 70 };

			for (int j = 0; j < 3; j++) {
				snprintf(fn, sizeof(fn), "%s.%s.cut%zu", name,
				    pc_algo_name(algos[i]), at[j]);
				write_file(dec_dir, fn, e.p, at[j]);
			}
			snprintf(fn, sizeof(fn), "%s.%s.noend", name,
			    pc_algo_name(algos[i]));
			write_file(dec_dir, fn, e.p, e.len - 48);
			snprintf(fn, sizeof(fn), "%s.%s.halfend", name,
			    pc_algo_name(algos[i]));
			write_file(dec_dir, fn, e.p, e.len - 20);
		}
		pc_buf_cleanup(&e);
	}
}

/* The beginning most hand-built streams share: header, configuration, a
 * ram START listing 8 pages, a PART. */
static void
prologue(struct gen *g)
{
	gen_hdr(g);
	gen_config(g);
	gen_ram_start(g, 8);
	gen_section(g, 0x02, 2);
}

static void
seed_done(const char *name, struct gen *g, bool dec)
{
	parse_seed(name, &g->b);
	if (dec)
		dec_seeds(name, &g->b, 64u << 10, 64u << 10, 2, false);
	pc_buf_cleanup(&g->b);
	memset(g, 0, sizeof(*g));
	g->rng = 77;
}

static void
hand_built(void)
{
	struct gen g = { .rng = 77 };
	uint8_t uuid[16] = { 0x12, 0x34 }, pg[PC_PAGE];

	seed_done("empty", &g, true);

	gen_hdr(&g);
	seed_done("hdr", &g, false);

	for (int i = 0; i < 600; i++)
		gen_u8(&g, (uint8_t)gen_rand(&g));
	seed_done("noise", &g, true);

	gen_put(&g, "QEVM\0\0\0\x02", 8);
	seed_done("hdr-version2", &g, false);

	/* every ram record type, over three sections */
	prologue(&g);
	gen_rec_page(&g, 0, "pc.ram", 0, 0);
	gen_rec_zero(&g, 1, NULL);
	gen_rec_page(&g, 2, NULL, 2, 0);
	gen_rec_xbzrle(&g, 3, NULL);
	gen_rec_compress(&g, 4, NULL, 300);
	gen_rec_page(&g, 5, NULL, 0, 0);            /* same content as page 0 */
	gen_be64(&g, 0x200);                    /* MULTIFD_FLUSH */
	gen_rec_page(&g, 0, "pc.bios", 999, 0);
	gen_rec_zero(&g, 1, NULL);
	gen_footer(&g, 2);
	gen_section(&g, 0x02, 2);
	gen_rec_page(&g, 0, "pc.ram", 0, 1);        /* changed: a delta */
	gen_rec_xbzrle(&g, 2, NULL);                /* held: dropped */
	gen_rec_page(&g, 2, NULL, 2, 3);
	gen_rec_zero(&g, 5, NULL);
	gen_footer(&g, 2);
	gen_section(&g, 0x03, 2);
	gen_rec_page(&g, 6, "pc.ram", 6, 0);
	gen_rec_page(&g, 7, NULL, 0, 1);            /* same as page 0 now */
	gen_footer(&g, 2);
	gen_device_state(&g, 40);
	seed_done("ram-records", &g, true);

	/* a page rewritten: too much for a delta, then a delta with runs
	 * and skips longer than a byte's varint */
	prologue(&g);
	gen_page(pg, 3, 0);
	gen_rec_data(&g, 3, "pc.ram", pg);
	for (size_t i = 0; i < PC_PAGE; i += 2)
		pg[i] ^= 0x5A;
	gen_rec_data(&g, 3, NULL, pg);
	memset(pg + 1000, 0xEE, 300);
	memset(pg + 3000, 0x11, 9);
	gen_rec_data(&g, 3, NULL, pg);
	gen_footer(&g, 2);
	gen_device_state(&g, 40);
	seed_done("ram-rewrites", &g, true);

	/* configuration subsections */
	gen_hdr(&g);
	gen_config(&g);
	gen_subsection(&g, "configuration/uuid");
	gen_put(&g, uuid, 16);
	gen_ram_start(&g, 4);
	gen_section(&g, 0x02, 2);
	gen_rec_page(&g, 1, "pc.ram", 1, 0);
	gen_footer(&g, 2);
	gen_u8(&g, 0x00);
	seed_done("cfg-uuid", &g, true);

	gen_hdr(&g);
	gen_config(&g);
	gen_subsection(&g, "configuration/target-page-bits");
	gen_be32(&g, 12);
	seed_done("cfg-page-bits", &g, false);

	gen_hdr(&g);
	gen_config(&g);
	gen_subsection(&g, "configuration/capabilities");
	gen_be32(&g, 1);
	gen_str(&g, "x-ignore-shared");
	seed_done("cfg-capabilities", &g, false);

	/* commands */
	gen_hdr(&g);
	gen_config(&g);
	gen_command(&g, 1, NULL, 0);                        /* OPEN_RETURN_PATH */
	gen_command(&g, 2, "\x00\x00\x00\x01", 4);          /* PING */
	gen_command(&g, 0x20, "abc", 3);                    /* unknown */
	gen_ram_start(&g, 2);
	gen_section(&g, 0x02, 2);
	gen_rec_page(&g, 1, "pc.ram", 1, 0);
	gen_footer(&g, 2);
	seed_done("commands", &g, true);

	gen_hdr(&g);
	gen_config(&g);
	gen_command(&g, 3, "\0\0\0\0\0\0\x10\0\0\0\0\0\0\0\x10\0", 16);
	gen_ram_start(&g, 2);
	seed_done("postcopy-advise", &g, false);

	gen_hdr(&g);
	gen_config(&g);
	gen_command(&g, 7, "\0\0\0\x10", 4);
	seed_done("postcopy-package", &g, false);

	/* ways the parser gives up on a ram section */
	prologue(&g);
	gen_rec_zero(&g, 0, NULL);
	seed_done("continue-first", &g, false);

	prologue(&g);
	gen_rec(&g, 0, 0x80, "pc.ram");             /* HOOK */
	seed_done("ram-unknown-record", &g, false);

	prologue(&g);
	gen_rec(&g, 0, 0x30, NULL);                 /* EOS | CONTINUE */
	seed_done("eos-continue", &g, false);

	prologue(&g);
	gen_rec(&g, 0, 0x40, "pc.ram");
	gen_put(&g, "\x02\x00\x01\x00", 4);
	seed_done("xbzrle-bad", &g, false);

	prologue(&g);
	gen_rec(&g, 0, 0x100, "pc.ram");
	gen_be32(&g, 3 * PC_PAGE);
	seed_done("compress-bad", &g, false);

	prologue(&g);
	for (int i = 0; i < 66; i++) {
		char name[16];

		snprintf(name, sizeof(name), "block%d", i);
		gen_rec_zero(&g, 0, name);
	}
	seed_done("many-blocks", &g, false);

	gen_hdr(&g);
	gen_config(&g);
	gen_start(&g, 2, "ram", 4);
	gen_be64(&g, 2 * PC_PAGE | 0x04);
	gen_str(&g, "pc.ram");
	gen_be64(&g, 3 * PC_PAGE);              /* more than announced */
	seed_done("block-list-bad", &g, false);

	prologue(&g);
	gen_be64(&g, 0x10);
	gen_u8(&g, 0x7E);
	gen_be32(&g, 3);                        /* the wrong section */
	seed_done("footer-bad", &g, false);

	gen_hdr(&g);
	gen_config(&g);
	gen_start(&g, 3, "timer", 1);
	seed_done("section-other", &g, false);

	gen_hdr(&g);
	gen_config(&g);
	gen_ram_start(&g, 2);
	gen_section(&g, 0x02, 9);
	seed_done("part-other-sid", &g, false);

	gen_hdr(&g);
	gen_u8(&g, 0x09);
	seed_done("element-unknown", &g, false);
}

static void
generated(void)
{
	static const struct {
		const char *name;
		uint32_t npages;
		int rounds;
		uint32_t seed;
	} s[] = {
		{ "gen-2p-3r", 2, 3, 1 },
		{ "gen-4p-1r", 4, 1, 42 },
		{ "gen-6p-2r", 6, 2, 7 },
		{ "gen-9p-1r", 9, 1, 11 },
	};
	/* cut: inside the header, the configuration, the START, the block
	 * list, a record header, the first page; and near the end */
	static const size_t cuts[] = { 5, 14, 37, 60, 110, 2000 };
	char fn[64];

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		struct gen g = { 0 };

		gen_stream(&g, s[i].npages, s[i].rounds, s[i].seed);
		parse_seed(s[i].name, &g.b);
		dec_seeds(s[i].name, &g.b, 64u << 10, 64u << 10, 2, i == 1);
		if (i == 2)
			dec_seeds("gen-6p-2r-tiny", &g.b, 16u << 10, 8u << 10,
			    3, false);
		if (i == 1) {
			struct pc_buf b = g.b;

			for (size_t j = 0; j < sizeof(cuts) / sizeof(cuts[0]);
			    j++) {
				b.len = cuts[j];
				snprintf(fn, sizeof(fn), "%s.cut%zu", s[i].name,
				    cuts[j]);
				parse_seed(fn, &b);
			}
			b.len = g.b.len - 123;
			snprintf(fn, sizeof(fn), "%s.cut-end", s[i].name);
			parse_seed(fn, &b);
		}
		pc_buf_cleanup(&g.b);
	}
}

int
main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s pc_parse-dir pc_dec-dir\n", argv[0]);
		return 2;
	}
	parse_dir = argv[1];
	dec_dir = argv[2];
	hand_built();
	generated();
	printf("gen_corpus: %zu files, %zu bytes\n", nfiles, nbytes);
	return 0;
}

/*
 * pc_gen.h - builds QEMU-format migration streams for the codec's tests
 * and fuzz seeds: header, configuration, commands, a ram START with its
 * block list, PART sections with PAGE, ZERO, XBZRLE and CONTINUE records
 * over several rounds (pages change a few bytes between rounds, some are
 * duplicates), an END, device state, EOF and a JSON description. The
 * layouts follow docs/qemu-migration-format.md, sections 2 and 3.
 */
#ifndef WM_TESTS_PC_GEN_H
#define WM_TESTS_PC_GEN_H

#include <stdint.h>
#include <string.h>

#include "pc.h"

struct gen {
	struct pc_buf b;
	uint32_t rng;
};

static inline uint32_t
gen_rand(struct gen *g)
{
	g->rng = g->rng * 1103515245u + 12345u;
	return g->rng >> 8;
}

static inline void
gen_put(struct gen *g, const void *p, size_t n)
{
	uint8_t *q = pc_buf_reserve(&g->b, n);

	memcpy(q, p, n);
	g->b.len += n;
}

static inline void
gen_u8(struct gen *g, uint8_t v)
{
	gen_put(g, &v, 1);
}

static inline void
gen_be32(struct gen *g, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
		(uint8_t)(v >> 8), (uint8_t)v };

	gen_put(g, b, 4);
}

static inline void
gen_be64(struct gen *g, uint64_t v)
{
	gen_be32(g, (uint32_t)(v >> 32));
	gen_be32(g, (uint32_t)v);
}

static inline void
gen_str(struct gen *g, const char *s)
{
	gen_u8(g, (uint8_t)strlen(s));
	gen_put(g, s, strlen(s));
}

/* Page content: words from a small vocabulary, so it compresses like
 * real memory; version v changes a few bytes. */
static inline void
gen_page(uint8_t *pg, uint32_t page, uint32_t v)
{
	static const char *const words[] = { "kernel ", "page ", "struct ",
		"0x7fff ", "return ", "libc.so ", "\0\0\0\0", "migrate ",
		"\x48\x89\xe5", "\xff\xff\xff\xff" };
	uint32_t x = page * 2654435761u + 1;
	size_t n = 0;

	while (n < PC_PAGE) {
		const char *w;
		size_t k;

		x = x * 1103515245u + 12345u;
		w = words[(x >> 16) % 10];
		k = strlen(w) ? strlen(w) : 4;
		if (k > PC_PAGE - n)
			k = PC_PAGE - n;
		memcpy(pg + n, w, k);
		n += k;
	}
	memcpy(pg + 64, &page, 4);
	for (uint32_t i = 0; i < v; i++) {
		pg[(page * 7 + i * 613) % PC_PAGE] ^= (uint8_t)(i + 1);
		memcpy(pg + 128, &v, 4);
	}
}

/* ---- pieces of QEMU streams ------------------------------------------ */

static inline void
gen_hdr(struct gen *g)
{
	gen_be32(g, 0x5145564D);
	gen_be32(g, 3);
}

static inline void
gen_config(struct gen *g)
{
	gen_u8(g, 0x07);
	gen_be32(g, 10);
	gen_put(g, "pc-q35-7.2", 10);
}

static inline void
gen_command(struct gen *g, uint16_t cmd, const void *data, uint16_t len)
{
	gen_u8(g, 0x08);
	gen_u8(g, (uint8_t)(cmd >> 8));
	gen_u8(g, (uint8_t)cmd);
	gen_u8(g, (uint8_t)(len >> 8));
	gen_u8(g, (uint8_t)len);
	if (len > 0)
		gen_put(g, data, len);
}

static inline void
gen_subsection(struct gen *g, const char *name)
{
	gen_u8(g, 0x05);
	gen_str(g, name);
	gen_be32(g, 1);
}

static inline void
gen_footer(struct gen *g, uint32_t sid)
{
	gen_be64(g, 0x10);              /* EOS */
	gen_u8(g, 0x7E);
	gen_be32(g, sid);
}

static inline void
gen_section(struct gen *g, uint8_t type, uint32_t sid)
{
	gen_u8(g, type);
	gen_be32(g, sid);
}

/* A START section's header: id, name, instance 0, version. */
static inline void
gen_start(struct gen *g, uint32_t sid, const char *idstr, uint32_t version)
{
	gen_section(g, 0x01, sid);
	gen_str(g, idstr);
	gen_be32(g, 0);
	gen_be32(g, version);
}

/* START of "ram" (section 2) with the block list: pc.ram of npages,
 * pc.bios of 16 pages. */
static inline void
gen_ram_start(struct gen *g, uint32_t npages)
{
	gen_start(g, 2, "ram", 4);
	gen_be64(g, ((uint64_t)npages + 16) * PC_PAGE | 0x04);
	gen_str(g, "pc.ram");
	gen_be64(g, (uint64_t)npages * PC_PAGE);
	gen_str(g, "pc.bios");
	gen_be64(g, 16 * PC_PAGE);
	gen_footer(g, 2);
}

/* A ram record's header: flags, and the block name unless NULL
 * (CONTINUE). */
static inline void
gen_rec(struct gen *g, uint32_t page, unsigned flags, const char *block)
{
	gen_be64(g, (uint64_t)page * PC_PAGE | flags | (block ? 0 : 0x20));
	if (block != NULL)
		gen_str(g, block);
}

static inline void
gen_rec_page(struct gen *g, uint32_t page, const char *block, uint32_t content,
    uint32_t v)
{
	uint8_t pg[PC_PAGE];

	gen_rec(g, page, 0x08, block);
	gen_page(pg, content, v);
	gen_put(g, pg, PC_PAGE);
}

static inline void
gen_rec_data(struct gen *g, uint32_t page, const char *block, const uint8_t *pg)
{
	gen_rec(g, page, 0x08, block);
	gen_put(g, pg, PC_PAGE);
}

static inline void
gen_rec_zero(struct gen *g, uint32_t page, const char *block)
{
	gen_rec(g, page, 0x02, block);
	gen_u8(g, 0);
}

static inline void
gen_rec_xbzrle(struct gen *g, uint32_t page, const char *block)
{
	gen_rec(g, page, 0x40, block);
	gen_put(g, "\x01\x00\x07\x10\x05qwert", 10);
}

static inline void
gen_rec_compress(struct gen *g, uint32_t page, const char *block, uint32_t len)
{
	gen_rec(g, page, 0x100, block);
	gen_be32(g, len);
	for (uint32_t i = 0; i < len; i++)
		gen_u8(g, (uint8_t)gen_rand(g));
}

/* A FULL section of n bytes of device state ("timer"), then EOF. */
static inline void
gen_device_state(struct gen *g, int n)
{
	gen_u8(g, 0x04);
	gen_be32(g, 5);
	gen_str(g, "timer");
	gen_be32(g, 0);
	gen_be32(g, 2);
	for (int i = 0; i < n; i++)
		gen_u8(g, (uint8_t)gen_rand(g));
	gen_u8(g, 0x7E);
	gen_be32(g, 5);
	gen_u8(g, 0x00);
}

/* A whole precopy stream over npages of "pc.ram", rounds passes. */
static inline void
gen_stream(struct gen *g, uint32_t npages, int rounds, uint32_t seed)
{
	uint8_t pg[PC_PAGE];
	const char *block = "pc.ram";  /* NULL: CONTINUE */

	g->rng = seed;
	gen_hdr(g);
	gen_config(g);
	gen_command(g, 1, NULL, 0);                     /* OPEN_RETURN_PATH */
	gen_command(g, 2, "\x00\x00\x00\x01", 4);       /* PING 1 */
	gen_ram_start(g, npages);
	for (int r = 0; r <= rounds; r++) {
		uint32_t step = r == 0 ? 1 : 3;

		for (uint32_t base = 0; base < npages; base += 64) {
			gen_section(g, r == rounds ? 0x03 : 0x02, 2);
			if (base == 0 && r == 0) {
				/* a page of the other block */
				gen_rec_page(g, 1, "pc.bios", 999999, 0);
				block = "pc.ram";
			}
			for (uint32_t i = base; i < base + 64 && i < npages;
			    i += step) {
				uint32_t kind = gen_rand(g) % 10;

				if (kind == 0) {
					gen_rec_zero(g, i, block);
				} else if (kind == 1 && r > 0) {
					/* QEMU's own XBZRLE: 5 changed bytes */
					gen_rec_xbzrle(g, i, block);
				} else {
					/* 1 in 10 a duplicate of page 7 */
					if (kind == 3)
						memset(pg, 0, PC_PAGE);
					else
						gen_page(pg, kind == 2 ? 7 : i,
						    kind == 2 ? 0 : (uint32_t)r);
					gen_rec_data(g, i, block, pg);
				}
				block = NULL;
			}
			gen_footer(g, 2);
		}
	}
	/* device state, EOF, description */
	gen_device_state(g, 300);
	gen_u8(g, 0x06);
	gen_be32(g, 40);
	gen_put(g, "{\"page_size\":4096,\"devices\":[]}        ", 40);
}

#endif

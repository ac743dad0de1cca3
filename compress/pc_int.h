/*
 * pc_int.h - what the encoder and the decoder share: the operations inside
 * a block, and the mirrored caches.
 *
 * Operations (before compression; integers little-endian, keys as the
 * zigzag varint of key - (previous key + 1), so runs of pages cost a byte):
 *
 *   0x01 RAW    u32 len, len bytes
 *   0x02 PAGE   key, 4096 bytes
 *   0x03 ZERO   key                      (a PAGE record of zeros)
 *   0x04 REF    key, u32 dedup slot      (content held in that slot)
 *   0x05 DELTA  key, u16 len, len bytes  (runs against the key's cached page)
 *   0x06 DROP   key                      (QEMU sent that page encoded)
 *
 * The caches change only on operations, identically on both sides:
 *   - the page cache (xbzrle-cache) has a power-of-two number of slots; a
 *     key's slot is fixed (hash of the key). PAGE, ZERO, REF and DELTA store
 *     the resulting page and the key in it; DROP empties it if it holds
 *     that key;
 *   - the dedup cache (dedup-cache) is a ring of pages: PAGE and DELTA put
 *     their resulting page in the next slot, overwriting the oldest.
 *
 * A delta is a run of (varint skip, varint n, n bytes): skip bytes stay as
 * they were, then n bytes are replaced. Bytes after the last run stay.
 */
#ifndef WM_COMPRESS_PC_INT_H
#define WM_COMPRESS_PC_INT_H

#include <stdint.h>

#include "pc.h"
#include "wm_util.h"

#define PC_OP_RAW 0x01
#define PC_OP_PAGE 0x02
#define PC_OP_ZERO 0x03
#define PC_OP_REF 0x04
#define PC_OP_DELTA 0x05
#define PC_OP_DROP 0x06

#define PC_VERSION 2
/* A delta longer than this goes as a page: the compressor does better. */
#define PC_DELTA_MAX 2048u
/* A block that saves less than 1/PC_SKIP_GAIN of its size sends the next
 * 1, 2, 4 ... PC_SKIP_MAX blocks uncompressed (pc_enc.c, block_end). */
#define PC_SKIP_GAIN 32u
#define PC_SKIP_MAX 64u

struct pc_cache {
	/* page cache */
	uint32_t nx;            /* slots, power of two, or 0 */
	unsigned xbits;         /* nx = 1 << xbits */
	uint64_t *xtag;         /* key + 1, 0 when empty */
	uint8_t *xpage;
	/* dedup ring */
	uint32_t nd;            /* slots, or 0 */
	uint32_t dhead;         /* next slot to fill */
	uint32_t dfill;         /* slots filled so far (≤ nd) */
	uint8_t *dpage;
};

int pc_cache_init(struct pc_cache *c, uint32_t nx, uint32_t nd);
void pc_cache_cleanup(struct pc_cache *c);
uint64_t pc_cache_bytes(const struct pc_cache *c);

/* Fibonacci hashing: the top bits of the product are the well-mixed ones
 * (the middle bits left half the slots unused for runs of pages). */
static inline uint32_t
pc_xslot(const struct pc_cache *c, uint64_t key)
{
	uint64_t h = key * 0x9E3779B97F4A7C15ull;

	return c->xbits == 0 ? 0 : (uint32_t)(h >> (64 - c->xbits));
}

/* Pages a cache of bytes holds: for the page cache a power of two. */
uint32_t pc_cache_pages(uint64_t bytes, int pow2);

/* Writes the delta from old to new into out (room for cap bytes); returns
 * its length, or -1 if longer than cap. */
long pc_delta_encode(const uint8_t *old, const uint8_t *new_, uint8_t *out,
    size_t cap);
/* Applies len bytes of delta onto page (in place); 0, or -1 if malformed. */
int pc_delta_apply(uint8_t *page, const uint8_t *d, size_t len);

/*
 * zstd's window, log2: as large as the dedup cache (1 MiB to 128 MiB), with
 * long-distance matching from 16 MiB on. Pages the guest holds at many
 * places, not on page boundaries (files in the page cache, copies), are
 * found that way; the dedup cache only finds whole pages.
 */
#define PC_ZSTD_WLOG_MIN 20
#define PC_ZSTD_WLOG_MAX 27
#define PC_ZSTD_WLOG_LDM 24
unsigned pc_zstd_wlog(uint64_t dedup_cache);

/* Copies a page into a cache, past the CPU's caches where it can: the
 * copy is read again, if ever, long after (dst 16-byte aligned). */
void pc_page_store(uint8_t *dst, const uint8_t *src);

void pc_put_le32(uint8_t *p, uint32_t v);
uint32_t pc_get_le32(const uint8_t *p);

#endif

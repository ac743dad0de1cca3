/*
 * pc.h - the page codec: what the tunnel does to a QEMU migration stream
 * between the two gateways.
 *
 * The encoder (source gateway) parses the byte stream QEMU writes (grammar
 * in docs/qemu-migration-format.md) and turns every RAM page into the
 * cheapest of: a zero page, a reference to a page with the same content the
 * decoder already holds, a delta against the previous version of the same
 * page that the decoder holds, or the page itself. Everything else (headers,
 * record headers, device state, whatever the parser cannot follow) travels
 * as raw bytes. The resulting operations are compressed in blocks with LZ4
 * or zstd. The decoder (destination gateway) rebuilds the exact bytes.
 *
 * Both sides keep mirrored, bounded caches: every cache update depends only
 * on the operations in the stream, in stream order, so the encoder's model
 * of the decoder's caches is exact. A content reference is trusted only
 * after the encoder compared the bytes themselves (the fast hash merely
 * finds the candidate), so a guest crafting colliding pages gains nothing.
 *
 * Integrity: each block carries an XXH3-64 of the bytes it decodes to,
 * seeded with its number, checked before any of them is released; the
 * stream ends with an END record holding its length and an XXH3-128 digest
 * chained over every block's length and checksum (so over every byte).
 * Anything that does not check out is an error, and the owner cuts the
 * destination connection (design invariant 2).
 *
 * The encoded stream: a 16-byte preface, then blocks, then END:
 *
 *   preface  "WMPC" u8 version(2) u8 algo u8 zstd_wlog u8 0 be32 xbz_pages
 *            be32 dedup_pages
 *   block    u8 'B' u8 algo u16 0 be32 ops_len be32 payload_len be32 out_len
 *            be64 sum, then payload_len bytes (the operations, compressed)
 *   end      u8 'E' u8 0 u16 0 be32 0 be32 24 be32 0 be64 0, then
 *            be64 total length, 16 bytes XXH3-128 over the blocks' be32
 *            out_len and be64 sum, in order
 *
 * compress/ includes neither libevent nor OpenSSL: the gateway moves bytes
 * in and out, the codec only transforms them.
 */
#ifndef WM_COMPRESS_PC_H
#define WM_COMPRESS_PC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_PAGE 4096u
#define PC_PREFACE 16u
#define PC_BLOCK_HDR 24u
/* Largest block the decoder accepts: operations before compression and
 * bytes after decoding. The encoder stays well under both. */
#define PC_OPS_MAX (1u << 20)
#define PC_OUT_MAX (2u << 20)

enum pc_algo {
	PC_ALGO_NONE = 0,
	PC_ALGO_LZ4 = 1,
	PC_ALGO_ZSTD = 2,
};

/* Page classes, for the statistics. */
enum pc_class {
	PC_ZERO = 0,    /* all-zero page (QEMU's ZERO records included) */
	PC_DEDUP,       /* same content as a page the decoder holds */
	PC_DELTA,       /* delta against the page's previous version */
	PC_LITERAL,     /* the page itself */
	PC_OPAQUE,      /* pages QEMU sent compressed or as XBZRLE itself */
	PC_NCLASS
};

struct pc_params {
	enum pc_algo algo;
	int level;              /* zstd level (1..19); ignored for LZ4 */
	uint64_t xbzrle_cache;  /* bytes of the per-address page cache */
	uint64_t dedup_cache;   /* bytes of the content-addressed cache */
	bool parse;             /* follow QEMU's format (false: all raw) */
};

struct pc_stats {
	uint64_t pages[PC_NCLASS];
	uint64_t raw_bytes;      /* bytes QEMU wrote */
	uint64_t enc_bytes;      /* encoded bytes (preface, blocks, END) */
	uint64_t blocks;
	uint64_t blocks_skipped; /* sent uncompressed without trying: the
	                            blocks before would not compress */
	bool opaque;             /* the parser gave up on this stream */
	char opaque_why[96];     /* and why */
};

/* ---- a growable byte buffer (caller-owned) ---------------------------- */

struct pc_buf {
	uint8_t *p;
	size_t len, cap;
};

void pc_buf_init(struct pc_buf *b);
void pc_buf_cleanup(struct pc_buf *b);
/* Makes room for n more bytes; returns a pointer to them, or NULL. */
uint8_t *pc_buf_reserve(struct pc_buf *b, size_t n);

/* ---- encoder ----------------------------------------------------------- */

struct pc_enc;

/* Returns a new encoder, or NULL on allocation failure. Its preface goes
 * out with the first block (or with END, for an empty stream). */
struct pc_enc *pc_enc_new(const struct pc_params *p);
void pc_enc_free(struct pc_enc *e);
/*
 * Consumes all n bytes. Complete blocks are appended to out; the tail of a
 * record not yet complete (at most one page and its header) is held.
 * Returns 0, or -1 on allocation failure (the stream must then be reset).
 */
int pc_enc_feed(struct pc_enc *e, const uint8_t *p, size_t n,
    struct pc_buf *out);
/* Ends the current block now (the source went quiet): returns 0 or -1. */
int pc_enc_flush(struct pc_enc *e, struct pc_buf *out);
/* The source closed: flushes everything and appends END. 0 or -1. */
int pc_enc_finish(struct pc_enc *e, struct pc_buf *out);
void pc_enc_get_stats(const struct pc_enc *e, struct pc_stats *st);
/* Bytes the encoder has allocated now (caches, buffers, contexts). */
uint64_t pc_enc_memory(const struct pc_enc *e);

/* ---- decoder ----------------------------------------------------------- */

struct pc_dec;

/* Limits a decoder accepts from a preface: larger caches are refused. */
struct pc_dec_limits {
	uint64_t xbzrle_cache;
	uint64_t dedup_cache;
};

struct pc_dec *pc_dec_new(const struct pc_dec_limits *lim);
void pc_dec_free(struct pc_dec *d);
/*
 * Looks at the head of the encoded stream (avail bytes at p). Returns:
 *   >0  the length of the next unit (preface, block or END), and in
 *       *out_len how many decoded bytes it yields; pc_dec_unit() takes it
 *       once that many bytes are available, contiguous;
 *    0  more bytes are needed to tell;
 *   -1  malformed (message in err).
 */
long pc_dec_next(struct pc_dec *d, const uint8_t *p, size_t avail,
    size_t *out_len, char *err, size_t errlen);
/*
 * Decodes one unit of length len (as pc_dec_next said) into out, which
 * has room for the out_len it gave. Nothing is valid in out unless this
 * returns 0; -1 on any error (damage, bad reference, checksum, digest),
 * with a message in err. After an error the decoder is dead.
 */
int pc_dec_unit(struct pc_dec *d, const uint8_t *p, size_t len, uint8_t *out,
    char *err, size_t errlen);
/* Test-only fault: from unit n on, every page read from a cache has one
 * bit flipped, as a decoder whose memory went bad would see it (0: never). */
void pc_dec_set_fault(struct pc_dec *d, uint64_t n);
/* True once END arrived and matched. */
bool pc_dec_done(const struct pc_dec *d);
uint64_t pc_dec_memory(const struct pc_dec *d);
/* Convenience for tests and fuzzers: decodes a whole buffer. Returns 0
 * with the bytes in out, or -1 (message in err). */
int pc_dec_all(struct pc_dec *d, const uint8_t *p, size_t n,
    struct pc_buf *out, char *err, size_t errlen);

/* ---- the parser alone (for the fuzzer and tests) ---------------------- */

struct pc_parser;
struct pc_parser_cbs {
	/* len raw bytes (not page content) */
	void (*raw)(void *arg, const uint8_t *p, size_t len);
	/* a PAGE record's content, with its identity */
	void (*page)(void *arg, uint64_t key, const uint8_t *page);
	/* a record that changed the page key some other way */
	void (*other)(void *arg, uint64_t key, enum pc_class cls);
};
struct pc_parser *pc_parser_new(const struct pc_parser_cbs *cbs, void *arg);
void pc_parser_free(struct pc_parser *ps);
/* Feeds n bytes; returns how many were consumed: the rest (an incomplete
 * record: at most two pages and a header, for a COMPRESS_PAGE) must be fed
 * again, followed by more bytes. */
size_t pc_parser_feed(struct pc_parser *ps, const uint8_t *p, size_t n);
bool pc_parser_opaque(const struct pc_parser *ps, const char **why);
/* Takes everything from now on as raw bytes (why: a static string). */
void pc_parser_set_opaque(struct pc_parser *ps, const char *why);

/* Chooses LZ4 or zstd for a link of rate bytes/s (0: unknown) from the
 * CPU's measured zstd speed. */
enum pc_algo pc_algo_auto(uint64_t link_Bps);
const char *pc_algo_name(enum pc_algo a);
const char *pc_class_name(enum pc_class c);

#endif

/*
 * pc_parse.c - follows the main channel of a QEMU migration stream far
 * enough to find the RAM pages in it (docs/qemu-migration-format.md,
 * sections 2 and 3): header, configuration, commands, the "ram" section's
 * START/PART/END payloads with their footers. Page contents go to the page
 * callback with a stable identity (block, offset); every other byte goes to
 * the raw callback, unchanged and in order.
 *
 * Whatever it cannot follow for sure (device state, which is not length
 * prefixed; postcopy; capabilities that add unannounced fields; a record it
 * does not know) switches the stream to opaque mode for good: the rest is
 * raw bytes. It never guesses its way back in, since a guest can plant
 * look-alike headers in its own pages. Opaque costs compression, never
 * correctness: the bytes are the same either way.
 */
#include <stdlib.h>
#include <string.h>

#include "pc.h"
#include "wm_util.h"

#define MAGIC 0x5145564Du
#define F_ZERO 0x002u
#define F_MEM_SIZE 0x004u
#define F_PAGE 0x008u
#define F_EOS 0x010u
#define F_CONTINUE 0x020u
#define F_XBZRLE 0x040u
#define F_COMPRESS 0x100u
#define F_MULTIFD_FLUSH 0x200u
#define MAX_BLOCKS 64

enum ps_state {
	PS_HDR,          /* file header */
	PS_CONFIG_SUB,   /* after the machine name: subsections or not */
	PS_TOP,          /* next top-level element */
	PS_RAM,          /* next record of a ram payload */
	PS_MEM_SIZE,     /* entries of the RAMBlock list */
	PS_FOOTER,       /* footer of a ram section */
	PS_SKIP,         /* raw bytes of known length, then skip_next */
	PS_OPAQUE,
};

struct pc_parser {
	struct pc_parser_cbs cbs;
	void *arg;
	enum ps_state state, skip_next;
	uint64_t skip;
	int64_t ram_sid;           /* section id of "ram", -1 before START */
	int cur_block;             /* block of the last page record, -1 */
	uint64_t mem_left;         /* MEM_SIZE bytes not yet listed */
	bool postcopy;             /* POSTCOPY_ADVISE with page sizes seen */
	unsigned nblocks;
	char blocks[MAX_BLOCKS][256];
	const char *why;
};

struct pc_parser *
pc_parser_new(const struct pc_parser_cbs *cbs, void *arg)
{
	struct pc_parser *ps = calloc(1, sizeof(*ps));

	if (ps == NULL)
		return NULL;
	ps->cbs = *cbs;
	ps->arg = arg;
	ps->state = PS_HDR;
	ps->ram_sid = -1;
	ps->cur_block = -1;
	return ps;
}

void
pc_parser_free(struct pc_parser *ps)
{
	free(ps);
}

bool
pc_parser_opaque(const struct pc_parser *ps, const char **why)
{
	if (why != NULL)
		*why = ps->why;
	return ps->state == PS_OPAQUE;
}

static void
opaque(struct pc_parser *ps, const char *why)
{
	ps->state = PS_OPAQUE;
	ps->why = why;
}

void
pc_parser_set_opaque(struct pc_parser *ps, const char *why)
{
	opaque(ps, why);
}

/* The index of a block name (len bytes at p), learning it if new; -1 when
 * the table is full. */
static int
block_index(struct pc_parser *ps, const uint8_t *p, size_t len)
{
	for (unsigned i = 0; i < ps->nblocks; i++)
		if (strlen(ps->blocks[i]) == len &&
		    memcmp(ps->blocks[i], p, len) == 0)
			return (int)i;
	if (ps->nblocks == MAX_BLOCKS || len == 0 || memchr(p, 0, len) != NULL)
		return -1;
	memcpy(ps->blocks[ps->nblocks], p, len);
	ps->blocks[ps->nblocks][len] = '\0';
	return (int)ps->nblocks++;
}

static uint64_t
page_key(int block, uint64_t offset)
{
	return (uint64_t)block << 40 | (offset >> 12);
}

/*
 * One ram record at p (avail bytes). Returns its length once complete, 0
 * if more bytes are needed, or -1 after switching to opaque.
 */
static long
ram_record(struct pc_parser *ps, const uint8_t *p, size_t avail)
{
	uint64_t w, flags, base, offset, key;
	size_t hdr = 8, body;
	int block;

	if (avail < 8)
		return 0;
	w = wm_get_be64(p);
	flags = w & 0xFFFu;
	offset = w & ~(uint64_t)0xFFFu;
	base = flags & ~(uint64_t)F_CONTINUE;
	switch (base) {
	case F_EOS:
	case F_MULTIFD_FLUSH:
		if (flags & F_CONTINUE)
			break;
		ps->cbs.raw(ps->arg, p, 8);
		if (base == F_EOS)
			ps->state = PS_FOOTER;
		return 8;
	case F_MEM_SIZE:
		if (flags & F_CONTINUE)
			break;
		if (ps->postcopy) {
			/* block page sizes may follow, unannounced */
			opaque(ps, "postcopy RAM block list");
			return -1;
		}
		ps->cbs.raw(ps->arg, p, 8);
		ps->mem_left = offset;
		ps->state = ps->mem_left > 0 ? PS_MEM_SIZE : PS_RAM;
		return 8;
	case F_ZERO:
	case F_PAGE:
	case F_XBZRLE:
	case F_COMPRESS:
		if (flags & F_CONTINUE) {
			if (ps->cur_block < 0) {
				opaque(ps, "CONTINUE without a block");
				return -1;
			}
			block = ps->cur_block;
		} else {
			if (avail < 9)
				return 0;
			hdr = 9 + p[8];
			if (avail < hdr)
				return 0;
			block = block_index(ps, p + 9, p[8]);
			if (block < 0) {
				opaque(ps, "too many RAM blocks");
				return -1;
			}
		}
		if (base == F_ZERO)
			body = 1;
		else if (base == F_PAGE)
			body = PC_PAGE;
		else if (base == F_XBZRLE) {
			if (avail < hdr + 3)
				return 0;
			if (p[hdr] != 1 || (size_t)(p[hdr + 1] << 8 | p[hdr + 2]) >
			    PC_PAGE) {
				opaque(ps, "malformed XBZRLE record");
				return -1;
			}
			body = 3 + (size_t)(p[hdr + 1] << 8 | p[hdr + 2]);
		} else {
			if (avail < hdr + 4)
				return 0;
			body = wm_get_be32(p + hdr);
			if (body > 2 * PC_PAGE) {
				opaque(ps, "malformed COMPRESS_PAGE record");
				return -1;
			}
			body += 4;
		}
		if (avail < hdr + body)
			return 0;
		ps->cur_block = block;
		key = page_key(block, offset);
		if (base == F_PAGE) {
			ps->cbs.raw(ps->arg, p, hdr);
			ps->cbs.page(ps->arg, key, p + hdr);
		} else {
			ps->cbs.raw(ps->arg, p, hdr + body);
			if (ps->cbs.other != NULL)
				ps->cbs.other(ps->arg, key, base == F_ZERO ?
				    PC_ZERO : PC_OPAQUE);
		}
		return (long)(hdr + body);
	default:
		break;
	}
	opaque(ps, "unknown RAM record");
	return -1;
}

/* One element in the states that take whole units; same returns. */
static long
step(struct pc_parser *ps, const uint8_t *p, size_t avail)
{
	size_t n;

	switch (ps->state) {
	case PS_HDR:
		if (avail < 8)
			return 0;
		if (wm_get_be32(p) != MAGIC || wm_get_be32(p + 4) != 3) {
			opaque(ps, "not a QEMU main channel");
			return -1;
		}
		ps->cbs.raw(ps->arg, p, 8);
		ps->state = PS_TOP;
		return 8;
	case PS_CONFIG_SUB:
		if (p[0] != 0x05) {
			ps->state = PS_TOP;
			return -2; /* not consumed: go on in PS_TOP */
		}
		if (avail < 2 || avail < 2 + (size_t)p[1] + 4)
			return 0;
		n = p[1];
		/* Giving up leaves the bytes unconsumed: opaque mode sends
		 * them, once. */
		if (n == 30 && memcmp(p + 2, "configuration/target-page-bits", n) == 0) {
			/* a page size other than x86's 4 KiB */
			opaque(ps, "target page size");
			return -1;
		} else if (n == 18 && memcmp(p + 2, "configuration/uuid", n) == 0) {
			ps->cbs.raw(ps->arg, p, 2 + n + 4);
			ps->skip = 16;
			ps->skip_next = PS_CONFIG_SUB;
			ps->state = PS_SKIP;
		} else {
			/* capabilities (x-ignore-shared adds fields to the
			 * block list) and anything newer */
			opaque(ps, "configuration subsection");
			return -1;
		}
		return (long)(2 + n + 4);
	case PS_TOP:
		switch (p[0]) {
		case 0x07: /* CONFIGURATION: be32 len, name */
			if (avail < 5)
				return 0;
			ps->cbs.raw(ps->arg, p, 5);
			ps->skip = wm_get_be32(p + 1);
			ps->skip_next = PS_CONFIG_SUB;
			ps->state = ps->skip ? PS_SKIP : PS_CONFIG_SUB;
			return 5;
		case 0x08: { /* COMMAND: be16 cmd, be16 len, data */
			unsigned cmd, len;

			if (avail < 5)
				return 0;
			cmd = (unsigned)(p[1] << 8 | p[2]);
			len = (unsigned)(p[3] << 8 | p[4]);
			if (cmd == 7) {
				opaque(ps, "postcopy package");
				return -1;
			}
			if (cmd == 3 && len != 0)
				ps->postcopy = true;
			ps->cbs.raw(ps->arg, p, 5);
			ps->skip = len;
			ps->skip_next = PS_TOP;
			ps->state = len ? PS_SKIP : PS_TOP;
			return 5;
		}
		case 0x01: /* START: be32 sid, idstr, be32 instance, be32 version */
			if (avail < 6 || avail < 6 + (size_t)p[5] + 8)
				return 0;
			n = 6 + (size_t)p[5] + 8;
			if (p[5] != 3 || memcmp(p + 6, "ram", 3) != 0) {
				opaque(ps, "section other than ram");
				return -1;
			}
			ps->cbs.raw(ps->arg, p, n);
			ps->ram_sid = wm_get_be32(p + 1);
			ps->cur_block = -1; /* QEMU resets it at setup */
			ps->state = PS_RAM;
			return (long)n;
		case 0x02: /* PART, END: be32 sid */
		case 0x03:
			if (avail < 5)
				return 0;
			if ((int64_t)wm_get_be32(p + 1) != ps->ram_sid) {
				opaque(ps, "section other than ram");
				return -1;
			}
			ps->cbs.raw(ps->arg, p, 5);
			ps->state = PS_RAM;
			return 5;
		case 0x04:
			opaque(ps, "device state");
			return -1;
		case 0x00:
			opaque(ps, "end of the device state");
			return -1;
		default:
			opaque(ps, "unknown element");
			return -1;
		}
	case PS_RAM:
		return ram_record(ps, p, avail);
	case PS_MEM_SIZE: { /* counted idstr, be64 used_length */
		uint64_t used;

		if (avail < 1 || avail < 1 + (size_t)p[0] + 8)
			return 0;
		n = 1 + (size_t)p[0] + 8;
		used = wm_get_be64(p + 1 + p[0]);
		if (p[0] == 0 || used > ps->mem_left ||
		    block_index(ps, p + 1, p[0]) < 0) {
			opaque(ps, "malformed RAM block list");
			return -1;
		}
		ps->cbs.raw(ps->arg, p, n);
		ps->mem_left -= used;
		if (ps->mem_left == 0)
			ps->state = PS_RAM;
		return (long)n;
	}
	case PS_FOOTER:
		if (avail < 5)
			return 0;
		if (p[0] != 0x7E || (int64_t)wm_get_be32(p + 1) != ps->ram_sid) {
			opaque(ps, "ram section without its footer");
			return -1;
		}
		ps->cbs.raw(ps->arg, p, 5);
		ps->state = PS_TOP;
		return 5;
	default:
		return -1;
	}
}

size_t
pc_parser_feed(struct pc_parser *ps, const uint8_t *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		long k;

		if (ps->state == PS_OPAQUE) {
			ps->cbs.raw(ps->arg, p + off, n - off);
			return n;
		}
		if (ps->state == PS_SKIP) {
			size_t m = n - off < ps->skip ? n - off : (size_t)ps->skip;

			ps->cbs.raw(ps->arg, p + off, m);
			off += m;
			ps->skip -= m;
			if (ps->skip == 0)
				ps->state = ps->skip_next;
			continue;
		}
		k = step(ps, p + off, n - off);
		if (k == 0)
			break;
		if (k > 0)
			off += (size_t)k;
		/* -1: now opaque, the bytes go raw next turn; -2: retry */
	}
	return off;
}

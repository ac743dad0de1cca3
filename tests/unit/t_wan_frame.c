/* t_wan_frame.c - tunnel frame headers and control payloads (wan/wan_frame). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "wan_frame.h"
#include "wm_err.h"
#include "wm_util.h"

static void
test_hdr_roundtrip(void **state)
{
	struct wan_frame_hdr h = { WAN_DATA, 0, 0x01020304, 65536,
		0x1122334455667788ull }, g;
	uint8_t b[WAN_FRAME_HDR];
	static const uint8_t want[WAN_FRAME_HDR] = { 3, 0, 0, 0, 1, 2, 3, 4,
		0, 1, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };

	(void)state;
	wan_frame_hdr_encode(b, &h);
	assert_memory_equal(b, want, sizeof(want));
	assert_int_equal(wan_frame_hdr_decode(b, sizeof(b), &g), 1);
	assert_int_equal(g.type, WAN_DATA);
	assert_int_equal(g.stream, 0x01020304);
	assert_int_equal(g.length, 65536);
	assert_true(g.seq == 0x1122334455667788ull);
	/* need more bytes is not an error */
	for (size_t n = 0; n < WAN_FRAME_HDR; n++)
		assert_int_equal(wan_frame_hdr_decode(b, n, &g), 0);
}

static int
decode_seq(uint8_t type, uint8_t flags, uint16_t rsv, uint32_t stream,
    uint32_t len, uint64_t seq)
{
	uint8_t b[WAN_FRAME_HDR] = { type, flags, (uint8_t)(rsv >> 8),
		(uint8_t)rsv };
	struct wan_frame_hdr g;

	wm_put_be32(b + 4, stream);
	wm_put_be32(b + 8, len);
	wm_put_be64(b + 12, seq);
	return wan_frame_hdr_decode(b, sizeof(b), &g);
}

/* A header with the seq its type needs: 1 for the sequenced ones. */
static int
decode_raw(uint8_t type, uint8_t flags, uint16_t rsv, uint32_t stream,
    uint32_t len)
{
	return decode_seq(type, flags, rsv, stream, len,
	    wan_frame_sequenced(type) ? 1 : 0);
}

static void
test_hdr_rejects(void **state)
{
	(void)state;
	assert_int_equal(decode_raw(0, 0, 0, 1, 0), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_FRAME_TYPE_MAX + 1, 0, 0, 1, 0), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_DATA, 1, 0, 1, 10), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_DATA, 0, 1, 1, 10), WM_ERR_PROTO);
	/* DATA: checksum and 1..64 KiB, never on stream 0 */
	assert_int_equal(decode_raw(WAN_DATA, 0, 0, 1, 0), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_DATA, 0, 0, 1, WAN_DATA_SUM), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_DATA, 0, 0, 1, WAN_DATA_SUM + 1), 1);
	assert_int_equal(decode_raw(WAN_DATA, 0, 0, 1,
	    WAN_DATA_SUM + WAN_FRAME_MAX_PAYLOAD + 1), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_DATA, 0, 0, 0, 10), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_DATA, 0, 0, 1,
	    WAN_DATA_SUM + WAN_FRAME_MAX_PAYLOAD), 1);
	/* sequenced frames need a seq, the others must not have one */
	assert_int_equal(decode_seq(WAN_DATA, 0, 0, 1, 20, 0), WM_ERR_PROTO);
	assert_int_equal(decode_seq(WAN_WINDOW, 0, 0, 1, 4, 0), WM_ERR_PROTO);
	assert_int_equal(decode_seq(WAN_PING, 0, 0, 0, 8, 5), WM_ERR_PROTO);
	assert_int_equal(decode_seq(WAN_ACK, 0, 0, 0, 8, 5), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_ACK, 0, 0, 0, 8), 1);
	assert_int_equal(decode_raw(WAN_ACK, 0, 0, 1, 8), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_ACK, 0, 0, 0, 4), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_CLOSE, 0, 0, 0, 5), 1);
	assert_int_equal(decode_raw(WAN_CLOSE, 0, 0, 0, WAN_CTRL_MAX + 1),
	    WM_ERR_PROTO);
	/* fixed sizes */
	assert_int_equal(decode_raw(WAN_FIN, 0, 0, 1, 1), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_FIN, 0, 0, 1, 0), 1);
	assert_int_equal(decode_raw(WAN_WINDOW, 0, 0, 1, 8), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_WINDOW, 0, 0, 1, 4), 1);
	assert_int_equal(decode_raw(WAN_PING, 0, 0, 0, 4), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_PING, 0, 0, 0, 8), 1);
	assert_int_equal(decode_raw(WAN_PONG, 0, 0, 7, 8), WM_ERR_PROTO);
	/* link-level frames on stream 0 only, control frames bounded */
	assert_int_equal(decode_raw(WAN_HELLO, 0, 0, 3, 20), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_OPEN, 0, 0, 0, 20), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_OPEN, 0, 0, 1, WAN_CTRL_MAX + 1), WM_ERR_PROTO);
	assert_int_equal(decode_raw(WAN_RST, 0, 0, 1, 0xffffffffu), WM_ERR_PROTO);
}

static void
test_hello(void **state)
{
	struct wan_hello h = {
		.version = WAN_PROTO_VERSION, .flags = WAN_HELLO_NEW,
		.window = 8u << 20, .reorder = 64u << 20,
		.session = 0x0102030405060708ull, .send_next = 77,
		.recv_next = 1ull << 40, .site = "east",
	}, g;
	uint8_t b[WAN_CTRL_MAX];
	int n;

	(void)state;
	n = wan_hello_encode(b, sizeof(b), &h);
	assert_int_equal(n, 36 + 1 + 4);
	assert_int_equal(wan_hello_decode(b, (size_t)n, &g), 0);
	assert_int_equal(g.version, WAN_PROTO_VERSION);
	assert_int_equal(g.flags, WAN_HELLO_NEW);
	assert_int_equal(g.window, 8u << 20);
	assert_int_equal(g.reorder, 64u << 20);
	assert_true(g.session == 0x0102030405060708ull);
	assert_true(g.send_next == 77);
	assert_true(g.recv_next == 1ull << 40);
	assert_string_equal(g.site, "east");
	/* truncated, trailing garbage, string running past the end */
	assert_int_equal(wan_hello_decode(b, (size_t)n - 1, &g), WM_ERR_PROTO);
	assert_int_equal(wan_hello_decode(b, 35, &g), WM_ERR_PROTO);
	b[n] = 'x';
	assert_int_equal(wan_hello_decode(b, (size_t)n + 1, &g), WM_ERR_PROTO);
	b[36] = 200;
	assert_int_equal(wan_hello_decode(b, (size_t)n, &g), WM_ERR_PROTO);
}

static void
test_open(void **state)
{
	struct wan_open o = { 0x1122334455667788ull, 3, "to-west", "10.98.2.10:4444",
		WAN_OPEN_ENCODED }, g;
	uint8_t b[WAN_CTRL_MAX];
	int n;

	(void)state;
	n = wan_open_encode(b, sizeof(b), &o);
	assert_true(n > 0);
	assert_int_equal(wan_open_decode(b, (size_t)n, &g), 0);
	assert_true(g.migration == 0x1122334455667788ull);
	assert_int_equal(g.index, 3);
	assert_string_equal(g.route, "to-west");
	assert_string_equal(g.target, "10.98.2.10:4444");
	assert_int_equal(g.flags, WAN_OPEN_ENCODED);
	/* without the flags byte: 0; unknown flags are passed on (the link
	 * refuses that stream, not the whole link); a second byte is junk */
	assert_int_equal(wan_open_decode(b, (size_t)n - 1, &g), 0);
	assert_int_equal(g.flags, 0);
	b[n - 1] = 0x80;
	assert_int_equal(wan_open_decode(b, (size_t)n, &g), 0);
	assert_int_equal(g.flags, 0x80);
	b[n - 1] = WAN_OPEN_ENCODED;
	b[n] = 0;
	assert_int_equal(wan_open_decode(b, (size_t)n + 1, &g), WM_ERR_PROTO);
	/* embedded NUL in a string */
	b[11] = '\0';
	assert_int_equal(wan_open_decode(b, (size_t)n, &g), WM_ERR_PROTO);
	/* empty target */
	strcpy(o.target, "");
	n = wan_open_encode(b, sizeof(b), &o);
	assert_int_equal(wan_open_decode(b, (size_t)n, &g), WM_ERR_PROTO);
	/* a string too long to encode */
	memset(o.target, 'a', 255);
	o.target[255] = '\0';
	assert_true(wan_open_encode(b, sizeof(b), &o) > 0);
	assert_int_equal(wan_open_encode(b, 100, &o), WM_ERR_TOOBIG);
}

static void
test_rst_and_ints(void **state)
{
	struct wan_rst r = { WAN_RST_REFUSED, "target not allowed" }, g;
	uint8_t b[WAN_CTRL_MAX];
	uint32_t v32;
	uint64_t v64;
	int n;

	(void)state;
	n = wan_rst_encode(b, sizeof(b), &r);
	assert_int_equal(wan_rst_decode(b, (size_t)n, &g), 0);
	assert_int_equal(g.code, WAN_RST_REFUSED);
	assert_string_equal(g.reason, "target not allowed");
	assert_int_equal(wan_rst_decode(b, 1, &g), WM_ERR_PROTO);
	wm_put_be32(b, 0xdeadbeef);
	assert_int_equal(wan_u32_decode(b, 4, &v32), 0);
	assert_int_equal(v32, 0xdeadbeef);
	assert_int_equal(wan_u32_decode(b, 3, &v32), WM_ERR_PROTO);
	wm_put_be64(b, 0x0102030405060708ull);
	assert_int_equal(wan_u64_decode(b, 8, &v64), 0);
	assert_true(v64 == 0x0102030405060708ull);
	assert_int_equal(wan_u64_decode(b, 9, &v64), WM_ERR_PROTO);
}

/* Every truncation and every single-bit flip of valid control payloads is
 * either decoded or rejected, never read out of bounds (ASan watches). */
static void
test_mutations(void **state)
{
	struct wan_open o = { 7, 1, "r", "1.2.3.4:5", 0 }, g;
	struct wan_hello h = { .version = 2, .window = 65536, .reorder = 1u << 20,
		.session = 9, .send_next = 1, .recv_next = 1, .site = "site" }, hg;
	uint8_t b[64], m[64];
	int n = wan_open_encode(b, sizeof(b), &o);
	int hn;

	(void)state;
	for (int len = 0; len <= n; len++) {
		for (int bit = 0; bit < n * 8; bit++) {
			memcpy(m, b, (size_t)n);
			m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			(void)wan_open_decode(m, (size_t)len, &g);
		}
	}
	hn = wan_hello_encode(b, sizeof(b), &h);
	for (int len = 0; len <= hn; len++)
		(void)wan_hello_decode(b, (size_t)len, &hg);
	assert_int_equal(wan_hello_decode(b, (size_t)hn, &hg), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_roundtrip),
		cmocka_unit_test(test_hdr_rejects),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_rst_and_ints),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

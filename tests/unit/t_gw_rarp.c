/*
 * t_gw_rarp.c - the announcement frames (gateway/gw_rarp_frame.c) against
 * byte layouts written out by hand, and QEMU's announce schedule.
 *
 * VM: MAC 52:54:00:12:34:56, 10.98.2.50 (0a 62 02 32), fd00::50; VLAN 100
 * (TCI 0x0064). The NA checksum was worked by hand: the 16-bit words of
 * the pseudo-header (fd00+0050, ff02+0001, length 0x20, next header 0x3a)
 * and of the message (8800 0000 2000 0000 fd00 0050 0201 5254 0012 3456)
 * add up to 0x42aba; folded 0x2abe; complemented 0xd541.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gw_rarp.h"

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t ip4[4] = { 10, 98, 2, 50 };
static const uint8_t ip6[16] = { 0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0x00, 0x50 };

#define MAC 0x52, 0x54, 0x00, 0x12, 0x34, 0x56
#define BCAST 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
#define TAG100 0x81, 0x00, 0x00, 0x64
#define IP4 0x0a, 0x62, 0x02, 0x32
#define IP6 0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x50
#define ZERO4 0, 0, 0, 0
#define ZERO6 0, 0, 0, 0, 0, 0

/* The ARP-family body after the ethertype: htype 1, ptype IPv4, 6, 4. */
#define ARP_HEAD 0x00, 0x01, 0x08, 0x00, 0x06, 0x04

static const uint8_t rarp_plain[60] = {
	BCAST, MAC, 0x80, 0x35,			/* Ethernet, RARP */
	ARP_HEAD, 0x00, 0x03,			/* opcode 3: reverse request */
	MAC, ZERO4,				/* sender: the MAC, 0.0.0.0 */
	MAC, ZERO4,				/* target: the MAC, 0.0.0.0 */
	/* 42..59: zero padding */
};

static const uint8_t rarp_tagged[60] = {
	BCAST, MAC, TAG100, 0x80, 0x35,
	ARP_HEAD, 0x00, 0x03,
	MAC, ZERO4,
	MAC, ZERO4,
	/* 46..59: zero padding */
};

static const uint8_t garp_plain[60] = {
	BCAST, MAC, 0x08, 0x06,			/* Ethernet, ARP */
	ARP_HEAD, 0x00, 0x01,			/* opcode 1: request */
	MAC, IP4,				/* sender: the VM */
	ZERO6, IP4,				/* target: unknown MAC, same IP */
};

static const uint8_t garp_tagged[60] = {
	BCAST, MAC, TAG100, 0x08, 0x06,
	ARP_HEAD, 0x00, 0x01,
	MAC, IP4,
	ZERO6, IP4,
};

#define NA_BODY								\
	0x60, 0x00, 0x00, 0x00,		/* version 6, tc 0, flow 0 */	\
	0x00, 0x20, 0x3a, 0xff,		/* length 32, ICMPv6, hlim 255 */ \
	IP6,				/* source: the address itself */ \
	0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, /* ff02::1 */ \
	0x88, 0x00, 0xd5, 0x41,		/* NA, code 0, checksum */	\
	0x20, 0x00, 0x00, 0x00,		/* R=0 S=0 O=1 */		\
	IP6,				/* target */			\
	0x02, 0x01, MAC			/* target link-layer address */

static const uint8_t na_plain[86] = {
	0x33, 0x33, 0x00, 0x00, 0x00, 0x01, MAC, 0x86, 0xdd, NA_BODY,
};

static const uint8_t na_tagged[90] = {
	0x33, 0x33, 0x00, 0x00, 0x00, 0x01, MAC, TAG100, 0x86, 0xdd, NA_BODY,
};

/* Builds into a buffer full of 0xa5 so that stray or missing writes show. */
static void
t_check(size_t (*build)(uint8_t *, uint16_t), uint16_t vlan,
    const uint8_t *want, size_t wantlen)
{
	uint8_t buf[GW_RARP_FRAME_MAX + 16];
	size_t len;

	memset(buf, 0xa5, sizeof(buf));
	len = build(buf, vlan);
	assert_int_equal(len, wantlen);
	assert_memory_equal(buf, want, wantlen);
	for (size_t i = len; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xa5);
}

static size_t
b_rarp(uint8_t *buf, uint16_t vlan)
{
	return gw_rarp_build_rarp(buf, mac, vlan);
}

static size_t
b_garp(uint8_t *buf, uint16_t vlan)
{
	return gw_rarp_build_garp(buf, mac, ip4, vlan);
}

static size_t
b_na(uint8_t *buf, uint16_t vlan)
{
	return gw_rarp_build_na(buf, mac, ip6, vlan);
}

static void
test_rarp(void **state)
{
	(void)state;
	t_check(b_rarp, 0, rarp_plain, sizeof(rarp_plain));
	t_check(b_rarp, 100, rarp_tagged, sizeof(rarp_tagged));
}

static void
test_garp(void **state)
{
	(void)state;
	t_check(b_garp, 0, garp_plain, sizeof(garp_plain));
	t_check(b_garp, 100, garp_tagged, sizeof(garp_tagged));
}

static void
test_na(void **state)
{
	(void)state;
	t_check(b_na, 0, na_plain, sizeof(na_plain));
	t_check(b_na, 100, na_tagged, sizeof(na_tagged));
}

/* RFC 4443: the one's-complement sum over pseudo-header and message,
 * checksum included, is 0xffff; for other addresses too. */
static void
test_na_checksum(void **state)
{
	uint8_t buf[GW_RARP_FRAME_MAX], a[16], m[6] = { 0x02, 0, 0, 0, 0, 1 };
	uint32_t sum;

	(void)state;
	for (int seed = 0; seed < 64; seed++) {
		for (int i = 0; i < 16; i++)
			a[i] = (uint8_t)(seed * 37 + i * 11);
		m[5] = (uint8_t)seed;
		assert_int_equal(gw_rarp_build_na(buf, m, a, 0), 86);
		sum = 58 + 32;		/* next header, upper-layer length */
		for (size_t i = 22; i < 86; i += 2)	/* src, dst, ICMPv6 */
			sum += (uint32_t)buf[i] << 8 | buf[i + 1];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		assert_int_equal(sum, 0xffff);
	}
}

/* The highest VLAN ID keeps PCP and DEI zero. */
static void
test_vlan_bits(void **state)
{
	uint8_t buf[GW_RARP_FRAME_MAX];

	(void)state;
	assert_int_equal(gw_rarp_build_rarp(buf, mac, GW_RARP_VLAN_MAX), 60);
	assert_int_equal(buf[12], 0x81);
	assert_int_equal(buf[13], 0x00);
	assert_int_equal(buf[14], 0x0f);
	assert_int_equal(buf[15], 0xfe);
	assert_int_equal(buf[16], 0x80);
	assert_int_equal(buf[17], 0x35);
}

static void
test_schedule(void **state)
{
	/* QEMU's defaults: rounds at 0, 50, 200, 450, 800 ms. */
	const struct gw_rarp_sched q = { 5, 50, 100, 550 };
	static const uint64_t qoff[5] = { 0, 50, 200, 450, 800 };
	/* A longer tail: the ceiling takes over from round 6 on. */
	const struct gw_rarp_sched t = { 10, 50, 100, 550 };
	static const uint64_t tdelay[9] = { 50, 150, 250, 350, 450, 550, 550,
		550, 550 };
	/* No growth; and a first gap above the ceiling. */
	const struct gw_rarp_sched flat = { 3, 200, 0, 1000 };
	const struct gw_rarp_sched capped = { 3, 900, 100, 300 };
	const struct gw_rarp_sched huge = { 1000, 100000, UINT64_MAX / 2,
		100000 };

	(void)state;
	for (uint32_t k = 0; k < 5; k++)
		assert_int_equal(gw_rarp_offset_ms(&q, k), qoff[k]);
	for (uint32_t k = 0; k < 9; k++)
		assert_int_equal(gw_rarp_delay_ms(&t, k), tdelay[k]);
	assert_int_equal(gw_rarp_delay_ms(&flat, 0), 200);
	assert_int_equal(gw_rarp_delay_ms(&flat, 1), 200);
	assert_int_equal(gw_rarp_offset_ms(&flat, 2), 400);
	assert_int_equal(gw_rarp_delay_ms(&capped, 0), 300);
	assert_int_equal(gw_rarp_delay_ms(&capped, 1), 300);
	/* No wrap-around on absurd steps: the ceiling holds. */
	assert_int_equal(gw_rarp_delay_ms(&huge, 999), 100000);
	assert_int_equal(gw_rarp_delay_ms(&huge, 0), 100000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rarp),
		cmocka_unit_test(test_garp),
		cmocka_unit_test(test_na),
		cmocka_unit_test(test_na_checksum),
		cmocka_unit_test(test_vlan_bits),
		cmocka_unit_test(test_schedule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

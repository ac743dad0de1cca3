/*
 * gw_rarp_frame.c - the announcement frames and QEMU's announce schedule,
 * as pure functions (no sockets, no clock): see gw_rarp.h.
 *
 * Layouts (offsets without a VLAN tag; a tag shifts everything after the
 * source address by 4):
 *
 *   Ethernet   0 dst[6]  6 src[6]  [12 0x8100  14 TCI]  12 ethertype
 *   ARP/RARP  14 htype=1  16 ptype=0x0800  18 hlen=6  19 plen=4  20 op
 *             22 sha[6]  28 spa[4]  32 tha[6]  38 tpa[4]  42 zero pad..60
 *   IPv6      14 0x60000000  18 plen=32  20 nh=58  21 hlim=255
 *             22 src[16]  38 dst=ff02::1
 *   ICMPv6 NA 54 type=136  55 code=0  56 cksum  58 flags 0x20000000
 *             62 target[16]  78 opt type=2  79 len=1  80 mac[6]  86 end
 */
#include <string.h>

#include "gw_rarp.h"

static const uint8_t eth_broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
/* IPv6 all-nodes ff02::1 and its multicast MAC (RFC 2464 section 7). */
static const uint8_t ip6_all_nodes[16] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0x01 };
static const uint8_t eth_all_nodes[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 };

#define ARP_HTYPE_ETHER 1
#define ARP_PTYPE_IPV4 0x0800
#define ARP_OP_REQUEST 1
#define ARP_OP_REVERSE_REQUEST 3
#define IPPROTO_ICMPV6_NUM 58
#define ND_NEIGHBOR_ADVERT 136
#define ND_NA_FLAG_OVERRIDE 0x20
#define ND_OPT_TARGET_LLADDR 2
#define NA_LEN 32 /* ICMPv6 NA (24) + target link-layer option (8) */

static uint8_t *
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *
put(uint8_t *p, const void *src, size_t len)
{
	memcpy(p, src, len);
	return p + len;
}

/* Writes the Ethernet header (and tag); returns where the payload goes. */
static uint8_t *
eth_header(uint8_t *buf, const uint8_t dst[6], const uint8_t src[6],
    uint16_t vlan, uint16_t ethertype)
{
	uint8_t *p = put(buf, dst, 6);

	p = put(p, src, 6);
	if (vlan != 0) {
		p = put16(p, GW_RARP_ETHERTYPE_VLAN);
		p = put16(p, vlan & 0x0fff);	/* PCP 0, DEI 0 */
	}
	return put16(p, ethertype);
}

/* Zero-pads a frame ending at end to the Ethernet minimum; its length. */
static size_t
eth_pad(uint8_t *buf, uint8_t *end)
{
	size_t len = (size_t)(end - buf);

	if (len < GW_RARP_ETH_MIN) {
		memset(end, 0, GW_RARP_ETH_MIN - len);
		len = GW_RARP_ETH_MIN;
	}
	return len;
}

static size_t
arp_frame(uint8_t *buf, uint16_t ethertype, uint16_t op, const uint8_t mac[6],
    const uint8_t spa[4], const uint8_t tha[6], const uint8_t tpa[4],
    uint16_t vlan)
{
	uint8_t *p = eth_header(buf, eth_broadcast, mac, vlan, ethertype);

	p = put16(p, ARP_HTYPE_ETHER);
	p = put16(p, ARP_PTYPE_IPV4);
	*p++ = 6;
	*p++ = 4;
	p = put16(p, op);
	p = put(p, mac, 6);
	p = put(p, spa, 4);
	p = put(p, tha, 6);
	p = put(p, tpa, 4);
	return eth_pad(buf, p);
}

size_t
gw_rarp_build_rarp(uint8_t *buf, const uint8_t mac[6], uint16_t vlan)
{
	static const uint8_t any[4];

	return arp_frame(buf, GW_RARP_ETHERTYPE_RARP, ARP_OP_REVERSE_REQUEST,
	    mac, any, mac, any, vlan);
}

size_t
gw_rarp_build_garp(uint8_t *buf, const uint8_t mac[6], const uint8_t ip[4],
    uint16_t vlan)
{
	static const uint8_t unknown[6];

	return arp_frame(buf, GW_RARP_ETHERTYPE_ARP, ARP_OP_REQUEST, mac, ip,
	    unknown, ip, vlan);
}

/* One's-complement sum of 16-bit big-endian words (odd tail padded). */
static uint32_t
csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len == 1)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t
csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

size_t
gw_rarp_build_na(uint8_t *buf, const uint8_t mac[6], const uint8_t ip6[16],
    uint16_t vlan)
{
	static const uint8_t pseudo_tail[8] = { 0, 0, 0, NA_LEN, 0, 0, 0,
		IPPROTO_ICMPV6_NUM };
	uint8_t *p = eth_header(buf, eth_all_nodes, mac, vlan,
	    GW_RARP_ETHERTYPE_IPV6);
	uint8_t *icmp;
	uint32_t sum;

	*p++ = 0x60;			/* version 6, traffic class 0 */
	*p++ = 0;
	p = put16(p, 0);		/* flow label 0 */
	p = put16(p, NA_LEN);
	*p++ = IPPROTO_ICMPV6_NUM;
	*p++ = 255;			/* hop limit: receivers insist */
	p = put(p, ip6, 16);		/* from the address it advertises */
	p = put(p, ip6_all_nodes, 16);
	icmp = p;
	*p++ = ND_NEIGHBOR_ADVERT;
	*p++ = 0;			/* code */
	p = put16(p, 0);		/* checksum, below */
	*p++ = ND_NA_FLAG_OVERRIDE;	/* R=0 S=0 O=1 */
	memset(p, 0, 3);
	p += 3;
	p = put(p, ip6, 16);		/* target */
	*p++ = ND_OPT_TARGET_LLADDR;
	*p++ = 1;			/* option length in units of 8 bytes */
	p = put(p, mac, 6);
	/* RFC 4443 2.3: pseudo-header (src, dst, length, next header). */
	sum = csum_add(0, ip6, 16);
	sum = csum_add(sum, ip6_all_nodes, 16);
	sum = csum_add(sum, pseudo_tail, sizeof(pseudo_tail));
	sum = csum_add(sum, icmp, NA_LEN);
	put16(icmp + 2, csum_fold(sum));
	return eth_pad(buf, p);
}

uint64_t
gw_rarp_delay_ms(const struct gw_rarp_sched *s, uint32_t k)
{
	uint64_t d;

	/* Saturate rather than wrap: the cap applies either way. */
	if (s->step_ms != 0 && k > (UINT64_MAX - s->initial_ms) / s->step_ms)
		return s->max_ms;
	d = s->initial_ms + (uint64_t)k * s->step_ms;
	return d < s->max_ms ? d : s->max_ms;
}

uint64_t
gw_rarp_offset_ms(const struct gw_rarp_sched *s, uint32_t k)
{
	uint64_t t = 0;

	for (uint32_t i = 0; i < k; i++)
		t += gw_rarp_delay_ms(s, i);
	return t;
}

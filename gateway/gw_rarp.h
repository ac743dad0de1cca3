/*
 * gw_rarp.h - announcing a migrated VM on the destination site's L2
 * segment, so that switches and routers learn at once where its MAC and
 * addresses now live.
 *
 * When an inbound migration completes (every stream closed cleanly: the
 * destination QEMU took the whole stream and, with the return path, its
 * final message went back), the destination gateway sends, on the site's
 * announce interface and in rounds spaced like QEMU's own self-announce:
 *
 *   - for each MAC of the VM, a RARP reverse request (what QEMU sends);
 *   - for each IPv4 address of that MAC, a gratuitous ARP request;
 *   - for each IPv6 address of that MAC, an unsolicited neighbour
 *     advertisement to all nodes, override flag set.
 *
 * What to announce comes from the destination's own configuration: an
 * "[announce ROUTE]" section keyed by the route name the sending gateway
 * gives in its OPEN (see conf.h). A failed migration announces nothing.
 *
 * Two tiers. The frame builders and the schedule are pure functions
 * (gw_rarp_frame.c, library wm_gwrarp: no sockets, no event loop) so that
 * a unit test checks every byte. The runtime (gw_rarp.c, in wanmigd) sends
 * them through an AF_PACKET socket from libevent timers, never blocking.
 */
#ifndef WM_GATEWAY_GW_RARP_H
#define WM_GATEWAY_GW_RARP_H

#include <stddef.h>
#include <stdint.h>

#define GW_RARP_ETH_MIN 60     /* shortest Ethernet frame, FCS excluded */
#define GW_RARP_FRAME_MAX 90   /* longest we build: tagged NA (18+40+32) */
#define GW_RARP_VLAN_MAX 4094  /* VLAN IDs 1..4094; 0 means untagged */

#define GW_RARP_ETHERTYPE_RARP 0x8035
#define GW_RARP_ETHERTYPE_ARP 0x0806
#define GW_RARP_ETHERTYPE_IPV6 0x86dd
#define GW_RARP_ETHERTYPE_VLAN 0x8100

/* ---- frame builders (pure) --------------------------------------------- */

/*
 * Each writes one complete Ethernet frame (no FCS) into buf, which must hold
 * GW_RARP_FRAME_MAX bytes, and returns its length. vlan 1..4094 inserts an
 * 802.1Q tag (priority 0) after the source address; 0 sends untagged.
 * Short frames are zero-padded to GW_RARP_ETH_MIN bytes, tag included.
 * The source address is always the VM's mac (what the switches must learn).
 */

/* RARP reverse request as QEMU sends it: to ff:ff:ff:ff:ff:ff, ethertype
 * 0x8035, htype 1, ptype 0x0800, opcode 3, sender and target hardware
 * address = mac, protocol addresses 0.0.0.0. 60 bytes. */
size_t gw_rarp_build_rarp(uint8_t *buf, const uint8_t mac[6], uint16_t vlan);

/* Gratuitous ARP request (RFC 5227 announcement): to the broadcast
 * address, opcode 1, sender = mac/ip, target hardware 0, target ip = ip.
 * 60 bytes. */
size_t gw_rarp_build_garp(uint8_t *buf, const uint8_t mac[6],
    const uint8_t ip[4], uint16_t vlan);

/* Unsolicited IPv6 neighbour advertisement (RFC 4861 7.2.6): from ip6 to
 * ff02::1 (MAC 33:33:00:00:00:01), hop limit 255, flags R=0 S=0 O=1,
 * target ip6, target link-layer address option = mac. 86 bytes (90
 * tagged). */
size_t gw_rarp_build_na(uint8_t *buf, const uint8_t mac[6],
    const uint8_t ip6[16], uint16_t vlan);

/* ---- schedule (pure) ---------------------------------------------------- */

/*
 * QEMU's self-announce schedule (net/announce.c): round 0 goes at once;
 * after round k (0-based) the next waits min(initial + k * step, max). The
 * defaults (5 rounds, 50 ms, 100 ms, 550 ms) put rounds at 0, 50, 200,
 * 450 and 800 ms.
 */
struct gw_rarp_sched {
	uint32_t rounds;
	uint64_t initial_ms;
	uint64_t step_ms;
	uint64_t max_ms;
};

/* The wait after round k before round k + 1. */
uint64_t gw_rarp_delay_ms(const struct gw_rarp_sched *s, uint32_t k);
/* When round k goes, in ms after round 0. */
uint64_t gw_rarp_offset_ms(const struct gw_rarp_sched *s, uint32_t k);

/* ---- runtime (gw_rarp.c, wanmigd only) ---------------------------------- */

struct gw_mig;
struct json_object;

/*
 * An inbound migration m just completed: looks up its [announce] section
 * and starts the rounds (the first one is sent before this returns). The
 * state, kept in m->announce (owned by m), records what was sent, where and
 * when, or why nothing was; problems are logged, never fatal.
 */
void gw_rarp_mig_completed(struct gw_mig *m);
/* Stops any rounds still due and frees m->announce; m stays valid. */
void gw_rarp_mig_cleanup(struct gw_mig *m);
/* The "announce" object of m's status entry (caller owns it), or NULL if
 * m has nothing to show (outbound, active or failed). */
struct json_object *gw_rarp_mig_json(const struct gw_mig *m);

#endif

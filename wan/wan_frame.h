/*
 * wan_frame.h - the framing of the gateway-to-gateway tunnel.
 *
 * Inside one TLS connection, frames multiplex many streams. Wire grammar
 * (all integers big-endian):
 *
 *   frame   = type:u8 flags:u8 reserved:u16(=0) stream:u32 length:u32 payload
 *   length <= WAN_FRAME_MAX_PAYLOAD; control frames <= WAN_CTRL_MAX
 *
 *   HELLO   stream 0: version:u16 reserved:u16 window:u32 site:str8
 *           First frame each way; nothing else before it. window is the
 *           credit the sender grants to every stream opened toward it.
 *   OPEN    migration:u64 index:u16 route:str8 target:str8
 *           Asks the far side to connect to target ("addr:port") for the
 *           index-th connection of a migration. Data may follow at once,
 *           within the peer's HELLO window.
 *   DATA    payload = stream bytes, 1..WAN_FRAME_MAX_PAYLOAD
 *   FIN     empty: the sender's direction of the stream ended cleanly
 *   RST     code:u16 reason:str8 - the stream is dead, both directions
 *   WINDOW  credit:u32 - the receiver wrote that many more bytes out
 *   PING    stream 0: stamp:u64 (sender's microseconds)
 *   PONG    stream 0: the PING's stamp echoed
 *
 *   str8 = length:u8 bytes (no NUL)
 *
 * Stream numbers are chosen by the opener: odd from the side that dialled
 * the TLS connection, even from the side that accepted it, never 0.
 */
#ifndef WM_WAN_WAN_FRAME_H
#define WM_WAN_WAN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WAN_FRAME_HDR 12
#define WAN_FRAME_MAX_PAYLOAD (64 * 1024)
#define WAN_CTRL_MAX 1024
#define WAN_PROTO_VERSION 1

enum wan_frame_type {
	WAN_HELLO = 1,
	WAN_OPEN = 2,
	WAN_DATA = 3,
	WAN_FIN = 4,
	WAN_RST = 5,
	WAN_WINDOW = 6,
	WAN_PING = 7,
	WAN_PONG = 8,
	WAN_FRAME_TYPE_MAX = 8,
};

/* RST codes: why a stream died. */
enum wan_rst_code {
	WAN_RST_ERROR = 1,       /* local socket error or reset */
	WAN_RST_REFUSED = 2,     /* target not allowed or connect failed */
	WAN_RST_PROTO = 3,       /* peer broke the protocol */
	WAN_RST_SHUTDOWN = 4,    /* gateway stopping */
	WAN_RST_TIMEOUT = 5,     /* stream idle or stuck past its bound */
};

struct wan_frame_hdr {
	uint8_t type;
	uint8_t flags;
	uint32_t stream;
	uint32_t length;
};

struct wan_hello {
	uint16_t version;
	uint32_t window;
	char site[256];
};

struct wan_open {
	uint64_t migration;
	uint16_t index;
	char route[256];
	char target[256];
};

struct wan_rst {
	uint16_t code;
	char reason[256];
};

/* Encodes a header into buf (WAN_FRAME_HDR bytes). */
void wan_frame_hdr_encode(uint8_t *buf, const struct wan_frame_hdr *h);

/*
 * Decodes and validates a header from len bytes. Returns 1 with *h filled,
 * 0 if more bytes are needed, or WM_ERR_PROTO (unknown type, reserved bits
 * set, length above the bound for the type, stream number wrong for the
 * type). Hostile input never asserts.
 */
int wan_frame_hdr_decode(const uint8_t *buf, size_t len, struct wan_frame_hdr *h);

/*
 * Payload codecs for the control frames. The encoders write into buf of
 * size cap and return the payload length, or WM_ERR_TOOBIG. The decoders
 * take exactly one payload and return 0 or WM_ERR_PROTO (short, long, or
 * trailing bytes, bad strings).
 */
int wan_hello_encode(uint8_t *buf, size_t cap, const struct wan_hello *m);
int wan_hello_decode(const uint8_t *p, size_t len, struct wan_hello *m);
int wan_open_encode(uint8_t *buf, size_t cap, const struct wan_open *m);
int wan_open_decode(const uint8_t *p, size_t len, struct wan_open *m);
int wan_rst_encode(uint8_t *buf, size_t cap, const struct wan_rst *m);
int wan_rst_decode(const uint8_t *p, size_t len, struct wan_rst *m);
/* WINDOW, PING and PONG carry one integer. */
int wan_u32_decode(const uint8_t *p, size_t len, uint32_t *v);
int wan_u64_decode(const uint8_t *p, size_t len, uint64_t *v);
void wan_put_be32(uint8_t *p, uint32_t v);
void wan_put_be64(uint8_t *p, uint64_t v);

#endif

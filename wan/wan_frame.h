/*
 * wan_frame.h - the framing of the gateway-to-gateway tunnel.
 *
 * A tunnel ("link") is a session between two gateways carried by one or
 * more TLS connections. Frames multiplex many streams; the frames that
 * carry stream state are numbered across the whole session, so they may
 * travel on any connection, are put back in order by the receiver, and
 * are sent again after a connection is lost. Wire grammar (all integers
 * big-endian):
 *
 *   frame   = type:u8 flags:u8 reserved:u16(=0) stream:u32 length:u32
 *             seq:u64 payload
 *   length <= WAN_FRAME_MAX_PAYLOAD; control frames <= WAN_CTRL_MAX
 *
 *   Sequenced (seq >= 1, consecutive per direction of the session):
 *   OPEN    migration:u64 index:u16 route:str8 target:str8
 *           Asks the far side to connect to target ("addr:port") for the
 *           index-th connection of a migration. Data may follow at once,
 *           within the peer's HELLO window.
 *   DATA    sum:u64 bytes - 1..WAN_FRAME_MAX_PAYLOAD stream bytes and
 *           their XXH3-64, checked before they are written out
 *   FIN     empty: the sender's direction of the stream ended cleanly
 *   RST     code:u16 reason:str8 - the stream is dead, both directions
 *   WINDOW  credit:u32 - the receiver wrote that many more bytes out
 *
 *   Per connection (seq = 0, stream 0):
 *   HELLO   version:u16 flags:u16 window:u32 reorder:u32 session:u64
 *           send_next:u64 recv_next:u64 site:str8
 *           First frame each way; the dialler sends first. window is the
 *           credit the sender grants to every stream opened toward it,
 *           reorder the bytes of frames it accepts ahead of a gap (the
 *           bound of the peer's retransmit buffer). send_next is the seq
 *           of the sender's next frame, recv_next the first seq it has
 *           not received: the far side resends from there.
 *           flags: WAN_HELLO_NEW, the session was created for this HELLO.
 *   ACK     next:u64 - every sequenced frame below next was received
 *   PING    stamp:u64 (sender's microseconds)
 *   PONG    the PING's stamp echoed
 *   CLOSE   reason:str8 - the session is over; do not resume it
 *
 *   str8 = length:u8 bytes (no NUL)
 *
 * Stream numbers are chosen by the opener: odd from the side that dialled
 * the session, even from the side that accepted it, never 0.
 */
#ifndef WM_WAN_WAN_FRAME_H
#define WM_WAN_WAN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WAN_FRAME_HDR 20
#define WAN_FRAME_MAX_PAYLOAD (64 * 1024)
#define WAN_CTRL_MAX 1024
#define WAN_DATA_SUM 8    /* checksum ahead of the bytes in DATA */
#define WAN_PROTO_VERSION 3    /* 3: OPEN carries flags (the codec) */
#define WAN_HELLO_NEW 0x0001

enum wan_frame_type {
	WAN_HELLO = 1,
	WAN_OPEN = 2,
	WAN_DATA = 3,
	WAN_FIN = 4,
	WAN_RST = 5,
	WAN_WINDOW = 6,
	WAN_PING = 7,
	WAN_PONG = 8,
	WAN_ACK = 9,
	WAN_CLOSE = 10,
	WAN_FRAME_TYPE_MAX = 10,
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
	uint64_t seq;
};

struct wan_hello {
	uint16_t version;
	uint16_t flags;
	uint32_t window;
	uint32_t reorder;
	uint64_t session;
	uint64_t send_next;
	uint64_t recv_next;
	char site[256];
};

/* OPEN flags */
#define WAN_OPEN_ENCODED 0x01   /* the stream's bytes are the page codec's
                                   (compress/pc.h), not the hypervisor's */

struct wan_open {
	uint64_t migration;
	uint16_t index;
	char route[256];
	char target[256];
	uint8_t flags;          /* WAN_OPEN_*; absent on the wire means 0 */
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
/* True for the frame types numbered across the session. */
int wan_frame_sequenced(uint8_t type);
/* CLOSE carries one string. */
int wan_str_encode(uint8_t *buf, size_t cap, const char *s);
int wan_str_decode(const uint8_t *p, size_t len, char *out, size_t cap);
/* WINDOW, ACK, PING and PONG carry one integer. */
int wan_u32_decode(const uint8_t *p, size_t len, uint32_t *v);
int wan_u64_decode(const uint8_t *p, size_t len, uint64_t *v);

#endif

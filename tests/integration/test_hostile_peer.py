#!/usr/bin/env python3
"""test_hostile_peer.py - a peer that holds a valid certificate but speaks
garbage must never crash a gateway or get anything relayed.

A Python TLS client with east's certificate connects to a real wanmigd
(west) and sends malformed tunnel frames; after each, west must drop the
connection (or reset just the stream), stay up, and afterwards still relay
a normal stream for the real east gateway. Under the sanitizer build of
tools/test.sh, any out-of-bounds access aborts the daemon and fails this.
Exit 0 pass, 1 fail.
"""
import ctypes
import os
import socket
import ssl
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import wmgw  # noqa: E402
import test_relay as tr  # noqa: E402

HELLO, OPEN, DATA, FIN, RST, WINDOW, PING, PONG, ACK, CLOSE = range(1, 11)
SEQUENCED = (OPEN, DATA, FIN, RST, WINDOW)
FAILS = []
SEQ = [1]  # the next sequence number; hello() starts a session again
_XXH = ctypes.CDLL("libxxhash.so.0")
_XXH.XXH3_64bits.restype = ctypes.c_uint64
_XXH.XXH3_64bits.argtypes = (ctypes.c_char_p, ctypes.c_size_t)


def check(cond, what):
    print("%s: %s" % ("ok" if cond else "FAIL", what), flush=True)
    if not cond:
        FAILS.append(what)


def frame(ftype, stream, payload=b"", length=None, seq=None):
    """One frame; sequenced types get the session's next number."""
    n = len(payload) if length is None else length
    if seq is None:
        seq = 0
        if ftype in SEQUENCED:
            seq = SEQ[0]
            SEQ[0] += 1
    return struct.pack(">BBHIIQ", ftype, 0, 0, stream, n, seq) + payload


def dataf(stream, b, good=True):
    """A DATA frame: XXH3-64 of the bytes (spoilt unless good), bytes."""
    return frame(DATA, stream, struct.pack(">Q", _XXH.XXH3_64bits(b, len(b)) ^
                                           (0 if good else 1)) + b)


def s8(b):
    return bytes([len(b)]) + b


def hello(site=b"east", version=3, window=8 << 20, reorder=64 << 20,
          session=None, send_next=1, recv_next=1, flags=1):
    SEQ[0] = 1
    if session is None:
        session = int.from_bytes(os.urandom(8), "big") | 1
    return frame(HELLO, 0, struct.pack(">HHIIQQQ", version, flags, window, reorder,
                                       session, send_next, recv_next) + s8(site))


def open_(stream, target, mig=1, index=0, route=b"r", flags=None):
    p = struct.pack(">QH", mig, index) + s8(route) + s8(target)
    if flags is not None:
        p += bytes([flags])
    return frame(OPEN, stream, p)


class Client:
    def __init__(self, certs, port):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(os.path.join(certs, "east.pem"), os.path.join(certs, "east.key"))
        ctx.load_verify_locations(os.path.join(certs, "ca.pem"))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname="west")

    def send(self, b):
        try:
            self.s.sendall(b)
        except OSError:
            pass

    def read_until_closed(self, timeout=5.0):
        """Returns (closed, frames): frame types received until the server
        closed, or until timeout with the connection still open."""
        self.s.settimeout(timeout)
        buf = b""
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    return True, parse(buf)
                buf += b
        except (socket.timeout, TimeoutError):
            return False, parse(buf)
        except (OSError, ssl.SSLError):
            return True, parse(buf)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def parse(buf):
    out = []
    while len(buf) >= 20:
        t, _, _, sid, n, _ = struct.unpack(">BBHIIQ", buf[:20])
        out.append((t, sid, buf[20:20 + n]))
        buf = buf[20 + n:]
    return out


def main():
    work = tempfile.mkdtemp(prefix="wm-hostile-")
    ec, wc, route_port, dest_port, west_wan = tr.start_pair(
        work, west_extra=["resume-buffer = 1m"],
        west_site=["window = 8m"])  # overrun below with 40 MiB
    certs = os.path.join(work, "certs")
    west = wmgw.Gateway(wc, work, "west").start()
    target = ("127.0.0.1:%d" % dest_port).encode()
    dest = tr.Destination(dest_port, reply=b"ok")
    cases = [
        ("garbage instead of a frame", b"\xff" * 64, True),
        ("64 KiB DATA before HELLO", dataf(1, b"A" * 65536), True),
        ("HELLO with protocol version 9", hello(version=9), True),
        ("HELLO with session 0", hello(session=0), True),
        ("HELLO with a tiny reorder buffer", hello(reorder=4096), True),
        ("HELLO naming another site", hello(site=b"mallory"), True),
        ("HELLO with a tiny window", hello(window=10), True),
        ("unknown frame type", hello() + frame(99, 1, b"x"), True),
        ("control frame longer than the bound", hello() + frame(RST, 1, length=5000), True),
        ("DATA longer than 64 KiB", hello() + frame(DATA, 1, length=65545), True),
        ("DATA without a sequence number", hello() + frame(DATA, 1, b"x" * 9, seq=0), True),
        ("PING with a sequence number", hello() + frame(PING, 0, b"\0" * 8, seq=1), True),
        ("ACK of frames never sent", hello() + frame(ACK, 0, struct.pack(">Q", 99)), True),
        ("CLOSE ends the session", hello() + frame(CLOSE, 0, s8(b"bye")), True),
        ("frames ahead of a gap past the reorder buffer (1 MiB)", hello() + b"".join(
            frame(DATA, 1, b"\0" * 65544, seq=5000 + i) for i in range(40)), True),
        ("OPEN with the wrong stream parity", hello() + open_(2, target), True),
        ("OPEN with a truncated payload", hello() + frame(OPEN, 1, b"\x00\x01"), True),
        ("OPEN reusing a stream number", hello() + open_(3, target) + open_(3, target), True),
        ("second HELLO", hello() + hello(), True),
        ("frame on stream 0 that needs a stream", hello() + frame(FIN, 0), True),
    ]
    try:
        for name, payload, want_close in cases:
            c = Client(certs, west_wan)
            c.send(payload)
            closed, _ = c.read_until_closed(3.0)
            c.close()
            check(closed == want_close, "%s: connection dropped" % name)
            check(west.proc.poll() is None, "%s: west still running" % name)

        # A valid stream whose sender ignores the window, toward a target
        # that accepts nothing (so no credit comes back): only that stream
        # is reset, with a reason, and the link stays up.
        sink = socket.socket()
        sink.bind(("127.0.0.1", 0))
        sink.listen(1)
        sink_target = ("127.0.0.1:%d" % sink.getsockname()[1]).encode()
        c = Client(certs, west_wan)
        c.send(hello() + open_(1, sink_target))
        for _ in range((40 << 20) // 65536):
            c.send(dataf(1, b"B" * 65536))
        c.send(frame(PING, 0, struct.pack(">Q", 42)))
        closed, frames = c.read_until_closed(3.0)
        rsts = [f for f in frames if f[0] == RST and f[1] == 1]
        check(not closed, "window overrun: link stays up")
        check(bool(rsts) and b"window" in rsts[0][2],
              "window overrun: the stream is reset with a reason")
        check(any(f[0] == PONG for f in frames), "window overrun: link still answers PING")
        c.close()
        conn, _ = sink.accept()
        conn.settimeout(5)
        end = "open"
        try:
            while True:
                if not conn.recv(1 << 20):
                    end = "eof"
                    break
        except ConnectionResetError:
            end = "reset"
        except socket.timeout:
            end = "timeout"
        conn.close()
        sink.close()
        check(end == "reset",
              "window overrun: the destination connection is reset, not ended (%s)" % end)

        # DATA whose checksum does not match its bytes: that stream is
        # reset before anything reaches the destination; the link lives.
        dest.results.clear()
        c = Client(certs, west_wan)
        c.send(hello() + open_(1, target) + dataf(1, b"D" * 1000) +
               dataf(1, b"E" * 1000, good=False) + frame(PING, 0, struct.pack(">Q", 7)))
        closed, frames = c.read_until_closed(2.0)
        rsts = [f for f in frames if f[0] == RST and f[1] == 1]
        check(bool(rsts) and b"checksum" in rsts[0][2] and not closed,
              "damaged DATA: the stream is reset with a reason, the link stays up")
        c.close()
        deadline = time.time() + 3
        while time.time() < deadline and not dest.results:
            time.sleep(0.05)
        check(dest.results and dest.results[0]["end"] == "reset" and
              dest.results[0]["n"] <= 1000,
              "damaged DATA: the destination is reset and never sees the damaged bytes (%s)"
              % (dest.results[0] if dest.results else "nothing"))

        # An encoded stream (OPEN flag 1) whose bytes are not the codec's:
        # the decoder refuses them, the stream is reset before the
        # destination sees a byte, the link lives. A valid preface followed
        # by a block that lies about its checksum: the same.
        for name, junk in [
                ("garbage", b"QEVM\0\0\0\x03" + b"x" * 2000),
                ("a malformed block", b"WMPC\x02\x00\x00\x00" + b"\0" * 8 +
                 b"B\x00\0\0" + struct.pack(">III", 5, 5, 5) + b"\0" * 8 +
                 b"\x01\x01\0\0\0X")]:
            dest.results.clear()
            c = Client(certs, west_wan)
            c.send(hello() + open_(1, target, flags=1) + dataf(1, junk) +
                   frame(PING, 0, struct.pack(">Q", 7)))
            closed, frames = c.read_until_closed(2.0)
            rsts = [f for f in frames if f[0] == RST and f[1] == 1]
            check(bool(rsts) and b"decoder" in rsts[0][2] and not closed,
                  "encoded stream of %s: reset by the decoder with a reason (%s), "
                  "the link stays up" % (name, rsts[0][2][:80] if rsts else None))
            c.close()
            deadline = time.time() + 3
            while time.time() < deadline and not dest.results:
                time.sleep(0.05)
            check(dest.results and dest.results[0]["end"] == "reset" and
                  dest.results[0]["n"] == 0,
                  "encoded stream of %s: the destination is reset and gets "
                  "no byte (%s)" % (name, dest.results[0] if dest.results else "nothing"))
        # unknown OPEN flags: that stream is refused, the link lives
        c = Client(certs, west_wan)
        c.send(hello() + open_(1, target, flags=0x80) + frame(PING, 0, struct.pack(">Q", 7)))
        closed, frames = c.read_until_closed(2.0)
        check(any(f[0] == RST and b"unknown OPEN flags" in f[2] for f in frames)
              and not closed, "unknown OPEN flags refuse the stream, not the link")
        c.close()

        # An OPEN to a target outside `targets`: refused, nothing connects.
        dest.results.clear()
        c = Client(certs, west_wan)
        c.send(hello() + open_(1, b"10.255.255.1:9"))
        closed, frames = c.read_until_closed(2.0)
        check(any(f[0] == RST and b"not in the targets" in f[2] for f in frames),
              "OPEN to a forbidden target is refused with a reason")
        c.close()

        # West still serves the real east.
        east = wmgw.Gateway(ec, work, "east").start()
        try:
            east.wait_peer("west")
            dest.results.clear()
            res = [None]
            data = tr.pattern("after", 3 << 20)
            tr.source(route_port, data, b"ok", res, 0)
            check(res[0]["reply_ok"], "after all that, west relays a real stream")
        finally:
            east.stop()
        check(west.proc.poll() is None, "west never crashed")
    finally:
        rc = west.stop()
        dest.close()
    check(rc == 0, "west exits 0 (sanitizers clean) (exit %s)" % rc)
    if FAILS:
        print(west.log()[-4000:])
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

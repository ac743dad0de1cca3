#!/usr/bin/env python3
"""test_relay.py - two real wanmigd on loopback, hypervisors played by sockets.

Checks what every migration relies on, fast and without QEMU:
  1. byte-exact relay both ways of several concurrent connections of one
     source (a main channel plus multifd channels): the destination sees
     them in arrival order, each stream's bytes intact, half-close carried
     (the destination keeps answering after the source's FIN);
  2. a reset at the source reaches the destination as a reset, not EOF;
  3. a target outside the peer's `targets` is refused and logged;
  4. certificate of the wrong name, both ways: refused, logged, nothing relayed;
  5. the destination gateway dies mid-stream: both hypervisor connections
     are reset (never a clean end of stream);
  6. `wanmig status --json` has the documented fields.
Exit 0 pass, 1 fail.
"""
import hashlib
import random
import json
import os
import socket
import subprocess
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import wmgw  # noqa: E402

FAILS = []


def check(cond, what):
    print("%s: %s" % ("ok" if cond else "FAIL", what), flush=True)
    if not cond:
        FAILS.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pattern(seed, n):
    """Deterministic, incompressible bytes (the tunnel's codec must not
    shrink them: these scenarios count bytes and time outages)."""
    return random.Random(seed).randbytes(n)


class Destination:
    """Accepts connections; per connection records the accept order, reads
    to EOF (or reset), hashes, then sends `reply` bytes and closes."""

    def __init__(self, port, reply=b""):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.reply = reply
        self.results = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        order = 0
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c, order), daemon=True).start()
            order += 1

    def _serve(self, c, order):
        h = hashlib.sha256()
        n = 0
        first = b""
        end = "eof"
        try:
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                if len(first) < 8:
                    first += b[:8 - len(first)]
                h.update(b)
                n += len(b)
            if self.reply:
                c.sendall(self.reply)
            c.close()
        except ConnectionResetError:
            end = "reset"
        except OSError as e:
            end = "error %s" % e
        with self.lock:
            self.results.append(dict(order=order, first=first, n=n,
                                     sha=h.hexdigest(), end=end))

    def close(self):
        self.sock.close()


def source(port, data, want_reply, results, idx, delay=0.0):
    time.sleep(delay)
    s = socket.create_connection(("127.0.0.1", port))
    got = bytearray()
    end = "eof"
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got += b
    except (ConnectionResetError, BrokenPipeError):
        end = "reset"
    except OSError as e:  # e.g. ENOTCONN from shutdown() after a reset
        end = "reset" if e.errno == 107 else "error %s" % e
    s.close()
    results[idx] = dict(reply_ok=bytes(got) == want_reply, n=len(got), end=end)


def start_pair(work, east_extra=None, west_targets=("127.0.0.0/8",),
               west_cert=None, east_peer_addr=None, west_extra=None,
               east_site=None, west_site=None):
    east_wan, west_wan = free_port(), free_port()
    route_port, dest_port = free_port(), free_port()
    # four connections unless told (the default is one), so that these
    # checks cover the striping and the receiver's reordering
    east_extra = list(east_extra or [])
    if not any(x.startswith("streams") for x in east_extra):
        east_extra.append("streams = 4")
    certs = os.path.join(work, "certs")
    wmgw.mkcerts(certs, "east", "west", "mallory")
    ec = wmgw.write_conf(
        os.path.join(work, "east.conf"), "east", certs,
        listen="127.0.0.1:%d" % east_wan, extra_site=east_site,
        peers=[dict(name="west", address=east_peer_addr or "127.0.0.1:%d" % west_wan,
                    targets=["127.0.0.0/8"], extra=east_extra)],
        routes=[dict(name="to-west", listen="127.0.0.1:%d" % route_port,
                     peer="west", target="127.0.0.1:%d" % dest_port,
                     allow="127.0.0.0/8")])
    wc = wmgw.write_conf(
        os.path.join(work, "west.conf"), "west", certs,
        listen="127.0.0.1:%d" % west_wan, cert_name=west_cert,
        extra_site=west_site,
        peers=[dict(name="east", targets=list(west_targets),
                    extra=west_extra or [])])
    return ec, wc, route_port, dest_port, west_wan


def scenario_relay(work):
    ec, wc, route_port, dest_port, _ = start_pair(work)
    east = wmgw.Gateway(ec, work, "east").start()
    west = wmgw.Gateway(wc, work, "west").start()
    try:
        east.wait_peer("west")
        reply = pattern("return path", 300000)
        dest = Destination(dest_port, reply=reply)
        # One main stream of 24 MiB and two "multifd" streams, opened in
        # this order 100 ms apart, each tagged by its first 8 bytes.
        sizes = [24 << 20, 6 << 20, 6 << 20]
        datas = [struct.pack(">Q", i) + pattern("stream%d" % i, sizes[i] - 8)
                 for i in range(3)]
        res = [None] * 3
        ths = [threading.Thread(target=source, args=(route_port, datas[i], reply,
                                                     res, i, 0.1 * i))
               for i in range(3)]
        t0 = time.time()
        for t in ths:
            t.start()
        for t in ths:
            t.join(60)
        el = time.time() - t0
        print("relayed %.1f MiB in %.2f s" % (sum(sizes) / 2**20, el))
        time.sleep(0.3)
        by_order = sorted(dest.results, key=lambda r: r["order"])
        check(len(by_order) == 3, "destination got 3 connections")
        for i, r in enumerate(by_order):
            check(r["first"] == struct.pack(">Q", i),
                  "connection %d arrived in source order" % i)
            check(r["n"] == sizes[i] and
                  r["sha"] == hashlib.sha256(datas[i]).hexdigest(),
                  "stream %d byte-exact (%d bytes)" % (i, r["n"]))
            check(r["end"] == "eof", "stream %d ended with a clean EOF" % i)
        for i in range(3):
            check(res[i] is not None and res[i]["reply_ok"] and res[i]["end"] == "eof",
                  "return path of stream %d byte-exact after half-close" % i)
        ms = east.wait_migrations_done(1)
        check(len(ms) == 1 and ms[0]["state"] == "completed" and ms[0]["streams"] == 3,
              "east: one completed migration of 3 streams")
        m = ms[0]
        for k in ("id", "route", "state", "bytes_in", "bytes_wan", "started",
                  "elapsed_s"):
            check(k in m, "migrations[] has %s" % k)
        check(m["bytes_in"] == sum(sizes), "bytes_in counts the source's bytes")
        check(m["bytes_return"] == 3 * len(reply), "bytes_return counts the reply")
        check(m["bytes_wan"] >= sum(sizes) + 3 * len(reply), "bytes_wan at least the payload")
        p = east.peer("west")
        for k in ("name", "connected", "rtt_ms", "bytes_sent", "bytes_received"):
            check(k in p, "peers[] has %s" % k)
        check(p["bytes_sent"] >= sum(sizes), "peer bytes_sent counts the stream")
        wms = west.wait_migrations_done(1)
        check(wms[0]["direction"] == "in" and wms[0]["state"] == "completed",
              "west: one completed inbound migration")
        txt = east.status_text()
        check("to-west" in txt and "completed" in txt, "status table shows the migration")

        # 2. reset at the source reaches the destination as a reset
        dest.results.clear()
        s = socket.create_connection(("127.0.0.1", route_port))
        s.sendall(pattern("reset", 1 << 20))
        time.sleep(0.5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        deadline = time.time() + 5
        while time.time() < deadline and not dest.results:
            time.sleep(0.05)
        check(dest.results and dest.results[0]["end"] == "reset",
              "source reset reaches the destination as a reset (got %s)" %
              (dest.results[0]["end"] if dest.results else "nothing"))
        ms = east.wait_migrations_done(2)
        check(ms[0]["state"] == "failed", "the reset migration is marked failed")
        dest.close()
    finally:
        e1, e2 = east.stop(), west.stop()
    check(e1 == 0 and e2 == 0, "both daemons exit 0 on SIGTERM (%s, %s)" % (e1, e2))


def scenario_target_refused(work):
    ec, wc, route_port, dest_port, _ = start_pair(work, west_targets=("10.255.0.0/16",))
    east = wmgw.Gateway(ec, work, "east").start()
    west = wmgw.Gateway(wc, work, "west").start()
    try:
        east.wait_peer("west")
        dest = Destination(dest_port)
        res = [None]
        source(route_port, b"x" * 100000, b"", res, 0)
        check(res[0]["end"] == "reset", "source connection reset when target refused")
        time.sleep(0.3)
        check(not dest.results, "nothing connected to the refused target")
        check("is not in the targets" in west.log(), "west logs the refused target")
        ms = east.wait_migrations_done(1)
        check(ms[0]["state"] == "failed" and "not in the targets" in ms[0].get("error", ""),
              "east reports why: %s" % ms[0].get("error"))
        dest.close()
    finally:
        east.stop()
        west.stop()


def scenario_wrong_cert(work):
    # (a) west presents a certificate named "mallory": east, which dialled
    # "west", refuses the handshake.
    ec, wc, route_port, dest_port, _ = start_pair(work)
    wc = wmgw.write_conf(os.path.join(work, "mallory.conf"), "mallory",
                         os.path.join(work, "certs"),
                         listen="127.0.0.1:%d" % int(open(ec).read().split(
                             "address = 127.0.0.1:")[1].split()[0]),
                         peers=[dict(name="east", targets=["127.0.0.0/8"])])
    east = wmgw.Gateway(ec, work, "east").start()
    mal = wmgw.Gateway(wc, work, "mallory").start()
    try:
        dest = Destination(dest_port)
        time.sleep(2.0)
        check(not east.peer("west")["connected"], "east does not accept mallory as west")
        check("hostname mismatch" in east.log(), "east logs the certificate name mismatch")
        res = [None]
        source(route_port, b"y" * 5000, b"", res, 0)
        check(res[0]["end"] in ("reset", "eof") and res[0]["n"] == 0,
              "hypervisor connection refused while no valid peer")
        time.sleep(0.3)
        check(not dest.results, "no bytes relayed")
        check(mal.status()["migrations"] == [], "mallory relayed nothing")
        dest.close()
    finally:
        east.stop()
        mal.stop()
    # (b) mallory dials west, which only knows peer east.
    work2 = os.path.join(work, "b")
    os.makedirs(work2)
    ec, wc, route_port, dest_port, west_wan = start_pair(work2)
    certs = os.path.join(work2, "certs")
    mc = wmgw.write_conf(
        os.path.join(work2, "mallory.conf"), "mallory", certs,
        peers=[dict(name="west", address="127.0.0.1:%d" % west_wan)],
        routes=[dict(name="evil", listen="127.0.0.1:%d" % route_port, peer="west",
                     target="127.0.0.1:%d" % dest_port)])
    west = wmgw.Gateway(wc, work2, "west").start()
    mal = wmgw.Gateway(mc, work2, "mallory").start()
    try:
        dest = Destination(dest_port)
        time.sleep(2.0)
        check("matches no configured peer" in west.log(),
              "west logs the unknown certificate")
        check(not mal.peer("west")["connected"], "mallory never gets a tunnel")
        res = [None]
        source(route_port, b"z" * 5000, b"", res, 0)
        time.sleep(0.3)
        check(not dest.results, "no bytes relayed into west's site")
        dest.close()
    finally:
        west.stop()
        mal.stop()


def recv_end(s, timeout):
    """Reads s until it ends: 'eof', 'reset' or 'timeout'."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return "eof"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"


def kill_wan_conns(port):
    """Destroys every TCP connection to or from the WAN port (ss -K), both
    ends: what a middlebox reset or a flapping link does to the tunnel."""
    r = subprocess.run(["ss", "-K", "-t", "state", "established",
                        "( sport = :%d or dport = :%d )" % (port, port)],
                       capture_output=True, text=True)
    return max(0, len(r.stdout.strip().splitlines()) - 1)


def scenario_resume(work):
    """Every WAN connection is destroyed three times during a stream: the
    session resumes each time and the stream arrives byte-exact."""
    ec, wc, route_port, dest_port, west_wan = start_pair(
        work, east_extra=["bandwidth = 80mbit", "streams = 2"])
    east = wmgw.Gateway(ec, work, "east").start()
    west = wmgw.Gateway(wc, work, "west").start()
    try:
        east.wait_peer("west")
        reply = pattern("resume reply", 100000)
        dest = Destination(dest_port, reply=reply)
        data = pattern("resume", 40 << 20)
        res = [None]
        th = threading.Thread(target=source, args=(route_port, data, reply, res, 0))
        th.start()
        killed = []
        for t in (1.0, 1.2, 1.4):
            time.sleep(t)
            killed.append(kill_wan_conns(west_wan))
        th.join(60)
        check(min(killed) >= 1, "ss -K destroyed tunnel connections %s" % killed)
        check(res[0] is not None and res[0]["reply_ok"] and res[0]["end"] == "eof",
              "source got the whole reply after a clean end (%s)" % res[0])
        ok = (dest.results and dest.results[0]["end"] == "eof" and
              dest.results[0]["sha"] == hashlib.sha256(data).hexdigest())
        check(ok, "destination received the 40 MiB stream byte-exact across "
              "the resets (%s)" % (dest.results[0] if dest.results else "nothing"))
        p = east.peer("west")
        check(p["outages"] >= 1 and p["resumes"] >= 1 and p["connected"],
              "east counts outages and resumes (%d / %d), connected again" %
              (p["outages"], p["resumes"]))
        ms = east.wait_migrations_done(1)
        check(ms[0]["state"] == "completed", "the migration completed")
        dest.close()
    finally:
        east.stop()
        west.stop()


def scenario_codec_budget(work):
    """codec-memory bounds what all codecs of a gateway may hold: a source
    gateway past it sends the stream without the codec (and it arrives
    byte-exact); a destination gateway past it refuses the stream."""
    for side in ("east", "west"):
        d = os.path.join(work, side)
        os.makedirs(d)
        small = ["codec-memory = 1m"] if side == "east" else ["codec-memory = 100m"]
        ec, wc, route_port, dest_port, _ = start_pair(
            d, east_site=small if side == "east" else None,
            west_site=small if side == "west" else None)
        east = wmgw.Gateway(ec, d, "east").start()
        west = wmgw.Gateway(wc, d, "west").start()
        try:
            east.wait_peer("west")
            dest = Destination(dest_port, reply=b"ok")
            data = pattern("budget " + side, 2 << 20)
            res = [None]
            th = threading.Thread(target=source, args=(route_port, data, b"ok", res, 0))
            th.start()
            th.join(30)
            ms = east.wait_migrations_done(1)
            if side == "east":
                ok = (dest.results and dest.results[0]["sha"] ==
                      hashlib.sha256(data).hexdigest())
                check(ok and ms[0]["state"] == "completed" and not ms[0]["encoded"],
                      "east past its codec-memory: relayed byte-exact without "
                      "the codec (%s, encoded %s)" % (ms[0]["state"], ms[0]["encoded"]))
                check("codec-memory budget is spent" in open(east.log_path).read(),
                      "east logs why the codec was left out")
            else:
                check(res[0] is not None and res[0]["end"] == "reset" and
                      ms[0]["state"] == "failed" and
                      "codec-memory" in (ms[0].get("error") or ""),
                      "west past its codec-memory refuses the stream, the source "
                      "is reset (%s: %s)" % (ms[0]["state"], ms[0].get("error")))
            dest.close()
        finally:
            east.stop()
            west.stop()


def scenario_stalled_stream(work):
    """A destination that stops reading keeps at most its stream's window
    of the tunnel's in-flight bound, which all streams share: another
    stream of the same tunnel still moves (a fair share of the bound)."""
    # a rate makes the bound one bandwidth-delay product: ~70 KB here
    ec, wc, route_port, dest_port, _ = start_pair(
        work, west_site=["window = 8m"], east_extra=["bandwidth = 200mbit"])
    east = wmgw.Gateway(ec, work, "east").start()
    west = wmgw.Gateway(wc, work, "west").start()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", dest_port))
    lsock.listen(4)
    conns, got = [], {}

    def serve():
        c0, _ = lsock.accept()  # stream 0: accepted, never read
        conns.append(c0)
        c1, _ = lsock.accept()
        conns.append(c1)
        h, n = hashlib.sha256(), 0
        while True:
            b = c1.recv(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
        got.update(n=n, sha=h.hexdigest(), t=time.time())

    srcs = []
    try:
        east.wait_peer("west")
        threading.Thread(target=serve, daemon=True).start()
        s0 = socket.create_connection(("127.0.0.1", route_port))
        srcs.append(s0)
        stuck = pattern("stuck", 32 << 20)

        def push():
            try:
                s0.sendall(stuck)
            except OSError:  # closed at the end of the scenario
                pass
        threading.Thread(target=push, daemon=True).start()
        # until stream 0 is far over the bound (at most three times the
        # cap, the cap ~70 KB once the rate's bound is in force; the
        # measured bound before that lets it take a few MiB of its 8 MiB
        # window at once)
        deadline, p = time.time() + 20, {}

        def over(p):
            return (0 < p.get("inflight_cap_bytes", 0) < (1 << 20) and
                    p.get("inflight_bytes", 0) >
                    3 * p["inflight_cap_bytes"] + (1 << 20))
        while time.time() < deadline and not over(p):
            p = east.peer("west")
            time.sleep(0.1)
        check(over(p), "a stream whose destination reads nothing stays far over "
              "the bound (%d bytes in flight, cap %d)" % (
                  p.get("inflight_bytes", 0), p.get("inflight_cap_bytes", 0)))
        data = pattern("moves", 4 << 20)
        t0 = time.time()
        s1 = socket.create_connection(("127.0.0.1", route_port))
        srcs.append(s1)
        s1.settimeout(20)
        try:
            s1.sendall(data)
            s1.shutdown(socket.SHUT_WR)
        except OSError as e:  # starved until the idle timeout
            print("second stream: %r" % e)
        deadline = t0 + 20
        while time.time() < deadline and "n" not in got:
            time.sleep(0.05)
        check(got.get("sha") == hashlib.sha256(data).hexdigest(),
              "another stream of the tunnel still moves: 4 MiB byte-exact "
              "in %.1f s" % (got.get("t", time.time()) - t0))
    finally:
        for c in srcs + conns:
            c.close()
        lsock.close()
        east.stop()
        west.stop()


def scenario_dest_gateway_dies(work):
    """The destination's gateway is killed mid-stream: both hypervisor
    connections are reset (the restarted gateway cannot resume a session
    it never had, so the source does not wait out the resume window), and
    a second try through the restarted gateway succeeds."""
    ec, wc, route_port, dest_port, _ = start_pair(work)
    east = wmgw.Gateway(ec, work, "east").start()
    west = wmgw.Gateway(wc, work, "west").start()
    try:
        east.wait_peer("west")
        dest = Destination(dest_port)
        s = socket.create_connection(("127.0.0.1", route_port))
        s.sendall(pattern("die", 4 << 20))
        time.sleep(1.0)
        west.kill()
        deadline = time.time() + 5
        while time.time() < deadline and not dest.results:
            time.sleep(0.05)
        check(dest.results and dest.results[0]["end"] == "reset",
              "destination connection reset, not closed cleanly (%s)" %
              (dest.results[0]["end"] if dest.results else "nothing"))
        check(recv_end(s, 0.5) == "timeout",
              "the source connection waits while the session may resume")
        t0 = time.time()
        west = wmgw.Gateway(wc, work, "west").start()
        end = recv_end(s, 10)
        check(end == "reset", "source connection reset once the restarted "
              "gateway answers (%s, %.1f s)" % (end, time.time() - t0))
        ms = east.wait_migrations_done(1)
        check(ms[0]["state"] == "failed", "east marks the migration failed: %s" %
              ms[0].get("error"))
        east.wait_peer("west")
        data = pattern("second try", 2 << 20)
        res = [None]
        source(route_port, data, b"", res, 0)
        deadline = time.time() + 5
        while time.time() < deadline and len(dest.results) < 2:
            time.sleep(0.05)
        check(len(dest.results) == 2 and dest.results[1]["end"] == "eof" and
              dest.results[1]["sha"] == hashlib.sha256(data).hexdigest(),
              "a second try through the restarted gateway arrives byte-exact")
        dest.close()
    finally:
        east.stop()
        west.stop()


def scenario_operations(work):
    """--check-config, `wanmig -c`, SIGHUP reload and SIGTERM drain."""
    import signal
    import subprocess
    ec, wc, route_port, dest_port, _ = start_pair(work)
    # --check-config: a good file passes, a bad one names file, line, key
    r = subprocess.run([wmgw.binary("wanmigd"), "--check-config", ec],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "configuration OK" in r.stdout,
          "--check-config accepts the good file")
    bad = os.path.join(work, "bad.conf")
    with open(bad, "w") as f:
        f.write(open(ec).read().replace("[route to-west]", "[route to-west]\nmtu = 9000"))
    r = subprocess.run([wmgw.binary("wanmigd"), "--check-config", bad],
                       capture_output=True, text=True)
    line = [i + 1 for i, l in enumerate(open(bad)) if l.startswith("mtu")][0]
    check(r.returncode == 78 and ("bad.conf:%d: mtu:" % line) in r.stderr,
          "--check-config names file:line:key and exits 78 (%d: %s)" % (
              r.returncode, r.stderr.strip().splitlines()[0] if r.stderr else ""))
    r = subprocess.run([wmgw.binary("wanmigd"), "-c", bad], capture_output=True,
                       text=True, timeout=10)
    check(r.returncode == 78, "wanmigd refuses to start on a bad file (exit %d)" %
          r.returncode)

    east = wmgw.Gateway(ec, work, "east").start()
    west = wmgw.Gateway(wc, work, "west").start()
    try:
        east.wait_peer("west")
        r = subprocess.run([wmgw.binary("wanmig"), "-c", ec, "status", "--json"],
                           capture_output=True, text=True)
        check(r.returncode == 0 and json.loads(r.stdout)["site"] == "east",
              "wanmig -c FILE status finds the socket from the config")
        dest = Destination(dest_port, reply=b"done")
        # A slow source: 20 chunks of 256 KiB, 100 ms apart, across a reload
        # and a SIGTERM.
        s = socket.create_connection(("127.0.0.1", route_port))
        data = pattern("slow", 20 * 262144)
        new_route = free_port()
        for i in range(20):
            s.sendall(data[i * 262144:(i + 1) * 262144])
            time.sleep(0.1)
            if i == 5:
                with open(ec, "a") as f:
                    f.write("\n[route second]\nlisten = 127.0.0.1:%d\npeer = west\n"
                            "target = 127.0.0.1:%d\nallow = 127.0.0.0/8\n" % (
                                new_route, dest_port))
                east.signal(signal.SIGHUP)
            if i == 10:
                east.signal(signal.SIGTERM)
        s.shutdown(socket.SHUT_WR)
        got = s.recv(100)
        s.close()
        check(got == b"done", "the migration ran on across SIGHUP and SIGTERM")
        check("configuration reloaded" in east.log(), "SIGHUP reloaded the file")
        rc = east.proc.wait(20)
        check(rc == 0, "after SIGTERM the daemon waited for the migration and exited 0 "
              "(exit %s)" % rc)
        time.sleep(0.3)
        r = [x for x in dest.results if x["n"] == len(data)]
        check(len(r) == 1 and r[0]["sha"] == hashlib.sha256(data).hexdigest(),
              "the stream arrived byte-exact")
        check("route second: listening" in east.log(), "the reload opened the new route")
        dest.close()
    finally:
        east.stop()
        west.stop()


def main():
    work = tempfile.mkdtemp(prefix="wm-relay-")
    print("work dir", work)
    for name, fn in [("relay", scenario_relay),
                     ("target_refused", scenario_target_refused),
                     ("wrong_cert", scenario_wrong_cert),
                     ("resume", scenario_resume),
                     ("codec_budget", scenario_codec_budget),
                     ("stalled_stream", scenario_stalled_stream),
                     ("dest_gateway_dies", scenario_dest_gateway_dies),
                     ("operations", scenario_operations)]:
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        d = os.path.join(work, name)
        os.makedirs(d)
        print("== %s" % name, flush=True)
        try:
            fn(d)
        except Exception as e:  # a crash is a failure, with the logs
            check(False, "%s raised %r" % (name, e))
            for f in sorted(os.listdir(d)):
                if f.endswith(".log"):
                    print("---- %s\n%s" % (f, open(os.path.join(d, f)).read()[-4000:]))
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""test_announce.py - the destination gateway announces a migrated VM on its
site's L2 segment (RARP, gratuitous ARP, IPv6 unsolicited NA), and a failed
migration announces nothing.

Topology: tests/wanem/topo.sh (site A east, site B west, 20 ms RTT by
default) plus, inside site B, a veth pair standing for the site's L2
segment: wanmigd west sends on "wmann0" (announce-interface), an AF_PACKET
capture (this script in --capture mode, run in the namespace) records what
arrives on the other end, "wmcap0", with kernel timestamps.

  ok run:     a real QEMU migration east -> west through the gateways,
              verified (RAM identical, destination runs on); then the
              capture must hold exactly 5 rounds of 4 frames (MAC 1: RARP,
              gratuitous ARP, NA; MAC 2: RARP), VLAN 100, every byte as
              built here independently, rounds at 0/50/200/450/800 ms
              (+-20 ms), and `wanmig status --json` must say so.
  failed run: the source gateway is killed (SIGKILL) mid-migration, so
              the destination gateway sees its streams reset: no frame.

  --kill-src-qemu: the failed run, but the source QEMU is killed instead.
              Its FIN is relayed as a clean close and the destination QEMU,
              whose load fails, closes cleanly too: only the missing SHUT on
              the return path tells the destination gateway that it failed,
              and it must announce nothing.

Exit 0 pass, 1 fail, 77 skip (not root, no netns, no QEMU).
"""
import argparse
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import wmgw  # noqa: E402
import wmmig  # noqa: E402
import wmtest  # noqa: E402
from wmmig import log  # noqa: E402

TOPO = os.path.join(wmgw.SRC, "tests", "wanem", "topo.sh")
GW_IF, CAP_IF = "wmann0", "wmcap0"
VLAN = 100
MAC1, MAC2 = "52:54:00:12:34:56", "52:54:00:ab:cd:ef"
IP4, IP6 = "10.98.2.50", "fd00::50"
SCHEDULE_MS = [0, 50, 200, 450, 800]   # QEMU's defaults: 5/50/100/550
TOLERANCE_MS = 20

# ---------------------------------------------------------------- capture

SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
SO_TIMESTAMPNS = 35


def capture(ifname, out, seconds):
    """Runs inside the namespace: writes one JSON line per frame (kernel
    receive time, bytes with the 802.1Q tag put back) until SIGTERM."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((ifname, 0))
    s.settimeout(0.2)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))
    end = time.time() + seconds
    with open(out + ".tmp", "w") as f:
        print("ready", flush=True)
        while not stop[0] and time.time() < end:
            try:
                data, anc, _, addr = s.recvmsg(65536, 1024)
            except socket.timeout:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            ts, tci = None, None
            for lvl, typ, val in anc:
                if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", val[:16])
                    ts = sec + nsec / 1e9
                elif lvl == SOL_PACKET and typ == PACKET_AUXDATA:
                    (status, _l, _s, _m, _n, vtci,
                     vtpid) = struct.unpack("IIIHHHH", val[:20])
                    if status & TP_STATUS_VLAN_VALID:
                        tci = (vtci, vtpid or 0x8100)
            if tci is not None:   # the kernel moved the tag into auxdata
                data = (data[:12] + struct.pack("!HH", tci[1], tci[0]) +
                        data[12:])
            f.write(json.dumps({"t": ts or time.time(), "hex": data.hex()})
                    + "\n")
            f.flush()
    os.rename(out + ".tmp", out)
    return 0


class Capture:
    def __init__(self, ns, out):
        self.out = out
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
             "--capture", CAP_IF, out, "--seconds", "300"],
            stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("capture did not start")

    def frames(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        with open(self.out) as f:
            return [json.loads(line) for line in f if line.strip()]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------- expected frames

def mac_bytes(m):
    return bytes(int(x, 16) for x in m.split(":"))


def eth(dst, src, ethertype):
    return dst + src + struct.pack("!HH", 0x8100, VLAN) + struct.pack(
        "!H", ethertype)


def pad60(b):
    return b + bytes(max(0, 60 - len(b)))


def want_rarp(mac):
    m = mac_bytes(mac)
    return pad60(eth(b"\xff" * 6, m, 0x8035) + struct.pack(
        "!HHBBH", 1, 0x0800, 6, 4, 3) + m + bytes(4) + m + bytes(4))


def want_garp(mac, ip):
    m, a = mac_bytes(mac), ipaddress.IPv4Address(ip).packed
    return pad60(eth(b"\xff" * 6, m, 0x0806) + struct.pack(
        "!HHBBH", 1, 0x0800, 6, 4, 1) + m + a + bytes(6) + a)


def want_na(mac, ip):
    m, a = mac_bytes(mac), ipaddress.IPv6Address(ip).packed
    dst = ipaddress.IPv6Address("ff02::1").packed
    body = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + a + bytes([2, 1]) + m
    pseudo = a + dst + struct.pack("!I", len(body)) + bytes([0, 0, 0, 58])
    s = sum(struct.unpack("!%dH" % ((len(pseudo) + len(body)) // 2),
                          pseudo + body))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    body = body[:2] + struct.pack("!H", ~s & 0xffff) + body[4:]
    ip6 = struct.pack("!IHBB", 0x60000000, len(body), 58, 255) + a + dst
    return eth(b"\x33\x33\x00\x00\x00\x01", m, 0x86dd) + ip6 + body


def want_round():
    return [want_rarp(MAC1), want_garp(MAC1, IP4), want_na(MAC1, IP6),
            want_rarp(MAC2)]


def ours(frames):
    """Frames whose Ethernet source is one of the VM's MACs."""
    srcs = {mac_bytes(MAC1).hex(), mac_bytes(MAC2).hex()}
    return [f for f in frames if f["hex"][12:24] in srcs]


def check_frames(frames):
    """Returns (ok, message, measured round offsets in ms)."""
    rounds = len(SCHEDULE_MS)
    per = want_round()
    if len(frames) != rounds * len(per):
        return False, "captured %d frames, want %d" % (
            len(frames), rounds * len(per)), []
    for i, f in enumerate(frames):
        want = per[i % len(per)]
        got = bytes.fromhex(f["hex"])
        if got != want:
            return False, "frame %d differs:\n got  %s\n want %s" % (
                i, got.hex(), want.hex()), []
    starts = [frames[r * len(per)]["t"] for r in range(rounds)]
    offs = [(t - starts[0]) * 1000.0 for t in starts]
    for r in range(rounds):
        # The frames of a round leave together.
        span = (frames[r * len(per) + len(per) - 1]["t"] - starts[r]) * 1000
        if span > 5:
            return False, "round %d spread over %.1f ms" % (r, span), offs
        if abs(offs[r] - SCHEDULE_MS[r]) > TOLERANCE_MS:
            return False, "round %d at %.1f ms, want %d +- %d" % (
                r, offs[r], SCHEDULE_MS[r], TOLERANCE_MS), offs
    return True, "%d frames, every byte as expected" % len(frames), offs


# ------------------------------------------------------------- scenario

class Topo:
    def __init__(self, rtt_ms):
        self.env = dict(os.environ, WM_NS_PREFIX="wma%d" % (os.getpid() % 100000),
                        WANEM_DELAY_MS=str(rtt_ms / 2.0), WANEM_RATE="250mbit",
                        WANEM_BIN=os.path.join(wmgw.BUILD, "wanem"))
        p = self.env["WM_NS_PREFIX"]
        self.a, self.b = p + "a", p + "b"

    def up(self):
        subprocess.run([TOPO, "up"], env=self.env, check=True,
                       capture_output=True, text=True)
        for cmd in (["link", "add", GW_IF, "type", "veth", "peer", "name", CAP_IF],
                    ["link", "set", GW_IF, "up"], ["link", "set", CAP_IF, "up"]):
            subprocess.run(["ip", "-n", self.b] + cmd, check=True)

    def down(self):
        subprocess.run([TOPO, "down"], env=self.env)


def write_confs(work):
    certs = work
    wmgw.mkcerts(certs, "east", "west")
    ec = wmgw.write_conf(
        os.path.join(work, "east.conf"), "east", certs,
        listen="10.99.0.1:7800",
        peers=[dict(name="west", address="10.99.0.2:7800")],
        routes=[dict(name="to-west", listen="10.98.1.1:4444", peer="west",
                     target="10.98.2.10:4444", allow="10.98.1.0/24")])
    wc = wmgw.write_conf(
        os.path.join(work, "west.conf"), "west", certs,
        listen="10.99.0.2:7800",
        peers=[dict(name="east", targets=["10.98.2.0/24"])],
        extra_site=["announce-interface = %s" % GW_IF,
                    "announce-vlan = %d" % VLAN])
    with open(wc, "a") as f:
        f.write("\n[announce to-west]\npeer = east\nmac = %s\nip = %s\n"
                "ip = %s\nmac = %s\n" % (MAC1, IP4, IP6, MAC2))
    return ec, wc


def gateways(topo, work):
    ec, wc = write_confs(work)
    east = wmgw.Gateway(ec, work, "east", netns=topo.a).start()
    west = wmgw.Gateway(wc, work, "west", netns=topo.b).start()
    east.wait_peer("west", 30)
    return east, west


def run_ok(topo, gdir, work):
    east, west = gateways(topo, work)
    cap = None
    try:
        src, dst = wmmig.boot_pair(gdir, os.path.join(work, "ok"),
                                   "tcp:10.98.2.10:4444", topo.a, topo.b,
                                   fill=32, wss=8, rate=2000)
        with src, dst:
            src.wait_serial(r"wm-ready", 120)
            wmmig.configure(src, dst, bw_bytes=1024 << 20)
            cap = Capture(topo.b, os.path.join(work, "ok.frames"))
            fig = wmmig.migrate(src, dst, "tcp:10.98.1.1:4444", timeout=120)
            log("migration: %s" % wmmig.describe(fig))
            if fig["status"] != "completed":
                return False
            wm = west.wait_migrations_done(1, 30)[0]
            deadline = time.time() + 10
            while (wm.get("announce", {}).get("state") == "sending"
                   and time.time() < deadline):
                time.sleep(0.2)
                wm = west.migrations()[0]
            time.sleep(0.3)
            frames = ours(cap.frames())
            ok, msg, offs = check_frames(frames)
            log(("" if ok else "FAIL: ") + "capture: " + msg)
            log("rounds at %s ms (schedule %s, tolerance %d ms)" % (
                ", ".join("%.1f" % o for o in offs), SCHEDULE_MS, TOLERANCE_MS))
            an = wm.get("announce")
            log("west status announce: %s" % json.dumps(an))
            print(west.status_text(), flush=True)
            want = dict(state="done", interface=GW_IF, vlan=VLAN,
                        macs=[MAC1, MAC2], addresses=[IP4, IP6], rounds=5,
                        rounds_sent=5, frames_sent=20, send_errors=0)
            if wm["state"] != "completed" or an is None or any(
                    an.get(k) != v for k, v in want.items()) or \
                    "first" not in an or "last" not in an:
                log("FAIL: status does not report the announcement: %s" % an)
                ok = False
            m_ok, m_msg = wmmig.verify(src, dst, os.path.join(work, "ok"))
            log(("" if m_ok else "FAIL: ") + m_msg)
            return ok and m_ok
    finally:
        if cap:
            cap.kill()
        east.stop()
        west.stop()


def run_failed(topo, gdir, work, kill="gateway"):
    east, west = gateways(topo, work)
    cap = None
    try:
        src, dst = wmmig.boot_pair(gdir, os.path.join(work, "fail"),
                                   "tcp:10.98.2.10:4444", topo.a, topo.b,
                                   fill=32, wss=8, rate=2000)
        with src, dst:
            src.wait_serial(r"wm-ready", 120)
            # Slow enough that the kill lands mid-stream.
            wmmig.configure(src, dst, bw_bytes=4 << 20)
            cap = Capture(topo.b, os.path.join(work, "fail.frames"))
            src.migrate("tcp:10.98.1.1:4444")
            time.sleep(2.5)
            if kill == "gateway":
                east.kill()
                log("killed the source gateway (SIGKILL) mid-migration")
            else:
                src.kill()
                log("killed the source QEMU (SIGKILL) mid-migration")
                info = {"status": "failed"}
            if kill == "gateway":
                info = src.wait_migration(60)
            # A killed source gateway leaves west's session waiting for
            # its resume window (30 s) before the migration fails there.
            wm = west.wait_migrations_done(1, 60)[0]
            time.sleep(1.5)   # a whole default schedule (800 ms) and more
            frames = ours(cap.frames())
            log("source QEMU: %s; west: migration %s (%s); %d frames "
                "captured" % (info["status"], wm["state"], wm.get("error"),
                              len(frames)))
            ok = (info["status"] == "failed" and wm["state"] == "failed" and
                  "announce" not in wm and not frames)
            if not ok:
                log("FAIL: a failed migration must announce nothing")
            return ok
    finally:
        if cap:
            cap.kill()
        east.stop()
        west.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", nargs=2, metavar=("IFNAME", "OUT"))
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--rtt-ms", type=float, default=20)
    ap.add_argument("--kill-src-qemu", action="store_true",
                    help="only the failed run, killing the source QEMU")
    opts = ap.parse_args()
    if opts.capture:
        return capture(opts.capture[0], opts.capture[1], opts.seconds)
    why = wmtest.skip_netns_qemu()
    if why:
        print("SKIP: " + why)
        return 77
    gdir = wmtest.guest_dir()
    work = tempfile.mkdtemp(prefix="wm-ann-")
    topo = Topo(opts.rtt_ms)
    log("work dir %s; sites %s and %s (%s ms RTT), segment %s <-> %s in %s"
        % (work, topo.a, topo.b, opts.rtt_ms, GW_IF, CAP_IF, topo.b))
    ok = False
    try:
        topo.up()
        t0 = time.time()
        if opts.kill_src_qemu:
            ok = run_failed(topo, gdir, work, kill="qemu")
            return 0 if ok else 1
        ok = run_ok(topo, gdir, work)
        log("ok run: %s (%.0f s)" % ("PASS" if ok else "FAIL", time.time() - t0))
        t0 = time.time()
        failed_ok = run_failed(topo, gdir, work)
        log("failed run: %s (%.0f s)" % ("PASS" if failed_ok else "FAIL",
                                         time.time() - t0))
        ok = ok and failed_ok
        for f in ("east.log", "west.log"):
            text = open(os.path.join(work, f), errors="replace").read()
            if "Sanitizer" in text:
                log("FAIL: sanitizer report in %s" % f)
                ok = False
    except Exception as e:
        log("FAIL: %r" % e)
        ok = False
    finally:
        topo.down()
    wmgw.finish(work, ok, tail=4000)
    log("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

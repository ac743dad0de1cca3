#!/usr/bin/env python3
"""test_faults.py - live migrations of a real guest across the emulated
150 ms WAN (tests/wanem/topo.sh) through two real wanmigd, with faults
injected; each outcome is verified by RAM comparison or by the source VM
still running.

Scenarios (one per run, named on the command line):
  outage      every WAN TCP connection is destroyed (ss -K in site A) and
              the link then stays down for 10 s: the migration completes,
              RAM identical. The same fault on a direct QEMU-to-QEMU
              migration kills it: shown side by side.
  window      the link is cut for longer than the resume window (4 s
              here): the migration fails, the source VM runs on.
  killgw      the destination gateway is SIGKILLed mid-migration: the
              destination QEMU fails, the source VM runs on; a second try
              after restarting the gateway completes, RAM identical.
  corrupt     a bit is flipped in one DATA frame inside the source gateway
              after its checksum (WANMIGD_FAULT_CORRUPT, a test-only
              knob): detected, the migration fails, the source VM runs,
              the destination never resumes.
  serve       during a real migration, another route gets garbage, a half
              stream and an idle connection: those are cut with clean
              errors (idle-timeout 3 s), the daemon keeps serving and the
              real migration completes, RAM identical.
  concurrent  five migrations on five routes at once; one source QEMU is
              killed: the four others complete, all verified, the killed
              one fails alone.

The migrations are slowed with QEMU's max-bandwidth so that the faults
land mid-stream. Exit 0 pass, 1 fail, 77 skip (not root, no netns, no
QEMU).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import wmgw  # noqa: E402
import wmmig  # noqa: E402
import wmtest  # noqa: E402
from test_wan import Topo  # noqa: E402
from wmmig import log  # noqa: E402

FAILS = []
RAM_KIB = 196600       # 192 MiB - 8 KiB (see wmtest.DEFAULT_RAM_KIB)
FILL, WSS, RATE = 48, 4, 1000
SLOW_BPS = 6 << 20     # QEMU max-bandwidth: ~20 s for the whole guest


def check(cond, what):
    log("%s: %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        FAILS.append(what)
    return cond


class Site:
    """The pair of gateways with the example configs, adapted."""

    def __init__(self, topo, work, east_extra=(), west_extra=(),
                 east_routes="", east_env=None):
        self.topo, self.work = topo, work
        wmgw.mkcerts(work, "east", "west")
        self.confs = {}
        for site, extra in (("east", east_extra), ("west", west_extra)):
            text = open(os.path.join(wmgw.SRC, "conf", "examples",
                                     site + ".conf")).read()
            text = text.replace("/run/wanmig/%s.sock" % site,
                                os.path.join(work, site + ".sock"))
            # peer keys: replace the example's line, or add after [peer]
            peer = "[peer %s]\n" % ("west" if site == "east" else "east")
            for kv in extra:
                key = kv.split("=")[0].strip()
                new, n = re.subn(r"(?m)^%s = .*$" % re.escape(key), kv, text)
                text = new if n else text.replace(peer, peer + kv + "\n")
            if site == "east":
                text += east_routes
            self.confs[site] = os.path.join(work, site + ".conf")
            with open(self.confs[site], "w") as f:
                f.write(text)
        self.east = wmgw.Gateway(self.confs["east"], work, "east",
                                 netns=topo.a, env=east_env)
        self.west = wmgw.Gateway(self.confs["west"], work, "west",
                                 netns=topo.b)

    def start(self):
        self.east.start()
        self.west.start()
        self.east.wait_peer("west", 30)
        return self

    def stop(self):
        self.east.stop()
        self.west.stop()


def boot(work, name, incoming=None, ns=None, **kw):
    kw.setdefault("fill", FILL)
    kw.setdefault("wss", WSS)
    kw.setdefault("rate", RATE)
    return wmtest.Qemu(name=name, netns=ns, incoming=incoming, hb=200,
                       ram_kib=RAM_KIB, tmpdir=os.path.join(work, name), **kw)


def prepare(src, dst, bw=SLOW_BPS):
    src.wait_serial(r"wm-ready", 180)
    wmmig.configure(src, dst, bw_bytes=bw)


def wait_transferred(src, nbytes, timeout=120):
    """Waits until the source sent nbytes of RAM; returns its status."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = src.query_migrate()
        if info.get("status") != "active" and info.get("status") != "setup":
            return info.get("status")
        if info.get("ram", {}).get("transferred", 0) >= nbytes:
            return "active"
        time.sleep(0.1)
    return "timeout"


def pair(work, topo, direct=False, prefix=""):
    """A source in site A and a destination in site B, listening where
    the gateways' route delivers (or, direct, on the WAN address)."""
    incoming = "tcp:10.99.0.2:4445" if direct else "tcp:10.98.2.10:4444"
    return (boot(work, prefix + "src", ns=topo.a),
            boot(work, prefix + "dst", incoming, topo.b))


def start(src, dst, after=30 << 20, bw=SLOW_BPS, direct=False):
    """Starts the migration (through the gateways unless direct) and waits
    until `after` bytes went; returns the source's status then."""
    prepare(src, dst, bw)
    src.migrate("tcp:10.99.0.2:4445" if direct else "tcp:10.98.1.1:4444")
    return wait_transferred(src, after) if after else "active"


def wait_end(q, timeout):
    try:
        return q.wait_migration(timeout)
    except TimeoutError as e:
        return e.last


def kill_wan(ns, port):
    """Destroys every established TCP connection to or from port in
    namespace ns (ss -K); returns how many sockets went."""
    r = subprocess.run(["ip", "netns", "exec", ns, "ss", "-K", "-t", "state",
                        "established", "( sport = :%d or dport = :%d )"
                        % (port, port)], capture_output=True, text=True)
    return max(0, len(r.stdout.strip().splitlines()) - 1)


def source_runs(src):
    """The source VM is running and its workload still beats."""
    hb = src.last_heartbeat()
    try:
        src.wait_serial(r"wm-heartbeat (\d+)", 10, start=src.serial_size())
    except TimeoutError:
        return False
    return src.status()["running"] and src.last_heartbeat() > hb


def dest_failed(dst, timeout=30):
    """The destination QEMU did not take the stream: it exited, or its
    incoming migration failed; it never resumed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if dst.proc.poll() is not None:
            return True, "exited with %d" % dst.proc.returncode
        try:
            st = dst.query_migrate().get("status")
            if st == "failed":
                return not dst.status()["running"], "incoming migration failed"
        except Exception as e:  # QMP gone with the process
            try:
                dst.proc.wait(5)
                return True, "exited with %d" % dst.proc.returncode
            except subprocess.TimeoutExpired:
                return False, "QMP error %r" % e
        time.sleep(0.2)
    return False, "still waiting for the stream"


def verified(src, dst, work, what):
    ok, msg = wmmig.verify(src, dst, work)
    return check(ok, "%s: %s" % (what, msg))


# ---- scenarios -------------------------------------------------------------

def outage_fault(topo, port, down_s):
    k = kill_wan(topo.a, port)
    topo._run("link-down")
    log("fault: ss -K destroyed %d socket(s) on port %d; link down for %d s"
        % (k, port, down_s))
    time.sleep(down_s)
    topo._run("link-up")
    log("fault: link up again")
    return k


def scenario_outage(topo, work):
    site = Site(topo, work).start()
    try:
        src, dst = pair(work, topo)
        with src, dst:
            check(start(src, dst) == "active", "migration under way (30 MB sent)")
            k = outage_fault(topo, 7800, 10)
            check(k >= 1, "the tunnel's TCP connections were destroyed (%d)" % k)
            info = wait_end(src, 240)
            p = site.east.peer("west")
            check(info.get("status") == "completed",
                  "through the gateways: the migration completed after the "
                  "outage (%.1f s in all; %s)" % (info.get("total-time", 0) / 1000.0,
                                                  info.get("error-desc", "")))
            check(p["outages"] >= 1 and p["resumes"] >= 1,
                  "east saw %d outage(s) and %d resume(s), resent %.1f MB"
                  % (p["outages"], p["resumes"], p["bytes_resent"] / 1e6))
            if info.get("status") == "completed":
                dst.qmp.wait_event("MIGRATION", 60,
                                   pred=lambda e: e["data"]["status"] == "completed")
                verified(src, dst, os.path.join(work, "dst"), "gateways")
    finally:
        site.stop()
    # The contrast: the same fault on a direct QEMU-to-QEMU migration.
    src, dst = pair(work, topo, direct=True, prefix="d")
    with src, dst:
        start(src, dst, direct=True)
        outage_fault(topo, 4445, 10)
        info = wait_end(src, 120)
        check(info.get("status") == "failed",
              "direct QEMU to QEMU: the same fault fails the migration (%s: %s)"
              % (info.get("status"), info.get("error-desc", "")))
        check(source_runs(src), "direct: the source VM runs on")


def scenario_window(topo, work):
    site = Site(topo, work, east_extra=["resume-window = 4s"],
                west_extra=["resume-window = 4s"]).start()
    try:
        src, dst = pair(work, topo)
        with src, dst:
            start(src, dst)
            t0 = time.time()
            kill_wan(topo.a, 7800)
            topo._run("link-down")
            info = wait_end(src, 30)
            el = time.time() - t0
            topo._run("link-up")
            check(info.get("status") == "failed",
                  "link down past the 4 s resume window: the migration fails "
                  "after %.1f s (%s)" % (el, info.get("error-desc", "")))
            check(source_runs(src), "the source VM runs on")
            ok, how = dest_failed(dst)
            check(ok, "the destination never resumes (%s)" % how)
            ms = site.east.wait_migrations_done(1, 30)
            check(ms[0]["state"] == "failed" and "resume window" in ms[0]["error"],
                  "east reports why: %s" % ms[0]["error"])
    finally:
        site.stop()


def scenario_killgw(topo, work):
    site = Site(topo, work).start()
    try:
        src, dst = pair(work, topo)
        with src:
            with dst:
                start(src, dst)
                site.west.kill()
                log("fault: west gateway killed (SIGKILL)")
                ok, how = dest_failed(dst)
                check(ok, "the destination QEMU fails (%s)" % how)
                time.sleep(2)
                site.west.start()
                log("west gateway restarted")
                info = wait_end(src, 60)
                check(info.get("status") == "failed",
                      "the source's migration fails once the restarted "
                      "gateway answers (%s)" % info.get("error-desc", ""))
                check(source_runs(src), "the source VM runs on")
            site.east.wait_peer("west", 30)
            dst2 = boot(work, "dst2", "tcp:10.98.2.10:4444", topo.b)
            with dst2:
                wmmig.configure(src, dst2, bw_bytes=64 << 20)
                fig = wmmig.migrate(src, dst2, "tcp:10.98.1.1:4444", timeout=240)
                check(fig["status"] == "completed",
                      "second try: %s" % wmmig.describe(fig))
                if fig["status"] == "completed":
                    verified(src, dst2, os.path.join(work, "dst2"), "second try")
    finally:
        site.stop()


def scenario_corrupt(topo, work):
    # DATA frames carry up to 64 KiB: frame 400 is ~25 MB into the stream.
    site = Site(topo, work, east_env={"WANMIGD_FAULT_CORRUPT": "400"}).start()
    try:
        src, dst = pair(work, topo)
        with src, dst:
            start(src, dst, after=0, bw=64 << 20)
            info = wait_end(src, 120)
            check(info.get("status") == "failed",
                  "a flipped bit inside the tunnel fails the migration (%s)"
                  % info.get("error-desc", ""))
            check(source_runs(src), "the source VM runs on")
            ok, how = dest_failed(dst)
            check(ok and not dst.qmp.find_events("RESUME"),
                  "nothing resumes at the destination (%s)" % how)
            check("checksum" in site.west.log(),
                  "west logs the checksum mismatch")
            ms = site.east.wait_migrations_done(1, 30)
            check(ms[0]["state"] == "failed" and "checksum" in ms[0]["error"],
                  "east reports why: %s" % ms[0]["error"])
    finally:
        site.stop()


JUNK_SINK = r"""
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.98.2.1", 5555)); s.listen(16)
print("listening", flush=True)
def serve(c):
    n = 0
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            n += len(b)
        end = "eof"
    except OSError:
        end = "reset"
    c.close()
    print("sink %d %s" % (n, end), flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

JUNK_CLIENTS = r"""
import os, socket, threading, time
res = {}
SRC = {"garbage": "10.98.1.21", "half": "10.98.1.22", "idle": "10.98.1.23"}
def run(kind):
    # each from its own address: a route groups one host's connections
    s = socket.create_connection(("10.98.1.1", 4446), timeout=30,
                                 source_address=(SRC[kind], 0))
    t0 = time.time()
    try:
        if kind == "garbage":
            s.sendall(os.urandom(1 << 20)); s.shutdown(socket.SHUT_WR)
        elif kind == "half":
            s.sendall(b"QEVM\0\0\0\3" + os.urandom(200000))
        while s.recv(65536):
            pass
        end = "eof"
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    res[kind] = "%s after %.1f s" % (end, time.time() - t0)
ths = [threading.Thread(target=run, args=(k,)) for k in ("garbage", "half", "idle")]
for t in ths: t.start()
for t in ths: t.join()
for k in ("garbage", "half", "idle"): print(k, res[k], flush=True)
"""


def scenario_serve(topo, work):
    routes = ("\n[route junk]\nlisten = 10.98.1.1:4446\npeer = west\n"
              "target = 10.98.2.1:5555\nallow = 10.98.1.0/24\n"
              "idle-timeout = 3s\n")
    site = Site(topo, work, east_routes=routes).start()
    sink = subprocess.Popen(["ip", "netns", "exec", topo.b, "python3", "-c",
                             JUNK_SINK], stdout=subprocess.PIPE, text=True)
    try:
        sink.stdout.readline()
        dev = subprocess.run(["ip", "-n", topo.a, "-o", "-4", "addr", "show"],
                             capture_output=True, text=True).stdout
        dev = [ln.split()[1] for ln in dev.splitlines() if " 10.98.1.1/" in ln][0]
        for a in ("10.98.1.21", "10.98.1.22", "10.98.1.23"):
            subprocess.run(["ip", "-n", topo.a, "addr", "add", a + "/32",
                            "dev", dev], check=True)
        src, dst = pair(work, topo)
        with src, dst:
            start(src, dst, after=10 << 20)
            r = subprocess.run(["ip", "netns", "exec", topo.a, "python3", "-c",
                                JUNK_CLIENTS], capture_output=True, text=True,
                               timeout=60)
            res = dict(line.split(" ", 1) for line in r.stdout.splitlines())
            log("junk route: %s" % res)
            check(res.get("garbage", "").startswith("eof"),
                  "garbage: relayed, closed cleanly (%s)" % res.get("garbage"))
            check(res.get("half", "").startswith("reset"),
                  "half stream: reset by the idle timeout (%s)" % res.get("half"))
            check(res.get("idle", "").startswith("reset"),
                  "idle connection: reset by the idle timeout (%s)" % res.get("idle"))
            info = wait_end(src, 240)
            check(info.get("status") == "completed",
                  "the real migration completed meanwhile (%s)"
                  % info.get("error-desc", ""))
            if info.get("status") == "completed":
                dst.qmp.wait_event("MIGRATION", 60,
                                   pred=lambda e: e["data"]["status"] == "completed")
                verified(src, dst, os.path.join(work, "dst"), "real migration")
            junk = [m for m in site.east.migrations() if m["route"] == "junk"]
            errs = [m.get("error", "") for m in junk if m["state"] == "failed"]
            check(len(junk) == 3 and len(errs) == 2 and
                  all("idle-timeout" in e for e in errs),
                  "east: 3 junk migrations, the 2 stuck ones failed: %s" % errs)
    finally:
        sink.kill()
        site.stop()


def scenario_concurrent(topo, work):
    n = 5
    routes = "".join(
        "\n[route vm%d]\nlisten = 10.98.1.1:%d\npeer = west\n"
        "target = 10.98.2.10:%d\nallow = 10.98.1.0/24\n" % (i, 4451 + i, 4451 + i)
        for i in range(n))
    site = Site(topo, work, east_routes=routes).start()
    pairs = []
    try:
        for i in range(n):
            pairs.append((boot(work, "src%d" % i, ns=topo.a, fill=16, rate=200),
                          boot(work, "dst%d" % i, "tcp:10.98.2.10:%d" % (4451 + i),
                               topo.b, fill=16, rate=200)))
        for s, d in pairs:
            prepare(s, d, bw=4 << 20)
        for i, (s, d) in enumerate(pairs):
            s.migrate("tcp:10.98.1.1:%d" % (4451 + i))
        victim = pairs[2][0]
        wait_transferred(victim, 8 << 20)
        victim.kill()
        log("fault: source QEMU of vm2 killed mid-migration")
        for i, (s, d) in enumerate(pairs):
            if i == 2:
                ok, how = dest_failed(d)
                check(ok, "vm2: the destination fails (%s)" % how)
                continue
            info = wait_end(s, 300)
            check(info.get("status") == "completed",
                  "vm%d: completed (%s)" % (i, info.get("error-desc", "")))
            if info.get("status") == "completed":
                d.qmp.wait_event("MIGRATION", 60,
                                 pred=lambda e: e["data"]["status"] == "completed")
                verified(s, d, os.path.join(work, "dst%d" % i), "vm%d" % i)
        ms = {m["route"]: m for m in site.east.wait_migrations_done(n, 60)}
        check(ms["vm2"]["state"] == "failed" and
              all(ms["vm%d" % i]["state"] == "completed" for i in (0, 1, 3, 4)),
              "east: vm2 failed (%s), the four others completed"
              % ms["vm2"].get("error"))
    finally:
        for s, d in pairs:
            s.kill()
            d.kill()
        site.stop()


SCENARIOS = dict(outage=scenario_outage, window=scenario_window,
                 killgw=scenario_killgw, corrupt=scenario_corrupt,
                 serve=scenario_serve, concurrent=scenario_concurrent)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    opts = ap.parse_args()
    why = wmtest.skip_netns_qemu()
    if why:
        print("SKIP: " + why)
        return 77
    work = tempfile.mkdtemp(prefix="wm-faults-")
    topo = Topo(150, "250mbit", 0)
    log("%s: work dir %s; sites %s and %s joined by wanem (150 ms, 250 Mbit/s)"
        % (opts.scenario, work, topo.a, topo.b))
    try:
        topo.up()
        SCENARIOS[opts.scenario](topo, work)
    except Exception as e:
        check(False, "%s raised %r" % (opts.scenario, e))
    finally:
        topo.down()
    ok = not FAILS
    wmgw.finish(work, ok)
    log("PASS" if ok else "FAIL (%d)" % len(FAILS))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

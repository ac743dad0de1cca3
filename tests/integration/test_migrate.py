#!/usr/bin/env python3
"""test_migrate.py - real QEMU live migrations through two real wanmigd.

  test_migrate.py [--multifd N]    source QEMU -> wanmigd east -> TLS ->
                                   wanmigd west -> destination QEMU (-S),
                                   with return-path; RAM compared with
                                   pmemsave on both paused sides, then the
                                   destination must run on.
  test_migrate.py --kill-dest-gw   the destination gateway is killed
                                   (SIGKILL) mid-migration: the destination
                                   QEMU's load fails, the source VM runs on.

Everything on loopback; the emulated-WAN runs are in test_wan.py.
Exit 0 pass, 1 fail, 77 skip (no QEMU).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import wmgw  # noqa: E402
import wmmig  # noqa: E402
import wmtest  # noqa: E402
from wmmig import log  # noqa: E402


def gateways(work, west_env=None):
    p = [wmtest.free_port() for _ in range(4)]
    east_wan, west_wan, route, dest = p
    certs = os.path.join(work, "certs")
    wmgw.mkcerts(certs, "east", "west")
    ec = wmgw.write_conf(
        os.path.join(work, "east.conf"), "east", certs,
        listen="127.0.0.1:%d" % east_wan,
        peers=[dict(name="west", address="127.0.0.1:%d" % west_wan)],
        routes=[dict(name="to-west", listen="127.0.0.1:%d" % route, peer="west",
                     target="127.0.0.1:%d" % dest, allow="127.0.0.0/8")])
    wc = wmgw.write_conf(
        os.path.join(work, "west.conf"), "west", certs,
        listen="127.0.0.1:%d" % west_wan,
        peers=[dict(name="east", targets=["127.0.0.0/8"])])
    east = wmgw.Gateway(ec, work, "east").start()
    west = wmgw.Gateway(wc, work, "west", env=west_env).start()
    east.wait_peer("west")
    return east, west, route, dest


def run_ok(opts, gdir, work):
    east, west, route, dest = gateways(work)
    try:
        src, dst = wmmig.boot_pair(gdir, work, "tcp:127.0.0.1:%d" % dest)
        with src, dst:
            src.wait_serial(r"wm-ready", 120)
            wmmig.configure(src, dst, multifd=opts.multifd, bw_bytes=64 << 20)
            fig = wmmig.migrate(src, dst, "tcp:127.0.0.1:%d" % route)
            log("migration: %s" % wmmig.describe(fig))
            if fig["status"] != "completed":
                log("FAIL: migration %s" % fig["status"])
                return 1
            ms = east.wait_migrations_done(1)
            m = ms[0]
            log("east status: %s" % {k: m[k] for k in (
                "state", "streams", "bytes_in", "bytes_return", "bytes_wan")})
            want_streams = 1 + opts.multifd
            if m["state"] != "completed" or m["streams"] != want_streams:
                log("FAIL: gateway reports %s with %d streams, want completed "
                    "with %d" % (m["state"], m["streams"], want_streams))
                return 1
            if m["bytes_in"] < fig["qemu_bytes"]:
                log("FAIL: gateway relayed less than QEMU sent")
                return 1
            wm = west.wait_migrations_done(1)[0]
            if wm["state"] != "completed" or wm["bytes_in"] != m["bytes_in"]:
                log("FAIL: west delivered %d bytes (%s), east took %d" % (
                    wm["bytes_in"], wm["state"], m["bytes_in"]))
                return 1
            ok, msg = wmmig.verify(src, dst, work)
            log(("" if ok else "FAIL: ") + msg)
            print(east.status_text())
            return 0 if ok else 1
    finally:
        east.stop()
        west.stop()


def run_kill(opts, gdir, work):
    """The destination gateway is killed mid-migration (--kill-dest-gw), or
    its decoder's caches go bad (--fault-decoder): either way the source
    fails and runs on, the destination QEMU never resumes."""
    env = None
    if opts.fault_decoder:
        env = dict(os.environ, WANMIGD_FAULT_DECODER="40")
    east, west, route, dest = gateways(work, west_env=env)
    try:
        src, dst = wmmig.boot_pair(gdir, work, "tcp:127.0.0.1:%d" % dest)
        with src, dst:
            src.wait_serial(r"wm-ready", 120)
            # Slow enough that the kill lands mid-stream.
            wmmig.configure(src, dst, multifd=opts.multifd,
                            bw_bytes=(64 if opts.fault_decoder else 8) << 20)
            src.migrate("tcp:127.0.0.1:%d" % route)
            if not opts.fault_decoder:
                time.sleep(3.0)
                west.kill()
                log("killed the destination gateway (SIGKILL)")
            info = src.wait_migration(60)
            log("source migration: %s" % info["status"])
            hb0 = src.last_heartbeat()
            st = src.status()
            src.wait_serial(r"wm-heartbeat", 10)
            time.sleep(1.0)
            hb1 = src.last_heartbeat()
            deadline = time.time() + 30
            while time.time() < deadline and dst.proc.poll() is None:
                time.sleep(0.1)
            dst_rc = dst.proc.poll()
            log("source VM %s (heartbeat %d -> %d); destination QEMU exit %s"
                % (st["status"], hb0, hb1, dst_rc))
            ok = (info["status"] == "failed" and st["running"] and hb1 > hb0 and
                  dst_rc not in (None, 0))
            m = east.wait_migrations_done(1)[0]
            log("east: migration %s: %s" % (m["state"], m.get("error")))
            ok = ok and m["state"] == "failed"
            if opts.fault_decoder:
                why = m.get("error") or ""
                ok = ok and "checksum mismatch" in why
                wm = west.wait_migrations_done(1)[0]
                log("west: migration %s: %s" % (wm["state"], wm.get("error")))
                ok = ok and wm["state"] == "failed" and not wm.get("confirmed")
            log("PASS" if ok else "FAIL")
            return 0 if ok else 1
    finally:
        east.stop()
        west.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--multifd", type=int, default=0)
    ap.add_argument("--kill-dest-gw", action="store_true")
    ap.add_argument("--fault-decoder", action="store_true",
                    help="the destination gateway's decoder caches go bad")
    opts = ap.parse_args()
    if shutil.which(wmtest.qemu_binary()) is None:
        print("SKIP: no QEMU")
        return 77
    gdir = wmtest.guest_dir()
    work = tempfile.mkdtemp(prefix="wm-mig-")
    log("work dir %s" % work)
    try:
        rc = (run_kill if opts.kill_dest_gw or opts.fault_decoder
              else run_ok)(opts, gdir, work)
    except Exception as e:
        log("FAIL: %r" % e)
        rc = 1
    wmgw.finish(work, rc == 0)
    return rc


if __name__ == "__main__":
    sys.exit(main())

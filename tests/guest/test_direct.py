#!/usr/bin/env python3
"""Integration test of the test guest + tests/lib/wmtest.py: migrate a guest
directly QEMU -> QEMU on loopback (no wanmig involved), then check that the
destination RAM is identical to the source's and that the guest runs on.

Usage: test_direct.py [--multifd [CHANNELS]] [--fill MB] [--wss MB]
                      [--rate PAGES_PER_S]
Env:   WM_GUEST_DIR (default build/guest; built with build.sh if missing),
       WM_QEMU, WM_ACCEL, WM_KEEP_TMP=1.
Exit:  0 pass, 1 fail, 77 skip (no qemu).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import wmtest  # noqa: E402
from wmtest import (Qemu, Timer, diff_pages, downtime_end_to_end,  # noqa
                    files_equal, free_port)

SKIP = 77


def log(msg):
    print("[%7.2f] %s" % (time.monotonic() - T0, msg), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--multifd", nargs="?", type=int, const=2, default=0,
                    help="enable multifd with N channels (default 2)")
    ap.add_argument("--fill", type=int, default=96)
    ap.add_argument("--wss", type=int, default=16)
    ap.add_argument("--rate", type=int, default=4000)
    ap.add_argument("--ram-kib", type=int, default=wmtest.DEFAULT_RAM_KIB,
                    help="guest RAM; QEMU rounds it up to 8 KiB")
    ap.add_argument("--bw", type=int, default=32,
                    help="max-bandwidth in MiB/s (QEMU's default is 32)")
    ap.add_argument("--timeout", type=float, default=180)
    opts = ap.parse_args()

    if shutil.which(wmtest.qemu_binary()) is None:
        print("SKIP: %s not found" % wmtest.qemu_binary())
        return SKIP

    gdir = wmtest.guest_dir()
    if not (os.path.exists(os.path.join(gdir, "vmlinux")) and
            os.path.exists(os.path.join(gdir, "initramfs.cpio.gz"))):
        log("guest not built in %s, building" % gdir)
        subprocess.run(["sh", os.path.join(HERE, "build.sh"), gdir],
                       check=True)

    work = tempfile.mkdtemp(prefix="wm-direct-")
    port = free_port()
    uri = "tcp:127.0.0.1:%d" % port
    ok = False
    try:
        with Qemu(gdir, name="src", fill=opts.fill, wss=opts.wss,
                  rate=opts.rate, hb=200, ram_kib=opts.ram_kib) as src, \
             Qemu(gdir, name="dst", fill=opts.fill, wss=opts.wss,
                  rate=opts.rate, hb=200, ram_kib=opts.ram_kib,
                  incoming=uri) as dst:
            log("src+dst started (%s, RAM %d KiB, fill=%d wss=%d rate=%d)"
                % ("multifd x%d" % opts.multifd if opts.multifd else "plain",
                   src.ram_kib, opts.fill, opts.wss, opts.rate))
            m = src.wait_serial(r"wm-ready filled=(\d+)", 120)
            t_boot = time.monotonic() - src.t_start
            log("src wm-ready after %.1fs (%s)"
                % (t_boot, m.group(0).decode()))
            src.wait_serial(r"wm-heartbeat \d+", 10)

            caps = {"events": True, "return-path": True}
            if opts.multifd:
                caps["multifd"] = True
            for q in (src, dst):
                q.set_caps(caps)
                if opts.multifd:
                    q.set_params({"multifd-channels": opts.multifd})
            # loopback: do not throttle to QEMU's default 32 MiB/s
            src.set_params({"max-bandwidth": opts.bw << 20,
                            "downtime-limit": 300})

            tm = Timer()
            src.migrate(uri)
            info = src.wait_migration(opts.timeout)
            t_mig = tm.lap()
            log("source migration %s after %.1fs" % (info["status"], t_mig))
            if info["status"] != "completed":
                log("FAIL: migration %s: %s" % (info["status"], info))
                return 1
            dst.qmp.wait_event("MIGRATION", 30, pred=lambda e:
                               e["data"]["status"] == "completed")
            ram = info.get("ram", {})
            log("total-time=%sms downtime=%sms setup=%sms transferred=%.1fMB "
                "dirty-sync-count=%s mbps=%s"
                % (info.get("total-time"), info.get("downtime"),
                   info.get("setup-time"),
                   ram.get("transferred", 0) / 1e6,
                   ram.get("dirty-sync-count"), ram.get("mbps")))
            dt = downtime_end_to_end(src, dst)
            log("end-to-end downtime (src STOP -> dst MIGRATION completed): "
                "%.1f ms" % (dt * 1000))

            st_src, st_dst = src.status(), dst.status()
            log("status src=%s dst=%s" % (st_src["status"], st_dst["status"]))
            if st_src["running"] or st_dst["running"]:
                log("FAIL: a side is running before the RAM comparison")
                return 1

            tc = Timer()
            a = src.pmemsave(os.path.join(work, "src.ram"))
            b = dst.pmemsave(os.path.join(work, "dst.ram"))
            same, off = files_equal(a, b)
            log("pmemsave+compare of %d MiB took %.1fs"
                % (src.ram_bytes >> 20, tc.lap()))
            if not same:
                pages = diff_pages(a, b, limit=20)
                log("FAIL: RAM differs, first at offset %#x; pages %s"
                    % (off, pages))
                return 1
            log("RAM identical")

            src_hb = src.last_heartbeat()
            dst.cont()
            m = dst.wait_serial(r"wm-heartbeat (\d+)", 30)
            m2 = dst.wait_serial(r"wm-heartbeat (\d+)", 30)
            n1, n2 = int(m.group(1)), int(m2.group(1))
            log("src last heartbeat %d; dst heartbeats %d, %d"
                % (src_hb, n1, n2))
            if not (n1 > src_hb and n2 > n1):
                log("FAIL: heartbeats do not continue on the destination")
                return 1
            dt2 = downtime_end_to_end(src, dst)
            if abs(dt2 - dt) > 1e-6:
                log("FAIL: downtime after cont %.1f ms != %.1f ms"
                    % (dt2 * 1000, dt * 1000))
                return 1
            if not dst.status()["running"]:
                log("FAIL: destination not running")
                return 1
            ok = True
            dst.quit()
            src.quit()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("PASS" if ok else "FAIL")
    return 0 if ok else 1


T0 = time.monotonic()
if __name__ == "__main__":
    sys.exit(main())

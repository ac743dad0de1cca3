#!/usr/bin/env python3
"""b_codec_capture.py - capture real QEMU migration streams of the test
guest into files, for the page-codec benchmark (tests/bench/b_codec.c).

    tests/bench/b_codec_capture.py [--cache DIR] [--force]
    tests/bench/b_codec_capture.py [--cache DIR] --describe

Boots the test guest (tests/guest) under QEMU TCG with 262136 KiB of RAM
(not a multiple of 256 KiB: QEMU 7.2 TCG loses dirty pages otherwise), the
workload filling 128 MB with realistic content and then rewriting a 32 MB
working set at 8000 pages/s (a few bytes per page), and writes two full
precopy migrations with QMP `migrate` to `exec:cat > FILE`:

  stream1.mig  migrated at once after "wm-ready", while the workload runs:
               max-bandwidth 64 MiB/s and downtime-limit 100 ms make QEMU
               do several passes (the later ones resend the pages the
               workload dirtied meanwhile);
  stream2.mig  the same VM continued (`cont`: a completed exec migration
               leaves the source paused), the workload dirtying for 20 s
               more, then migrated again the same way.

Files live in a cache directory (default /var/tmp/wanmig-captures, or
$WM_CAPTURE_DIR, or --cache) and are reused when present; capture.json
records how they were made (QMP parameters, query-migrate figures).

Env: WM_GUEST_DIR (guest built by tests/guest/build.sh; default
build/guest), WM_QEMU, WM_ACCEL (see tests/lib/wmtest.py).
--describe prints how the cached captures were made, as markdown.
Exit: 0 ok (the file names are printed, one a line, on stdout), 1 failure,
77 no QEMU.
"""

import argparse
import json
import os
import shlex
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import wmtest  # noqa: E402
from wmtest import Qemu  # noqa: E402

RAM_KIB = 262136          # 256 MiB - 8 KiB
FILL_MB = 128
WSS_MB = 32
RATE = 8000               # pages/s: 32 MB/s of dirtying, half the bandwidth
HB_MS = 500
CAPS = {"events": True}   # exec: no return path
PARAMS = {"max-bandwidth": 64 << 20, "downtime-limit": 100}
SETTLE_S = 20             # workload time between the two captures
NAMES = ("stream1.mig", "stream2.mig")
T0 = time.monotonic()


def log(msg):
    print("[%6.1f] b_codec_capture: %s" % (time.monotonic() - T0, msg),
          file=sys.stderr, flush=True)


def capture(vm, path, timeout=300):
    """One full migration of vm to path; returns the figures."""
    tmp = path + ".part"
    for p in (tmp, path):
        if os.path.exists(p):
            os.unlink(p)
    # the rename happens only once cat has written everything
    uri = "exec:cat > %s && mv %s %s" % (shlex.quote(tmp), shlex.quote(tmp),
                                         shlex.quote(path))
    t = time.monotonic()
    vm.migrate(uri)
    info = vm.wait_migration(timeout)
    wall = time.monotonic() - t
    if info.get("status") != "completed":
        raise RuntimeError("migration to %s: %s" % (path, info))
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError("%s not written" % path)
        time.sleep(0.05)
    ram = info.get("ram", {})
    fig = {
        "file": os.path.basename(path),
        "bytes": os.path.getsize(path),
        "wall_s": round(wall, 2),
        "total_time_ms": info.get("total-time"),
        "downtime_ms": info.get("downtime"),
        "dirty_sync_count": ram.get("dirty-sync-count"),
        "transferred": ram.get("transferred"),
        "normal_pages": ram.get("normal"),
        "zero_pages": ram.get("duplicate"),
        "dirty_pages_rate": ram.get("dirty-pages-rate"),
        "mbps": ram.get("mbps"),
    }
    log("%s: %.1f MB, %s dirty syncs (= passes incl. the final one), "
        "%s normal + %s zero pages, total %s ms, downtime %s ms"
        % (fig["file"], fig["bytes"] / 1e6, fig["dirty_sync_count"],
           fig["normal_pages"], fig["zero_pages"], fig["total_time_ms"],
           fig["downtime_ms"]))
    return fig


def describe(meta):
    with open(meta) as f:
        d = json.load(f)
    w = d["workload"]
    print("Captures (%s, made %s): QEMU %s, accel %s, -m %dk, guest workload "
          "wm.fill=%d wm.wss=%d wm.rate=%d wm.hb=%d; QMP "
          "migrate-set-capabilities %s; migrate-set-parameters %s; "
          "migrate uri \"%s\"; between the two: %s.\n"
          % (os.path.dirname(meta), d["made"], d["qemu"], d["accel"],
             d["ram_kib"], w["wm.fill"], w["wm.wss"], w["wm.rate"],
             w["wm.hb"], json.dumps(d["migrate-set-capabilities"]),
             json.dumps(d["migrate-set-parameters"]), d["migrate"],
             d["between"]))
    print("| capture | bytes | dirty syncs | normal pages | zero pages | "
          "total ms | downtime ms |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for c in d["captures"]:
        print("| %s | %d | %s | %s | %s | %s | %s |"
              % (c["file"], c["bytes"], c["dirty_sync_count"],
                 c["normal_pages"], c["zero_pages"], c["total_time_ms"],
                 c["downtime_ms"]))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default=os.environ.get(
        "WM_CAPTURE_DIR", "/var/tmp/wanmig-captures"))
    ap.add_argument("--force", action="store_true",
                    help="capture again even if the files exist")
    ap.add_argument("--describe", action="store_true",
                    help="print how the cached captures were made")
    opts = ap.parse_args()
    cache = os.path.abspath(opts.cache)
    paths = [os.path.join(cache, n) for n in NAMES]
    meta = os.path.join(cache, "capture.json")
    if opts.describe:
        return describe(meta)

    if not opts.force and all(os.path.exists(p) for p in paths + [meta]):
        log("reusing the captures in %s (--force to redo)" % cache)
        print("\n".join(paths))
        return 0
    if shutil.which(wmtest.qemu_binary()) is None:
        log("SKIP: %s not found" % wmtest.qemu_binary())
        return 77
    os.makedirs(cache, exist_ok=True)
    if os.path.exists(meta):
        os.unlink(meta)

    gdir = wmtest.guest_dir()
    vm = Qemu(gdir, name="capture", fill=FILL_MB, wss=WSS_MB, rate=RATE,
              hb=HB_MS, ram_kib=RAM_KIB)
    try:
        log("booting %s (RAM %d KiB, fill=%d MB wss=%d MB rate=%d pages/s)"
            % (gdir, RAM_KIB, FILL_MB, WSS_MB, RATE))
        m = vm.wait_serial(r"wm-ready filled=\d+ ms=\d+", 240)
        log("guest: %s after %.1f s" % (m.group(0).decode(),
                                         time.monotonic() - vm.t_start))
        vm.wait_serial(r"wm-heartbeat \d+", 10)
        ver = vm.qmp.cmd("query-version")
        qver = "%(major)d.%(minor)d.%(micro)d" % ver["qemu"]
        pkg = ver.get("package", "").strip()
        if pkg:
            qver += " (%s)" % pkg
        vm.set_caps(CAPS)
        vm.set_params(PARAMS)
        figs = [capture(vm, paths[0])]
        vm.cont()
        vm.wait_serial(r"wm-heartbeat \d+", 30)
        log("continued; the workload dirties memory for %d s" % SETTLE_S)
        time.sleep(SETTLE_S)
        figs.append(capture(vm, paths[1]))
        vm.quit()
    finally:
        vm.kill()

    desc = {
        "qemu": "%s %s" % (wmtest.qemu_binary(), qver),
        "accel": os.environ.get("WM_ACCEL", "tcg"),
        "ram_kib": RAM_KIB,
        "workload": {"wm.fill": FILL_MB, "wm.wss": WSS_MB, "wm.rate": RATE,
                     "wm.hb": HB_MS},
        "migrate-set-capabilities": CAPS,
        "migrate-set-parameters": PARAMS,
        "migrate": "exec:cat > FILE.part && mv FILE.part FILE",
        "between": "cont, %d s of workload" % SETTLE_S,
        "captures": figs,
        "made": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with open(meta + ".part", "w") as f:
        json.dump(desc, f, indent=1)
        f.write("\n")
    os.rename(meta + ".part", meta)
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())

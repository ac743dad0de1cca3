"""wmmig.py - one verified live migration of the test guest, direct or
through a wanmigd pair, with the figures an operator asks for.

Used by tests/integration/test_migrate.py, tests/integration/test_wan.py
and the README demo (tools/demo.sh). Standard library only.
"""
import os
import time

import wmtest
from wmtest import Qemu, Timer, diff_pages, downtime_end_to_end, files_equal


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def boot_pair(gdir, work, incoming, src_ns=None, dst_ns=None, fill=96, wss=16,
              rate=4000, ram_kib=None, nic_mac=None):
    kw = dict(fill=fill, wss=wss, rate=rate, hb=200,
              ram_kib=ram_kib or wmtest.DEFAULT_RAM_KIB, nic_mac=nic_mac)
    src = Qemu(gdir, name="src", netns=src_ns,
               tmpdir=os.path.join(work, "src"), **kw)
    dst = Qemu(gdir, name="dst", netns=dst_ns, incoming=incoming,
               tmpdir=os.path.join(work, "dst"), **kw)
    return src, dst


def configure(src, dst, multifd=0, bw_bytes=None, downtime_ms=300):
    caps = {"events": True, "return-path": True}
    if multifd:
        caps["multifd"] = True
    for q in (src, dst):
        q.set_caps(caps)
        if multifd:
            q.set_params({"multifd-channels": multifd})
    params = {"downtime-limit": downtime_ms}
    if bw_bytes:
        params["max-bandwidth"] = bw_bytes
    src.set_params(params)


def verify(src, dst, work):
    """Both paused: RAM identical; then the destination runs on.
    Returns (ok, message)."""
    st_src, st_dst = src.status(), dst.status()
    if st_src["running"] or st_dst["running"]:
        return False, "a side is running before the RAM comparison"
    a = src.pmemsave(os.path.join(work, "src.ram"))
    b = dst.pmemsave(os.path.join(work, "dst.ram"))
    same, off = files_equal(a, b)
    if not same:
        return False, "RAM differs, first at %#x; pages %s" % (
            off, diff_pages(a, b, limit=10))
    os.unlink(a)
    os.unlink(b)
    src_hb = src.last_heartbeat()
    dst.cont()
    m1 = dst.wait_serial(r"wm-heartbeat (\d+)", 30)
    m2 = dst.wait_serial(r"wm-heartbeat (\d+)", 30)
    n1, n2 = int(m1.group(1)), int(m2.group(1))
    if not (n1 > src_hb and n2 > n1) or not dst.status()["running"]:
        return False, "destination does not run on (heartbeats %d -> %d, %d)" % (
            src_hb, n1, n2)
    return True, "RAM identical (%d MiB); destination runs (heartbeat %d -> %d)" % (
        src.ram_bytes >> 20, src_hb, n2)


def migrate(src, dst, uri, timeout=600, during=None):
    """Starts the migration and waits for the end on both sides. `during`
    is called about once a second while it runs. Returns the figures."""
    t = Timer()
    src.migrate(uri)
    deadline = time.time() + timeout
    last = 0.0
    while True:
        info = src.query_migrate()
        if info.get("status") in ("completed", "failed", "cancelled"):
            break
        if time.time() > deadline:
            raise RuntimeError("migration did not finish in %ds" % timeout)
        if during and time.time() - last >= 1.0:
            last = time.time()
            during()
        time.sleep(0.1)
    fig = dict(status=info["status"], wall_s=t.lap())
    if info["status"] != "completed":
        fig["error"] = info.get("error-desc", "")
        return fig
    dst.qmp.wait_event("MIGRATION", 60,
                       pred=lambda e: e["data"]["status"] == "completed")
    ram = info.get("ram", {})
    fig.update(total_ms=info.get("total-time"), downtime_ms=info.get("downtime"),
               qemu_bytes=ram.get("transferred", 0),
               dirty_syncs=ram.get("dirty-sync-count"),
               downtime_e2e_ms=downtime_end_to_end(src, dst) * 1000.0)
    return fig


def describe(fig):
    if fig["status"] != "completed":
        return "status %s: %s" % (fig["status"], fig.get("error"))
    s = ("total %.2f s, QEMU downtime %s ms, end-to-end downtime %.0f ms, "
         "QEMU sent %.1f MB" % (fig["total_ms"] / 1000.0, fig["downtime_ms"],
                                fig["downtime_e2e_ms"], fig["qemu_bytes"] / 1e6))
    if "wan_bytes" in fig:
        s += ", WAN %.1f MB" % (fig["wan_bytes"] / 1e6)
    return s

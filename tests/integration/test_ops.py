#!/usr/bin/env python3
"""test_ops.py - the operator's view of two real wanmigd on loopback.

  test_ops.py --http     no QEMU: a relayed stream played by sockets, then
                         the metrics endpoint (exact counters against
                         `wanmig status --json`, HTTP methods, paths, bounds,
                         timeouts, connection limit, rebinding on reload),
                         systemd notifications (READY=1 once the listeners
                         answer, RELOADING=1/READY=1 on SIGHUP, STOPPING=1 on
                         SIGTERM, abstract socket), `wanmig migrations`,
                         `wanmig peers`, `status --watch` as plain text.
  test_ops.py --metrics  a real QEMU migration (16 MiB/s) scraped while it
                         runs (active gauge, monotonic counters bracketed by
                         status) and after (exact equality with status).
  test_ops.py --watch    `wanmig status --watch` in tmux during a real QEMU
                         migration: the screen shows the row with its bar and
                         rates, then the completed state; q quits.
Exit 0 pass, 1 fail, 77 skip (no QEMU, no tmux).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import wmgw  # noqa: E402
import wmtest  # noqa: E402

FAILS = []


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def check(cond, what):
    log("%s: %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        FAILS.append(what)
    return cond


def gateways(work, notify=None):
    """east (source side) and west, each with a metrics endpoint. notify:
    value of NOTIFY_SOCKET for east."""
    p = [wmtest.free_port() for _ in range(6)]
    east_wan, west_wan, route, dest, emx, wmx = p
    certs = os.path.join(work, "certs")
    wmgw.mkcerts(certs, "east", "west")
    ec = wmgw.write_conf(
        os.path.join(work, "east.conf"), "east", certs,
        listen="127.0.0.1:%d" % east_wan,
        extra_site=["metrics = 127.0.0.1:%d" % emx],
        peers=[dict(name="west", address="127.0.0.1:%d" % west_wan)],
        routes=[dict(name="to-west", listen="127.0.0.1:%d" % route, peer="west",
                     target="127.0.0.1:%d" % dest, allow="127.0.0.0/8")])
    wc = wmgw.write_conf(
        os.path.join(work, "west.conf"), "west", certs,
        listen="127.0.0.1:%d" % west_wan,
        extra_site=["metrics = 127.0.0.1:%d" % wmx],
        peers=[dict(name="east", targets=["127.0.0.0/8"])])
    old = os.environ.get("NOTIFY_SOCKET")
    if notify:
        os.environ["NOTIFY_SOCKET"] = notify
    try:
        east = wmgw.Gateway(ec, work, "east").start()
    finally:
        if notify:
            if old is None:
                del os.environ["NOTIFY_SOCKET"]
            else:
                os.environ["NOTIFY_SOCKET"] = old
    west = wmgw.Gateway(wc, work, "west").start()
    east.wait_peer("west")
    east.mx, west.mx = emx, wmx
    return east, west, route, dest


# ---- Prometheus text ---------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r'^(%s)(\{(.*)\})? (\S+)$' % NAME)
LABEL = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)' % NAME)


def parse_prom(text):
    """Validates the exposition and returns {(name, labels): value}."""
    out, types = {}, {}
    if not text.endswith("\n"):
        raise ValueError("no final newline")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            if name in types or typ not in ("counter", "gauge"):
                raise ValueError("bad TYPE line %r" % line)
            types[name] = typ
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError("bad sample line %r" % line)
        name, labels = m.group(1), ()
        if name not in types:
            raise ValueError("sample before its TYPE: %r" % line)
        if types[name] == "counter" and not name.endswith("_total"):
            raise ValueError("counter without _total: %s" % name)
        if m.group(3):
            pos, lab = 0, []
            while pos < len(m.group(3)):
                lm = LABEL.match(m.group(3), pos)
                if not lm:
                    raise ValueError("bad labels in %r" % line)
                lab.append((lm.group(1), lm.group(2)))
                pos = lm.end()
            labels = tuple(sorted(lab))
        out[(name, labels)] = float(m.group(4))
    return out


def scrape(port, path="/metrics", method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, r, body


def metrics(port):
    st, r, body = scrape(port)
    if st != 200:
        raise RuntimeError("GET /metrics: %d" % st)
    return parse_prom(body)


def lab(**kw):
    return tuple(sorted(kw.items()))


def route_figures(mx, direction, route="to-west", peer="west"):
    k = lab(route=route, peer=peer, direction=direction)
    return dict(
        raw=mx.get(("wanmig_route_raw_bytes_total", k)),
        ret=mx.get(("wanmig_route_return_bytes_total", k)),
        wan=mx.get(("wanmig_route_wan_bytes_total", k)),
        completed=mx.get(("wanmig_migrations_total",
                          lab(route=route, peer=peer, direction=direction,
                              outcome="completed"))),
        failed=mx.get(("wanmig_migrations_total",
                       lab(route=route, peer=peer, direction=direction,
                           outcome="failed"))))


def status_figures(gw, direction, route="to-west"):
    ms = [m for m in gw.migrations() if m["route"] == route and
          m["direction"] == direction]
    return dict(raw=sum(m["bytes_in"] for m in ms),
                ret=sum(m["bytes_return"] for m in ms),
                wan=sum(m["bytes_wan"] for m in ms),
                completed=sum(m["state"] == "completed" for m in ms),
                failed=sum(m["state"] == "failed" for m in ms))


def check_exact(gw, direction, peer):
    mx = metrics(gw.mx)
    got = route_figures(mx, direction, peer=peer)
    want = status_figures(gw, direction)
    check(got == {k: float(v) for k, v in want.items()},
          "%s: metrics %s equal status %s exactly" % (gw.site, got, want))
    return mx


def check_peer_bracket(gw, peer):
    before = gw.peer(peer)
    mx = metrics(gw.mx)
    after = gw.peer(peer)
    k = lab(peer=peer)
    for fld, name in (("bytes_sent", "wanmig_peer_sent_bytes_total"),
                      ("bytes_received", "wanmig_peer_received_bytes_total"),
                      ("connects", "wanmig_peer_connects_total")):
        v = mx.get((name, k))
        check(v is not None and before[fld] <= v <= after[fld],
              "%s: %s %s within status %d..%d" % (gw.site, name, v,
                                                  before[fld], after[fld]))
    check(mx.get(("wanmig_peer_up", k)) == 1.0, "%s: peer %s up" % (gw.site, peer))


# ---- the stream without QEMU --------------------------------------------

def relay_once(route, dest, nbytes, reply):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", dest))
    srv.listen(4)
    got = {}

    def serve():
        c, _ = srv.accept()
        n = 0
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            n += len(b)
        got["n"] = n
        c.sendall(reply)
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    s = socket.create_connection(("127.0.0.1", route))
    data = os.urandom(nbytes)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    back = b""
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        back += b
    s.close()
    t.join(30)
    srv.close()
    return got.get("n"), len(back)


class Notify:
    """An abstract-namespace datagram socket playing systemd."""

    def __init__(self):
        self.name = "wm-notify-%d" % os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.value = "@" + self.name

    def wait(self, key, timeout=10):
        """Returns the first message holding key (e.g. READY=1)."""
        self.sock.settimeout(timeout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            log("notify: %r" % msg)
            if key in msg.split("\n"):
                return msg
        return None


def cli(gw, *args):
    return subprocess.run([wmgw.binary("wanmig"), "-s", gw.sock] + list(args),
                          capture_output=True, text=True, timeout=30)


def raw_http(port, data, wait=10):
    """Sends raw bytes; returns what came back before the close."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(wait)
    if data:
        s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def run_http(work):
    nt = Notify()
    t0 = time.time()
    east, west, route, dest = gateways(work, notify=nt.value)
    try:
        msg = nt.wait("READY=1")
        check(msg is not None and "STATUS=site east" in msg,
              "READY=1 with a STATUS line (abstract NOTIFY_SOCKET)")
        log("gateways up in %.1f s" % (time.time() - t0))

        mx = metrics(east.mx)
        check(mx.get(("wanmig_build_info", lab(site="east", version=east.status()["version"]))) == 1.0,
              "build info")
        check(route_figures(mx, "out")["raw"] == 0.0 and
              route_figures(mx, "out")["completed"] == 0.0,
              "configured route has zero series before any migration")
        check(mx.get(("wanmig_migrations_active", ())) == 0.0, "no active migration")

        n, back = relay_once(route, dest, 3 << 20, b"r" * 65536)
        check(n == 3 << 20 and back == 65536, "stream relayed (%s, %s)" % (n, back))
        east.wait_migrations_done(1)
        west.wait_migrations_done(1)
        mx = check_exact(east, "out", "west")
        check(route_figures(mx, "out")["raw"] == float(3 << 20),
              "raw bytes counter = bytes sent")
        check(route_figures(mx, "out")["ret"] == 65536.0, "return bytes counter")
        check_exact(west, "in", "east")
        check_peer_bracket(east, "west")
        check_peer_bracket(west, "east")

        # a second stream: counters add up
        relay_once(route, dest, 1 << 20, b"")
        east.wait_migrations_done(2)
        mx = check_exact(east, "out", "west")
        check(route_figures(mx, "out")["completed"] == 2.0, "two completed")

        # HTTP behaviour
        st, r, body = scrape(east.mx)
        check(st == 200 and r.getheader("Content-Type") ==
              "text/plain; version=0.0.4; charset=utf-8", "content type 0.0.4")
        st, r, body = scrape(east.mx, method="HEAD")
        check(st == 200 and body == "" and int(r.getheader("Content-Length")) > 0,
              "HEAD: headers only")
        st, r, body = scrape(east.mx, method="POST")
        check(st == 405 and r.getheader("Allow") == "GET, HEAD", "POST refused with 405")
        st, r, body = scrape(east.mx, path="/nope")
        check(st == 404, "unknown path 404")
        st, r, body = scrape(east.mx, path="/metrics?x=1")
        check(st == 200 and "wanmig_build_info" in body, "query string ignored")
        out = raw_http(east.mx, b"BLAH\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 400"), "garbage: 400 (%r)" % out[:20])
        out = raw_http(east.mx, b"GET /" + b"a" * 9000)
        check(out.startswith(b"HTTP/1.1 431"), "oversized request: 431 (%r)" % out[:20])
        t = time.time()
        out = raw_http(east.mx, b"GET /metrics HTTP/1.1\r\n", wait=15)
        el = time.time() - t
        check(out == b"" and 3 < el < 10, "incomplete request closed after the "
              "timeout (%.1f s)" % el)
        idle = [socket.create_connection(("127.0.0.1", east.mx)) for _ in range(16)]
        time.sleep(0.3)
        out = raw_http(east.mx, b"GET /metrics HTTP/1.1\r\n\r\n", wait=3)
        check(out == b"", "17th concurrent connection closed at once")
        for s in idle:
            s.close()
        time.sleep(0.3)
        check(scrape(east.mx)[0] == 200, "served again once the idle ones left")

        # reload: RELOADING=1 then READY=1; metrics key removed -> unbound
        conf = open(east.conf).read()
        with open(east.conf, "w") as f:
            f.write(conf.replace("metrics = 127.0.0.1:%d" % east.mx, ""))
        east.signal(signal.SIGHUP)
        check(nt.wait("RELOADING=1") is not None, "SIGHUP: RELOADING=1")
        check(nt.wait("READY=1") is not None, "then READY=1")
        try:
            socket.create_connection(("127.0.0.1", east.mx), timeout=2).close()
            check(False, "metrics unbound after the key is removed")
        except OSError:
            check(True, "metrics unbound after the key is removed")
        with open(east.conf, "w") as f:
            f.write(conf)
        r = cli(east, "reload")
        check(r.returncode == 0, "wanmig reload")
        check(nt.wait("READY=1") is not None, "wanmig reload: READY=1")
        mx = check_exact(east, "out", "west")  # counters survive the reload

        # the CLI views
        r = cli(east, "migrations", "--json")
        ms = json.loads(r.stdout) if r.returncode == 0 else []
        check(len(ms) == 2 and all(m["state"] == "completed" for m in ms),
              "migrations --json: two completed")
        r = cli(east, "migrations")
        check(r.returncode == 0 and "completed" in r.stdout and "to-west" in r.stdout,
              "migrations table:\n" + r.stdout)
        r = cli(east, "peers", "--json")
        ps = json.loads(r.stdout) if r.returncode == 0 else []
        check(len(ps) == 1 and ps[0]["name"] == "west" and ps[0]["connected"],
              "peers --json")
        r = cli(east, "peers")
        check(r.returncode == 0 and "west" in r.stdout and " up " in r.stdout,
              "peers table:\n" + r.stdout)
        r = cli(east, "status", "--watch", "--interval", "0.2", "--count", "3")
        blocks = [b for b in r.stdout.split("\n\n\n") if b.strip()]
        check(r.returncode == 0 and r.stdout.count("site east") == 3 and
              "[############]" in r.stdout and "completed" in r.stdout and
              "\033" not in r.stdout,
              "status --watch on a pipe: 3 plain blocks (%d)\n%s" % (
                  len(blocks), r.stdout[-1500:]))
        r = cli(east, "status", "--watch", "--json", "--count", "2", "--interval", "0.2")
        lines = r.stdout.splitlines()
        check(r.returncode == 0 and len(lines) == 2 and
              all(json.loads(x)["site"] == "east" for x in lines),
              "status --watch --json: one document per line")
        r = cli(east, "peers", "--watch")
        check(r.returncode == 64, "--watch only with status")

        east.signal(signal.SIGTERM)
        check(nt.wait("STOPPING=1") is not None, "SIGTERM: STOPPING=1")
        check(east.stop() == 0, "east exits 0")
    finally:
        east.stop()
        west.stop()
    return 0 if not FAILS else 1


# ---- with QEMU -----------------------------------------------------------

def run_metrics(work):
    import wmmig
    east, west, route, dest = gateways(work)
    seen = dict(active=0, last=0.0, scrapes=0)

    def during():
        b = status_figures(east, "out")["raw"]
        mx = metrics(east.mx)
        a = status_figures(east, "out")["raw"]
        v = route_figures(mx, "out")["raw"]
        seen["scrapes"] += 1
        if mx.get(("wanmig_migrations_active", ())) == 1.0:
            seen["active"] += 1
        check(v >= seen["last"], "raw counter monotonic (%d >= %d)" % (v, seen["last"]))
        check(b <= v <= a, "raw counter %d within status %d..%d" % (v, b, a))
        seen["last"] = v

    try:
        src, dst = wmmig.boot_pair(wmtest.guest_dir(), work, "tcp:127.0.0.1:%d" % dest,
                                   wss=8, rate=500)  # dirties ~2 MB/s: converges at 16
        with src, dst:
            src.wait_serial(r"wm-ready", 120)
            wmmig.configure(src, dst, bw_bytes=16 << 20)
            fig = wmmig.migrate(src, dst, "tcp:127.0.0.1:%d" % route, during=during)
            log("migration: %s" % wmmig.describe(fig))
            check(fig["status"] == "completed", "QEMU migration completed")
            check(seen["active"] >= 2, "scraped %d times while active (gauge 1)"
                  % seen["active"])
            east.wait_migrations_done(1)
            west.wait_migrations_done(1)
            mx = check_exact(east, "out", "west")
            check(route_figures(mx, "out")["completed"] == 1.0, "one completed")
            check(route_figures(mx, "out")["raw"] >= fig["qemu_bytes"],
                  "raw counter >= what QEMU sent")
            check(mx.get(("wanmig_migrations_active", ())) == 0.0, "none active")
            check_exact(west, "in", "east")
            check_peer_bracket(east, "west")
    finally:
        east.stop()
        west.stop()
    return 0 if not FAILS else 1


class Tmux:
    def __init__(self, cmd, cols=160, rows=40):
        self.sock = "wm-ops-%d" % os.getpid()
        self.base = ["tmux", "-L", self.sock, "-f", "/dev/null"]
        subprocess.run(self.base + ["new-session", "-d", "-s", "w", "-x", str(cols),
                                    "-y", str(rows), "-e", "LANG=C.UTF-8", cmd],
                       check=True)

    def screen(self):
        r = subprocess.run(self.base + ["capture-pane", "-p", "-t", "w"],
                           capture_output=True, text=True)
        return r.stdout

    def keys(self, *k):
        subprocess.run(self.base + ["send-keys", "-t", "w"] + list(k))

    def alive(self):
        return subprocess.run(self.base + ["has-session", "-t", "w"],
                              capture_output=True).returncode == 0

    def kill(self):
        subprocess.run(self.base + ["kill-server"], capture_output=True)


ROW_ACTIVE = re.compile(r"^\s*\d+ out to-west\s+west\s+active\s+\[[ <=>]+\]\s+\S+ [kMG]?B\s+"
                        r"[\d.]+ [kMG]?B/s\s+[\d.]+ [kMG]?B/s\s+[\d.]+\s+(?:[\d.]+ s|\d+ m \d+ s|\d+ h \d+ m)\s+—",
                        re.M)
ROW_DONE = re.compile(r"^\s*\d+ out to-west\s+west\s+completed\s+\[#{12}\]\s+.*done", re.M)
PEER_ROW = re.compile(r"^west\s+yes\s+[\d.]+ ms\s+\d+\s+.*B/s\s+—", re.M)


def run_watch(work):
    import wmmig
    if shutil.which("tmux") is None:
        log("SKIP: no tmux")
        return 77
    east, west, route, dest = gateways(work)
    tm = Tmux("%s -s %s status --watch --interval 0.5" % (wmgw.binary("wanmig"), east.sock))
    shots = []

    def during():
        shots.append(tm.screen())

    try:
        time.sleep(1.0)
        first = tm.screen()
        check("site east" in first and "no migrations yet" in first,
              "watch up before the migration:\n" + first)
        src, dst = wmmig.boot_pair(wmtest.guest_dir(), work, "tcp:127.0.0.1:%d" % dest,
                                   wss=8, rate=500)  # dirties ~2 MB/s: converges at 16
        with src, dst:
            src.wait_serial(r"wm-ready", 120)
            wmmig.configure(src, dst, bw_bytes=16 << 20)
            fig = wmmig.migrate(src, dst, "tcp:127.0.0.1:%d" % route, during=during)
            log("migration: %s" % wmmig.describe(fig))
            check(fig["status"] == "completed", "QEMU migration completed")
        active = [s for s in shots if ROW_ACTIVE.search(s)]
        check(len(active) >= 2, "%d of %d screens show the running migration with "
              "bar, rates, ratio and no ETA" % (len(active), len(shots)))
        if active:
            log("a screen during the migration:\n" + active[len(active) // 2])
        check(any(PEER_ROW.search(s) for s in shots),
              "peer row with RTT, rate achieved, no rate in force")
        bars = set(re.findall(r"active\s+(\[[ <=>]+\])", "\n".join(active)))
        check(len(bars) >= 2, "the activity marker moves (%d positions)" % len(bars))
        deadline = time.time() + 10
        done = ""
        while time.time() < deadline:
            done = tm.screen()
            if ROW_DONE.search(done):
                break
            time.sleep(0.3)
        check(ROW_DONE.search(done) is not None, "completed row:\n" + done)
        tm.keys("q")
        deadline = time.time() + 5
        while time.time() < deadline and tm.alive():
            time.sleep(0.1)
        check(not tm.alive(), "q quits the live view")
    finally:
        tm.kill()
        east.stop()
        west.stop()
    return 0 if not FAILS else 1


def main():
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--http", action="store_true")
    g.add_argument("--metrics", action="store_true")
    g.add_argument("--watch", action="store_true")
    opts = ap.parse_args()
    if not opts.http and shutil.which(wmtest.qemu_binary()) is None:
        print("SKIP: no QEMU")
        return 77
    work = tempfile.mkdtemp(prefix="wm-ops-")
    log("work dir %s" % work)
    try:
        if opts.http:
            rc = run_http(work)
        elif opts.metrics:
            rc = run_metrics(work)
        else:
            rc = run_watch(work)
    except Exception as e:
        import traceback
        traceback.print_exc()
        log("FAIL: %r" % e)
        rc = 1
    if rc == 1:
        log("%d failure(s): %s" % (len(FAILS), "; ".join(f.split("\n")[0] for f in FAILS)))
    wmgw.finish(work, rc != 1)
    return rc


if __name__ == "__main__":
    sys.exit(main())

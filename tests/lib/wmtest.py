"""wmtest: drive QEMU test guests for wanmig integration tests (stdlib only).

Typical use::

    from wmtest import Qemu, free_port, files_equal, downtime_end_to_end

    with Qemu(guest_dir, name="src", fill=96, wss=16, rate=2000) as src, \\
         Qemu(guest_dir, name="dst", incoming=f"tcp:127.0.0.1:{port}") as dst:
        src.wait_serial(r"wm-ready", 120)
        for q in (src, dst):
            q.set_caps({"events": True, "return-path": True})
        src.migrate(f"tcp:127.0.0.1:{port}")
        info = src.wait_migration(120)

The guest (tests/guest) prints ``wm-ready filled=MB`` once its memory is
filled and ``wm-heartbeat N`` every ``hb`` ms on the serial console.

Environment knobs: WM_QEMU (qemu binary, default qemu-system-x86_64),
WM_ACCEL (default tcg), WM_GUEST_DIR (default guest directory),
WM_KEEP_TMP=1 (keep the per-VM temp dirs for post-mortem).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

__all__ = [
    "QmpError", "Qmp", "Qemu", "free_port", "files_equal", "Timer",
    "downtime_end_to_end", "diff_pages", "qemu_binary", "guest_dir",
    "DEFAULT_RAM_KIB",
]

# QEMU 7.2 under TCG loses dirty pages when a RAM block's length is a
# multiple of 256 KiB (fixed in 9.0).  QEMU rounds -m up to 8 KiB, so use a
# size that is a multiple of 8 KiB but not of 256 KiB.
DEFAULT_RAM_KIB = 262136


def qemu_binary():
    return os.environ.get("WM_QEMU", "qemu-system-x86_64")


def skip_netns_qemu():
    """Why a test that needs network namespaces and QEMU cannot run here
    (printed as SKIP, exit 77), or None."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and iproute2 for network namespaces"
    if shutil.which(qemu_binary()) is None:
        return "no QEMU"
    return None


def guest_dir(default=None):
    """Directory holding vmlinux and initramfs.cpio.gz (WM_GUEST_DIR)."""
    d = os.environ.get("WM_GUEST_DIR") or default
    if d is None:
        here = os.path.dirname(os.path.abspath(__file__))
        d = os.path.join(here, "..", "..", "build", "guest")
    return os.path.abspath(d)


class QmpError(Exception):
    def __init__(self, cmd, error):
        self.cmd = cmd
        self.error = error
        super().__init__("QMP %s failed: %s: %s" % (
            cmd, error.get("class"), error.get("desc")))


class Qmp:
    """A QMP client over a UNIX socket.

    A reader thread parses every message: replies are matched to commands
    by ``id``; asynchronous events are appended to ``self.events`` as dicts
    with an extra ``"time"`` key (QEMU's own timestamp, float seconds since
    the epoch) and ``"recv"`` (local time.time() when read).
    """

    def __init__(self, path, timeout=30.0, name="qmp"):
        self.path = path
        self.name = name
        self.events = []
        self._cond = threading.Condition()
        self._replies = {}
        self._next_id = 0
        self._closed = False
        self._lock = threading.Lock()   # serialises writes
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise TimeoutError("cannot connect to QMP at %s" % path)
                time.sleep(0.05)
        self._sock = s
        self._file = s.makefile("rb")
        greeting = self._read_msg()
        # QEMU sends the greeting from a bottom half: an event raised at the
        # moment we connect (a destination entering the incoming "setup"
        # state at boot) can come first. Keep such events, in order.
        while greeting is not None and "event" in greeting:
            self.events.append(greeting)
            greeting = self._read_msg()
        if greeting is None or "QMP" not in greeting:
            raise RuntimeError("bad QMP greeting: %r" % (greeting,))
        self.greeting = greeting
        self._thread = threading.Thread(target=self._reader, daemon=True,
                                        name="qmp-reader-" + name)
        self._thread.start()
        self.cmd("qmp_capabilities")

    # -- plumbing
    def _read_msg(self):
        while True:
            line = self._file.readline()
            if not line:
                return None
            line = line.strip()
            if line:
                return json.loads(line)

    def _reader(self):
        try:
            while True:
                msg = self._read_msg()
                if msg is None:
                    break
                with self._cond:
                    if "event" in msg:
                        ts = msg.get("timestamp") or {}
                        msg["time"] = (ts.get("seconds", 0)
                                       + ts.get("microseconds", 0) / 1e6)
                        msg["recv"] = time.time()
                        self.events.append(msg)
                    elif "id" in msg:
                        self._replies[msg["id"]] = msg
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    # -- API
    def cmd(self, name, arguments=None, /, _timeout=60.0, **kw):
        """Run a QMP command; return its result or raise QmpError.

        Arguments come from the dict `arguments` (needed for names with
        '-') and/or keywords, verbatim: cmd("migrate", uri=...),
        cmd("migrate-set-parameters", {"multifd-channels": 2})."""
        args = dict(arguments or {})
        args.update(kw)
        with self._cond:
            self._next_id += 1
            cid = "wm-%d" % self._next_id
        msg = {"execute": name, "id": cid}
        if args:
            msg["arguments"] = args
        data = (json.dumps(msg) + "\n").encode()
        with self._lock:
            self._sock.sendall(data)
        deadline = time.monotonic() + _timeout
        with self._cond:
            while cid not in self._replies:
                if self._closed:
                    raise ConnectionError("QMP %s closed during %s"
                                          % (self.name, name))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("QMP %s: no reply to %s"
                                       % (self.name, name))
                self._cond.wait(left)
            reply = self._replies.pop(cid)
        if "error" in reply:
            raise QmpError(name, reply["error"])
        return reply.get("return")

    def find_events(self, name, pred=None):
        with self._cond:
            return [e for e in self.events if e["event"] == name
                    and (pred is None or pred(e))]

    def wait_event(self, name, timeout=30.0, pred=None, start=0):
        """Wait for an event named `name` (optionally matching pred(ev)),
        looking at self.events[start:] (already received ones count).
        Returns the event dict; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.events):
                    e = self.events[i]
                    i += 1
                    if e["event"] == name and (pred is None or pred(e)):
                        return e
                if self._closed:
                    raise ConnectionError("QMP %s closed waiting for %s"
                                          % (self.name, name))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("QMP %s: no %s event in %.1fs"
                                       % (self.name, name, timeout))
                self._cond.wait(left)

    def close(self):
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass


class Qemu:
    """One QEMU test guest.

    Parameters:
      guest:     directory with vmlinux (or bzImage) and initramfs.cpio.gz
      name:      label used in file names and messages
      fill, wss, rate, hb: workload parameters (MB, MB, pages/s, ms)
      ram_kib:   guest RAM in KiB (default DEFAULT_RAM_KIB, see above)
      incoming:  e.g. 'tcp:127.0.0.1:4444' or 'defer'; starts with -S too
      paused:    start with -S (default: True if incoming else False)
      netns:     run under 'ip netns exec NETNS'
      nic_mac:   if set, add one virtio-net-pci NIC with this MAC
      netdev:    netdev backend spec for that NIC (without id=), default
                 'user,restrict=on' (works without any host network)
      extra_args: list of extra QEMU arguments
      append:    extra kernel command-line text
      accel:     default $WM_ACCEL or 'tcg'
      kernel:    'vmlinux' (default, PVH) or 'bzImage'
      tmpdir:    where to put the QMP socket / serial log (default: new)
    """

    def __init__(self, guest=None, name="vm", fill=64, wss=8, rate=1000,
                 hb=500, ram_kib=DEFAULT_RAM_KIB, incoming=None, paused=None,
                 netns=None, nic_mac=None, netdev="user,restrict=on",
                 extra_args=(), append="", accel=None, kernel=None,
                 tmpdir=None, start=True):
        self.guest = guest_dir(guest)
        self.name = name
        self.ram_kib = ram_kib
        self.ram_bytes = ram_kib * 1024
        self.incoming = incoming
        self.netns = netns
        self.proc = None
        self.qmp = None
        self._own_tmp = tmpdir is None
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="wm-%s-" % name)
        os.makedirs(self.tmpdir, exist_ok=True)
        self.qmp_path = os.path.join(self.tmpdir, "qmp.sock")
        self.serial_log = os.path.join(self.tmpdir, "serial.log")
        self.stderr_log = os.path.join(self.tmpdir, "qemu.stderr")
        self.pidfile = os.path.join(self.tmpdir, "qemu.pid")
        self._serial_pos = 0

        kname = kernel or "vmlinux"
        kpath = os.path.join(self.guest, kname)
        if not os.path.exists(kpath):
            kpath = os.path.join(self.guest, "bzImage")
        initrd = os.path.join(self.guest, "initramfs.cpio.gz")
        for p in (kpath, initrd):
            if not os.path.exists(p):
                raise FileNotFoundError(
                    "%s missing: run tests/guest/build.sh %s" % (p, self.guest))
        cmdline = ("console=ttyS0 loglevel=4 panic=-1 "
                   "wm.fill=%d wm.wss=%d wm.rate=%d wm.hb=%d %s"
                   % (fill, wss, rate, hb, append)).strip()
        args = [qemu_binary(),
                "-accel", accel or os.environ.get("WM_ACCEL", "tcg"),
                "-nodefaults", "-no-user-config",
                "-machine", "q35",
                "-cpu", "qemu64",
                "-m", "%dk" % ram_kib,
                "-smp", "1",
                "-display", "none", "-vga", "none",
                "-chardev", "file,id=ser0,path=%s" % self.serial_log,
                "-serial", "chardev:ser0",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
                "-pidfile", self.pidfile,
                "-kernel", kpath, "-initrd", initrd,
                "-append", cmdline,
                "-no-reboot"]
        if nic_mac:
            args += ["-netdev", "%s,id=net0" % netdev,
                     "-device", "virtio-net-pci,netdev=net0,mac=%s,romfile="
                     % nic_mac]
        if paused is None:
            paused = incoming is not None
        if paused:
            args.append("-S")
        if incoming:
            args += ["-incoming", incoming]
        args += list(extra_args)
        if netns:
            args = ["ip", "netns", "exec", netns] + args
        self.args = args
        if start:
            self.start()

    # -- lifecycle
    def start(self, qmp_timeout=30.0):
        open(self.serial_log, "wb").close()
        self._stderr = open(self.stderr_log, "wb")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=self._stderr,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + qmp_timeout
        while not os.path.exists(self.qmp_path):
            if self.proc.poll() is not None:
                raise RuntimeError("%s: qemu exited with %s: %s" % (
                    self.name, self.proc.returncode, self.stderr_text()))
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError("%s: no QMP socket" % self.name)
            time.sleep(0.02)
        self.qmp = Qmp(self.qmp_path, timeout=max(1.0, deadline
                                                   - time.monotonic()),
                       name=self.name)
        return self

    def stderr_text(self):
        try:
            with open(self.stderr_log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def cmd(self, name, arguments=None, /, **kw):
        return self.qmp.cmd(name, arguments, **kw)

    def quit(self, timeout=10.0):
        """Ask QEMU to quit; kill it if it does not."""
        if self.proc and self.proc.poll() is None and self.qmp:
            try:
                self.qmp.cmd("quit", _timeout=timeout)
            except (QmpError, OSError, TimeoutError, ConnectionError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self):
        """Kill QEMU (if running) and clean up.  Safe to call twice."""
        if self.qmp:
            self.qmp.close()
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None
        if self._own_tmp and os.environ.get("WM_KEEP_TMP") != "1":
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self._own_tmp = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False

    def __del__(self):
        try:
            self.kill()
        except Exception:
            pass

    # -- serial console
    def serial_text(self):
        with open(self.serial_log, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_serial(self, pattern, timeout=60.0, start=None):
        """Wait until regex `pattern` appears in the serial log at or after
        byte offset `start` (default: after the previous wait_serial match).
        Returns the re.Match; self.serial_pos is moved past it."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str)
                        else pattern)
        pos = self._serial_pos if start is None else start
        deadline = time.monotonic() + timeout
        while True:
            with open(self.serial_log, "rb") as f:
                f.seek(pos)
                data = f.read()
            m = rx.search(data)
            if m:
                self._serial_pos = pos + m.end()
                return m
            if self.proc.poll() is not None:
                raise RuntimeError("%s: qemu exited (%s) waiting for %r\n%s"
                                   % (self.name, self.proc.returncode,
                                      pattern, self.stderr_text()))
            if time.monotonic() > deadline:
                raise TimeoutError("%s: %r not seen in %.0fs; serial tail:\n%s"
                                   % (self.name, pattern, timeout,
                                      data[-2000:].decode(errors="replace")))
            time.sleep(0.05)

    @property
    def serial_pos(self):
        return self._serial_pos

    @serial_pos.setter
    def serial_pos(self, v):
        self._serial_pos = v

    def serial_size(self):
        return os.path.getsize(self.serial_log)

    def last_heartbeat(self):
        """Highest N of 'wm-heartbeat N' in the serial log so far (or 0)."""
        hb = re.findall(rb"wm-heartbeat (\d+)",
                        open(self.serial_log, "rb").read())
        return max((int(x) for x in hb), default=0)

    # -- migration helpers
    def set_caps(self, caps):
        self.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": k, "state": bool(v)} for k, v in caps.items()])

    def set_params(self, params):
        self.qmp.cmd("migrate-set-parameters", dict(params))

    def migrate(self, uri, **kw):
        self.qmp.cmd("migrate", uri=uri, **kw)

    def migrate_incoming(self, uri):
        self.qmp.cmd("migrate-incoming", uri=uri)

    def query_migrate(self):
        return self.qmp.cmd("query-migrate")

    def wait_migration(self, timeout=120.0, poll=0.1):
        """Poll query-migrate until completed/failed/cancelled; return the
        final dict.  Raises TimeoutError (the dict is in .last)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.query_migrate()
            if info.get("status") in ("completed", "failed", "cancelled"):
                return info
            if time.monotonic() > deadline:
                err = TimeoutError("%s: migration not done in %.0fs: %s"
                                   % (self.name, timeout, info))
                err.last = info
                raise err
            time.sleep(poll)

    def status(self):
        return self.qmp.cmd("query-status")

    def cont(self):
        self.qmp.cmd("cont")

    def stop(self):
        self.qmp.cmd("stop")

    def pmemsave(self, path, size=None):
        """Save guest RAM [0, size) (default: all RAM; on q35 with < 2 GiB
        it is all below the PCI hole, at GPA 0..size)."""
        size = self.ram_bytes if size is None else size
        if self.ram_bytes > (2 << 30):
            raise ValueError("pmemsave of >2 GiB q35 RAM is not contiguous")
        self.qmp.cmd("pmemsave", val=0, size=size, filename=path,
                     _timeout=300.0)
        return path


# ---------------------------------------------------------------- helpers

def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def files_equal(a, b, chunk=1 << 20):
    """Compare two files.  Returns (True, None) if identical, else
    (False, offset_of_first_difference).  Files of different length differ
    at the end of the shorter one if their common part is equal."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while True:
            ca = fa.read(chunk)
            cb = fb.read(chunk)
            if ca != cb:
                n = min(len(ca), len(cb))
                for i in range(n):
                    if ca[i] != cb[i]:
                        return False, off + i
                return False, off + n
            if not ca:
                return True, None
            off += len(ca)


def diff_pages(a, b, page=4096, limit=None):
    """List of page indices where files a and b differ (for diagnostics)."""
    out = []
    with open(a, "rb") as fa, open(b, "rb") as fb:
        i = 0
        while True:
            pa, pb = fa.read(page), fb.read(page)
            if not pa and not pb:
                return out
            if pa != pb:
                out.append(i)
                if limit and len(out) >= limit:
                    return out
            i += 1


class Timer:
    """with Timer() as t: ...; t.elapsed (seconds, float).  Also usable
    without `with`: t = Timer(); ...; t.lap()."""

    def __init__(self):
        self.start = time.monotonic()
        self.end = None

    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.end = time.monotonic()
        return False

    @property
    def elapsed(self):
        return (self.end or time.monotonic()) - self.start

    def lap(self):
        return time.monotonic() - self.start


def downtime_end_to_end(src_qmp, dst_qmp, timeout=30.0):
    """End-to-end downtime in seconds from QEMU's own event timestamps:
    the source's last STOP event -> the destination's RESUME event (if the
    destination runs without -S) or else its MIGRATION "completed" event
    (needs the `events` migration capability on the destination).

    Whichever of the two comes first after the STOP is used: without -S the
    destination emits RESUME just before "completed"; with -S "completed"
    comes first and a RESUME only follows a later `cont`, so this may be
    called before or after that `cont`.

    Accepts Qmp or Qemu objects.  Both QEMUs must run on the same host
    (the timestamps are host wall-clock)."""
    src_qmp = getattr(src_qmp, "qmp", src_qmp)
    dst_qmp = getattr(dst_qmp, "qmp", dst_qmp)
    stops = src_qmp.find_events("STOP")
    if not stops:
        src_qmp.wait_event("STOP", timeout)
        stops = src_qmp.find_events("STOP")
    t_stop = stops[-1]["time"]
    deadline = time.monotonic() + timeout
    while True:
        cand = dst_qmp.find_events(
            "RESUME", lambda e: e["time"] >= t_stop)[:1]
        cand += dst_qmp.find_events(
            "MIGRATION", lambda e: e["time"] >= t_stop and
            e.get("data", {}).get("status") == "completed")[:1]
        if cand:
            return min(e["time"] for e in cand) - t_stop
        if time.monotonic() > deadline:
            raise TimeoutError("no RESUME or MIGRATION completed event on "
                               "the destination")
        time.sleep(0.05)

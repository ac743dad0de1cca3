"""wmgw.py - run a pair of real wanmigd gateways for integration tests.

Writes certificates (tools/mkcerts.sh) and config files, starts the
daemons (optionally inside network namespaces), and reads their state
through the real CLI (`wanmig status --json`). Standard library only.
"""
import json
import os
import shutil
import signal
import subprocess
import time

SRC = os.environ.get("WM_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("WM_BUILD") or os.path.join(SRC, "build")


def binary(name):
    path = os.path.join(BUILD, name)
    if not os.path.exists(path):
        raise RuntimeError("%s not built (expected at %s)" % (name, path))
    return path


def mkcerts(directory, *sites):
    subprocess.run([os.path.join(SRC, "tools", "mkcerts.sh"), directory] +
                   list(sites), check=True)


def write_conf(path, site, certdir, listen=None, control=None, peers=(),
               routes=(), extra_site=None, cert_name=None):
    """peers: dicts name, address?, targets?, extra?; routes: dicts name,
    listen, peer, target, allow."""
    cert = cert_name or site
    lines = ["[site]", "name = %s" % site]
    if listen:
        lines.append("listen = %s" % listen)
    lines += ["certificate = %s/%s.pem" % (certdir, cert),
              "private-key = %s/%s.key" % (certdir, cert),
              "ca = %s/ca.pem" % certdir,
              "control = %s" % (control or os.path.join(
                  os.path.dirname(path), site + ".sock")),
              "log-level = debug"]
    lines += list(extra_site or [])
    for p in peers:
        lines += ["", "[peer %s]" % p["name"]]
        if p.get("address"):
            lines.append("address = %s" % p["address"])
        for t in p.get("targets", []):
            lines.append("targets = %s" % t)
        lines += list(p.get("extra", []))
    for r in routes:
        lines += ["", "[route %s]" % r["name"], "listen = %s" % r["listen"],
                  "peer = %s" % r["peer"], "target = %s" % r["target"],
                  "allow = %s" % r.get("allow", "0.0.0.0/0")]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Gateway:
    """One wanmigd process; its log goes to <workdir>/<site>.log."""

    def __init__(self, conf, workdir, site, netns=None, env=None):
        self.conf = conf
        self.env = env
        self.site = site
        self.netns = netns
        self.log_path = os.path.join(workdir, site + ".log")
        self.proc = None
        with open(conf) as f:
            for line in f:
                if line.startswith("control = "):
                    self.sock = line.split("=", 1)[1].strip()

    def _wrap(self, argv):
        return (["ip", "netns", "exec", self.netns] + argv) if self.netns else argv

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self._wrap([binary("wanmigd"), "-c", self.conf]),
            stdout=self.logf, stderr=subprocess.STDOUT,
            env=dict(os.environ, **(self.env or {})))
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("wanmigd %s exited with %d:\n%s" % (
                    self.site, self.proc.returncode, self.log()))
            if os.path.exists(self.sock):
                try:
                    self.status()
                    return self
                except RuntimeError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("wanmigd %s did not come up:\n%s" % (self.site, self.log()))

    def status(self):
        r = subprocess.run([binary("wanmig"), "-s", self.sock, "status", "--json"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError("wanmig status: %s" % r.stderr.strip())
        return json.loads(r.stdout)

    def status_text(self):
        r = subprocess.run([binary("wanmig"), "-s", self.sock, "status"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout + r.stderr

    def peer(self, name):
        for p in self.status()["peers"]:
            if p["name"] == name:
                return p
        return None

    def wait_peer(self, name, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            p = self.peer(name)
            if p and p["connected"]:
                return p
            time.sleep(0.1)
        raise RuntimeError("peer %s not connected on %s within %ds:\n%s" % (
            name, self.site, timeout, self.log()))

    def migrations(self):
        return self.status()["migrations"]

    def wait_migrations_done(self, n=1, timeout=30):
        """Waits until at least n migrations exist and none is active."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            ms = self.migrations()
            if len(ms) >= n and all(m["state"] != "active" for m in ms):
                return ms
            time.sleep(0.1)
        raise RuntimeError("migrations on %s not finished: %s" % (
            self.site, json.dumps(self.migrations(), indent=1)))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode


def finish(work, ok, logs=("east.log", "west.log"), tail=3000):
    """End of a test: on failure print the tail of the daemons' logs and
    keep the work dir for a post-mortem; on success remove it."""
    if ok:
        shutil.rmtree(work, ignore_errors=True)
        return
    for f in logs:
        p = os.path.join(work, f)
        if os.path.exists(p):
            with open(p, errors="replace") as fh:
                print("---- %s (tail)\n%s" % (f, fh.read()[-tail:]))
    print("work dir kept: %s" % work)

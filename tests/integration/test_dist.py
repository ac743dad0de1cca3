#!/usr/bin/env python3
"""test_dist.py - what gets installed: `cmake --install`, the systemd units,
the man pages.

  1. `cmake --install WM_BUILD --prefix TMP` puts the binaries in sbin/ and
     bin/, the units in lib/systemd/system/, the man pages in share/man/,
     the example configs in share/doc/wanmig/examples/; the installed
     binaries run.
  2. Every page renders with groff -man -ww without a warning, and
     `man -l` renders it (NAME, SYNOPSIS or DESCRIPTION present).
  3. wanmig.conf(5) documents every key of conf/conf_keys.h, in its section.
  4. `systemd-analyze verify` passes on both units (template instantiated),
     with the units' ExecStart pointed at the installed binary and MANPATH
     at the installed pages, so that Documentation= is checked too.
Exit 0 pass, 1 fail, 77 skip (groff, man or systemd-analyze missing).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("WM_SRC") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("WM_BUILD") or os.path.join(SRC, "build")
FAILS = []
PAGES = {"wanmigd.8": "man8", "wanmig.8": "man8", "wanmig.conf.5": "man5"}
SECTIONS = {"CONF_S_SITE": "[site]", "CONF_S_PEER": "[peer NAME]",
            "CONF_S_ROUTE": "[route NAME]", "CONF_S_ANNOUNCE": "[announce ROUTE]"}


def check(cond, what):
    print("%s: %s" % ("ok" if cond else "FAIL", what), flush=True)
    if not cond:
        FAILS.append(what)
    return cond


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def install(prefix):
    r = run(["cmake", "--install", BUILD, "--prefix", prefix])
    check(r.returncode == 0, "cmake --install: %s" % r.stderr.strip())
    want = ["sbin/wanmigd", "bin/wanmig", "lib/systemd/system/wanmigd.service",
            "lib/systemd/system/wanmigd@.service",
            "share/doc/wanmig/examples/east.conf",
            "share/doc/wanmig/examples/west.conf"]
    want += ["share/man/%s/%s" % (d, p) for p, d in PAGES.items()]
    for w in want:
        check(os.path.exists(os.path.join(prefix, w)), "installed %s" % w)
    r = run([os.path.join(prefix, "bin/wanmig"), "--version"])
    check(r.returncode == 0 and r.stdout.startswith("wanmig "), "installed wanmig runs")
    r = run([os.path.join(prefix, "sbin/wanmigd"), "--version"])
    check(r.returncode == 0 and r.stdout.startswith("wanmigd "), "installed wanmigd runs")


def man_pages(prefix):
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", MAN_DISABLE_SECCOMP="1")
    for page in PAGES:
        path = os.path.join(SRC, "man", page)
        r = run(["groff", "-man", "-Tutf8", "-ww", "-z", path])
        check(r.returncode == 0 and r.stderr == "",
              "groff -man -ww %s: no warning %s" % (page, r.stderr.strip()))
        r = run(["man", "-l", path], env=env)
        check(r.returncode == 0 and "NAME" in r.stdout and
              "DESCRIPTION" in r.stdout and r.stderr.strip() == "",
              "man -l %s renders (%d lines) %s" % (page, r.stdout.count("\n"),
                                                  r.stderr.strip()))


def conf_keys():
    text = open(os.path.join(SRC, "conf", "conf_keys.h")).read()
    keys = re.findall(r'X\([\s\\]*CK_\w+,[\s\\]*(CONF_S_\w+),[\s\\]*"([^"]+)"', text)
    check(len(keys) >= 20, "found %d keys in conf_keys.h" % len(keys))
    page = open(os.path.join(SRC, "man", "wanmig.conf.5")).read()
    # split the page into its .SH sections
    parts = {}
    for m in re.finditer(r'^\.SH "?([^"\n]+)"?\n(.*?)(?=^\.SH |\Z)', page, re.M | re.S):
        parts[m.group(1)] = m.group(2)
    for sect, key in keys:
        body = parts.get(SECTIONS.get(sect, sect), "")
        esc = key.replace("-", "\\-")
        check(re.search(r'^\.BI %s " = "' % re.escape(esc), body, re.M) is not None,
              "wanmig.conf(5) documents %s in %s" % (key, SECTIONS.get(sect, sect)))


def verify_units(prefix):
    d = tempfile.mkdtemp(prefix="wm-units-")
    unitdir = os.path.join(prefix, "lib/systemd/system")
    try:
        for u in ("wanmigd.service", "wanmigd@.service"):
            text = open(os.path.join(unitdir, u)).read()
            m = re.search(r"^ExecStart=(\S+)/wanmigd ", text, re.M)
            check(m is not None, "%s: ExecStart names wanmigd" % u)
            if m is None:
                continue
            check("Type=notify" in text and "ExecReload=/bin/kill -HUP $MAINPID" in text,
                  "%s: Type=notify, reload by SIGHUP" % u)
            text = text.replace(m.group(1) + "/", os.path.join(prefix, "sbin") + "/")
            name = "wanmigd@east.service" if "@" in u else u
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
            env = dict(os.environ, MANPATH=os.path.join(prefix, "share/man"))
            r = run(["systemd-analyze", "verify", os.path.join(d, name)], env=env)
            out = (r.stdout + r.stderr).strip()
            check(r.returncode == 0 and out == "",
                  "systemd-analyze verify %s%s" % (name, (": " + out) if out else ""))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    missing = [t for t in ("groff", "man", "systemd-analyze", "cmake")
               if shutil.which(t) is None]
    if missing:
        print("SKIP: missing %s (tools/packages.txt installs them)" % ", ".join(missing))
        return 77
    prefix = tempfile.mkdtemp(prefix="wm-install-")
    try:
        install(prefix)
        man_pages(prefix)
        conf_keys()
        verify_units(prefix)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    print("%d failure(s)" % len(FAILS) if FAILS else "PASS")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

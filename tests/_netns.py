"""Network namespaces, veth pairs and taps that a test creates and always removes.

Every name carries the test process's pid so parallel runs never collide, and
every address lives inside a namespace the test made (10.x on our own links).
"""

import contextlib
import os
import shutil
import subprocess

import pytest

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root: creates network namespaces, tap and veth devices")


def need_tool(name):
    if shutil.which(name) is None:
        pytest.skip(f"needs `{name}` (installed by .ci/run: apt-get install {name})")


def sh(*cmd, check=True, ns=None, timeout=30, **kw):
    argv = [str(c) for c in cmd]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def unique(prefix):
    """A short device/namespace name unique to this process (IFNAMSIZ is 16)."""
    unique.counter = getattr(unique, "counter", 0) + 1
    return f"{prefix}{os.getpid() % 100000}{unique.counter}"[:15]


@contextlib.contextmanager
def netns(name=None):
    name = name or unique("rns")
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "set", "lo", "up", ns=name)
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


@contextlib.contextmanager
def veth_pair(a, b, ns_b=None):
    """A veth pair with end `b` moved into namespace `ns_b` (if given)."""
    sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    try:
        if ns_b:
            sh("ip", "link", "set", b, "netns", ns_b)
        yield a, b
    finally:
        sh("ip", "link", "del", a, check=False)


@contextlib.contextmanager
def in_netns(ns):
    """Run the enclosed code (in this thread/process) inside namespace `ns`, then come back."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNET = 0x40000000
    with open("/proc/self/ns/net") as home, open(f"/run/netns/{ns}") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns}")
        try:
            yield
        finally:
            libc.setns(home.fileno(), CLONE_NEWNET)

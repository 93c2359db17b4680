"""Opening devices: an Interface spec becomes a C device, wrapped as asked.

Owns: the Python handle of a C device (closed by ffi.gc or close()), the
per-driver error messages that say how to fix a failure, the wrapper order
(driver -> faults -> pcap -> trace, so the capture shows what the stack
really sent and received after faults), and holding the queue a queue=auto
spec claimed (aiorusty.nic._claim) for as long as the device is open. Not: the
drivers themselves (C, _core/).
"""

import errno
import glob
import logging
import os
import pwd
import stat

from .._errors import check
from .._rusty import ffi, lib
from ._claim import claim_queue
from ._spec import QUEUE_AUTO, Interface

log = logging.getLogger("aiorusty.nic")
trace_log = logging.getLogger("aiorusty.trace")

_HINTS = {
    ("tap", errno.EPERM): "run as root or create it with `ip tuntap add {target} mode tap user $USER`",
    ("tap", errno.EACCES): "run as root or create it with `ip tuntap add {target} mode tap user $USER`",
    ("tap", errno.ENOENT): "load the tun module, or create the node: `mkdir -p /dev/net && mknod /dev/net/tun c 10 200`",
    ("tap", errno.ENODEV): "no tap named {target}: create it with `ip tuntap add {target} mode tap user $USER`, or open it as root",
    ("tap", errno.EINVAL): "{target} exists but is not a tap of this kind (a tun, another link type, or multi-queue vs single-queue)",
    ("tap", errno.EBUSY): "another process holds the tap queue; use queues= or a multi-queue tap",
    ("afpacket", errno.EPERM): "AF_PACKET needs root or CAP_NET_RAW (`setcap cap_net_raw+ep $(which python3)`)",
    ("afpacket", errno.EINVAL): "queue=K needs queues=N with K < N (one worker per queue)",
    ("afpacket", errno.ENODEV): "no such interface; list them with `ip link`",
    ("shm", errno.EACCES): "a file of the link in /dev/shm is not yours alone: remove /dev/shm/aiorusty-{target}* "
                          "(as its owner or root) or use another link name",
    ("shm", errno.ETIMEDOUT): "another process has held the lock on /dev/shm/aiorusty-{target} for seconds "
                             "(a hung or hostile peer): stop it, or use another link name",
    ("shm", errno.ELOOP): "/dev/shm/aiorusty-{target} is a symbolic link: remove it or use another link name",
    ("shm", errno.EBUSY): "both sides of this link are taken; each shm link joins exactly two processes",
    ("shm", errno.EPROTO): "the file in /dev/shm has another layout (older aiorusty?); remove /dev/shm/aiorusty-{target}",
    ("shm", errno.EINVAL): "the other side opened this link with a different number of queues",
}


def _user(uid):
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _shm_refused_hint(target):
    """Which file of shm link `target` made the open refuse it (EACCES), and how to fix it; None
    when none looks wrong any more. A link joins processes of one user only (shm.c, "Trust")."""
    me = os.geteuid()
    base = f"/dev/shm/aiorusty-{target}"
    for path in [base] + sorted(glob.glob(glob.escape(base) + ".q*")):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid != me:
            why = f"is owned by {_user(st.st_uid)}, not by you ({_user(me)}): another user may have taken the name"
        elif mode & 0o077:
            why = f"has mode {mode:04o}: users other than its owner could read or write the link"
        elif stat.S_ISLNK(st.st_mode):
            why = "is a symbolic link"
        else:
            continue
        return (f"{path} {why} (owner {_user(st.st_uid)}, mode {mode:04o}); a link joins processes of one user "
                f"only: remove it (`rm {base} {base}.q*`, as its owner or root) or use another link name")
    return None


def _tap_queues_hint(iface, code, auto=False):
    """What went wrong opening a multi-queue tap when it is the queue order or the steering
    program (tap_steer.c), else None (the generic tap hints apply). auto: queue=auto claimed it."""
    k, n = iface.queue or 0, iface.queues
    if code == errno.EBUSY and auto:
        return (f"queue=auto claimed queue {k} of {n}, the lowest no live process holds, but the tap's queue {k} "
                "is attached already: a worker holding a lower queue exited while higher ones stayed, and the "
                "kernel renumbered the tap's queues (it moves the last into the hole), so this queue can no "
                f"longer attach in order; restart every worker of {iface.target} (only the worker of the "
                "highest queue can restart alone)")
    if code == errno.EBUSY:
        return (f"queue {k} of {n} attaches when exactly {k} are attached, and more are: another process holds "
                f"queues of {iface.target}, or a worker restarted alone (the kernel numbers queues by attach "
                "order: restart every worker)")
    if code == errno.ETIMEDOUT:
        return (f"queue {k} of {n} waits for queues 0..{k - 1} to attach first (workers 0..{k - 1} on the "
                "same tap), and they did not within 10 s")
    log = ffi.new("char[]", 4096)
    fd = lib.rusty_tap_steer_load(n, log, 4096)
    if fd >= 0:
        os.close(fd)
        return None
    why = ffi.string(log).decode(errors="replace").strip()
    return (f"the eBPF program that steers the flows of a multi-queue tap did not load: {os.strerror(-fd)}"
            f"{' (verifier: ' + why + ')' if why else ''}; loading it needs root or CAP_BPF, "
            "or open the tap with queues=1")


class Device:
    """A NIC driver (possibly wrapped) from the C core. Closing it frees its frame pool,
    then gives back the queue a queue=auto spec claimed (claimed_queue)."""

    def __init__(self, ptr, iface, claim=None):
        self._ptr = ffi.gc(ptr, lib.rusty_dev_close if claim is None else _closer(claim))
        self.interface = iface
        self._claim = claim
        self._trace = bool(iface.trace)
        self._trace_buf = ffi.new("char[]", 65536) if self._trace else None

    @property
    def claimed_queue(self):
        """The queue index a queue=auto spec claimed at open (also interface.queue), else None."""
        return self._claim.queue if self._claim is not None else None

    @property
    def ptr(self):
        if self._ptr is None:
            raise ValueError("device is closed")
        return self._ptr

    def info(self):
        out = ffi.new("struct rusty_dev_info *")
        lib.rusty_dev_get_info(self.ptr, out)
        return {
            "name": ffi.string(out.name).decode(),
            "driver": ffi.string(out.driver).decode(),
            "mac": ":".join(f"{b:02x}" for b in out.mac),
            "mtu": out.mtu,
            "queues": out.queues,
            "offloads": out.offloads,
        }

    def stats(self):
        out = ffi.new("struct rusty_dev_stats *")
        lib.rusty_dev_get_stats(self.ptr, out)
        return {name: getattr(out, name) for name, _ in ffi.typeof("struct rusty_dev_stats").fields}

    def fileno(self, queue=0):
        return lib.rusty_dev_fd(self.ptr, queue)

    def arm_wakeup(self, queue=0):
        """Before waiting on fileno(queue): make it readable at the next frame. False when
        armed, True when frames already wait (recv() them instead of waiting)."""
        return bool(lib.rusty_dev_arm_wakeup(self.ptr, queue))

    def send(self, frame, queue=0):
        """Transmit one raw Ethernet frame (tests and tools)."""
        check(lib.rusty_dev_send(self.ptr, queue, ffi.from_buffer(frame), len(frame)), f"send on {self}")

    def recv(self, queue=0, cap=2048):
        """One received frame as bytes, or None when none is waiting."""
        buf = ffi.new("uint8_t[]", cap)
        n = lib.rusty_dev_recv(self.ptr, queue, buf, cap)
        if n == -errno.EAGAIN:
            return None
        check(n, f"recv on {self}")
        return bytes(ffi.buffer(buf, n))

    def drain_trace(self):
        """Log the tracer's decoded lines (called once per loop tick, never per frame)."""
        if not self._trace:
            return
        while True:
            n = lib.rusty_trace_drain(self.ptr, self._trace_buf, 65536)
            if not n:
                return
            for line in ffi.string(self._trace_buf, n).decode(errors="replace").splitlines():
                trace_log.info("%s %s", self.interface.target or self.interface.driver, line)

    def close(self):
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            ffi.release(ptr)  # runs the ffi.gc destructor (rusty_dev_close) now

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<Device {self.interface}>"


def _closer(claim):
    """The destructor of a device on a claimed queue: the queue detaches before the claim goes,
    so the next claimant never finds it still attached (a tap's attach order, tap_steer.c)."""
    def close(ptr):
        lib.rusty_dev_close(ptr)
        claim.release()
    return close


def _config(iface):
    cfg = ffi.new("struct rusty_dev_config *")
    cfg.pool_buffers = iface.pool
    cfg.queues = iface.queues
    cfg.mtu = iface.mtu
    cfg.ring_frames = iface.ring
    flags = lib.RUSTY_DEVF_CREATE
    if iface.queue is not None:
        cfg.queue = iface.queue
        flags |= lib.RUSTY_DEVF_SINGLE_QUEUE
    if not iface.offload:
        flags |= lib.RUSTY_DEVF_NO_OFFLOAD
    cfg.flags = flags
    return cfg


def _open_driver(iface, cfg, auto=False):
    out = ffi.new("struct rusty_dev **")
    target = iface.target.encode()
    if iface.driver == "tap":
        ret = lib.rusty_tap_open(target, cfg, out)
    elif iface.driver == "afpacket":
        ret = lib.rusty_afpacket_open(target, cfg, out)
    elif iface.driver == "shm":
        ret = lib.rusty_shm_open(target, cfg, out)
    else:
        ret = lib.rusty_loopback_open(cfg, out)
    hint = _HINTS.get((iface.driver, -ret))
    hint = hint and hint.format(target=iface.target)
    if iface.driver == "tap" and iface.queues > 1 and ret < 0:
        hint = _tap_queues_hint(iface, -ret, auto) or hint
    if iface.driver == "shm" and ret == -errno.EACCES:
        hint = _shm_refused_hint(iface.target) or hint
    what = f"{iface.driver} device {iface.target or ''}".rstrip()
    if iface.driver == "tap" and ret == -errno.ENOENT:
        # No /dev/net/tun is, for the user, a permission-to-use-taps problem.
        raise PermissionError(errno.ENOENT, f"{what}: /dev/net/tun is missing ({hint})")
    check(ret, what, hint)
    return out[0]


def _wrap(ptr, iface):
    """Apply the wrappers a spec asks for; on failure the inner device is closed."""
    out = ffi.new("struct rusty_dev **")
    try:
        if iface.faults is not None and iface.faults.active:
            f = iface.faults
            fc = ffi.new("struct rusty_faults_config *")
            fc.seed = f.seed
            fc.drop_ppm = round(f.drop * 1e6)
            fc.duplicate_ppm = round(f.duplicate * 1e6)
            fc.reorder_ppm = round(f.reorder * 1e6)
            fc.corrupt_ppm = round(f.corrupt * 1e6)
            fc.delay_us = f.delay_us
            fc.jitter_us = f.jitter_us
            fc.rate_bps = f.rate_bps
            fc.direction = f.direction
            check(lib.rusty_faults_wrap(ptr, fc, out), "fault injector")
            ptr = out[0]
        if iface.pcap:
            check(lib.rusty_pcap_wrap(ptr, iface.pcap.encode(), out), f"pcap file {iface.pcap}")
            ptr = out[0]
        if iface.trace:
            check(lib.rusty_trace_wrap(ptr, out), "tracer")
            ptr = out[0]
    except BaseException:
        lib.rusty_dev_close(ptr)
        raise
    return ptr


def open_device(spec):
    """Open the device an interface spec (or Interface) names, with its wrappers.

    queue=auto first claims the lowest free queue K, then opens queue K as queue=K would; the
    device's interface then says queue=K, and claimed_queue is K."""
    iface = Interface.parse(spec)
    claim = None
    if iface.queue == QUEUE_AUTO:
        claim = claim_queue(iface)
        iface = iface.with_queue(claim.queue)
    try:
        ptr = _open_driver(iface, _config(iface), auto=claim is not None)
        if iface.mac:
            lib.rusty_dev_set_mac(ptr, bytes.fromhex(iface.mac.replace(":", "")))
        ptr = _wrap(ptr, iface)
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    dev = Device(ptr, iface, claim)
    if iface.host is not None:
        from ._host import configure_host_side
        try:
            configure_host_side(dev, iface)
        except BaseException:
            dev.close()
            raise
    log.debug("opened %s: %s", iface, dev.info())
    return dev


def open_pair(pool=0, ring=0, gather=False, trace=False, pcap=None):
    """Two devices joined like a cable (in-process), for tests: (a, b). gather: they offer
    TX checksum and scatter-gather offload and do both in software (RUSTY_DEVF_GATHER).
    trace: a's frames are decoded to the aiorusty.trace logger (as the spec's trace=1).
    pcap: a's frames are captured to this file (as the spec's pcap=FILE)."""
    cfg = ffi.new("struct rusty_dev_config *")
    cfg.pool_buffers = pool
    cfg.ring_frames = ring
    cfg.flags = lib.RUSTY_DEVF_GATHER if gather else 0
    a = ffi.new("struct rusty_dev **")
    b = ffi.new("struct rusty_dev **")
    check(lib.rusty_pair_open(cfg, a, b), "pair device")
    iface = Interface("loopback", trace=trace, pcap=pcap)
    return Device(_wrap(a[0], iface), iface), Device(b[0], Interface("loopback"))

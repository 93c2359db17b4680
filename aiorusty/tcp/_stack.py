"""Stack: the Python handle of one user-space TCP/IP stack (C core) and its interfaces.

Owns: creating the C stack from keyword configuration, attaching devices as
interfaces, the once-per-tick poll (one C call, events unpacked in bulk with
struct.iter_unpack), deadlines and fds for the loop to sleep on, stats, and the
UDP/ICMP calls. TCP calls come from the TcpApi mixin (aiorusty.tcp._tcp).
Not: protocol logic (C, _core/), devices (aiorusty.nic), the event loop.

Lifetime: the C stack holds frame buffers from its devices' pools, so it is
freed before the devices it opened. The ffi.gc destructor keeps the devices
alive until the stack is gone, whatever order the garbage collector picks.
"""

import dataclasses
import errno
import ipaddress
import logging
import os
import struct
import time

from .. import _ipv4
from .._errors import check
from .._rusty import ffi, lib
from ..nic import Device, Interface, open_device
from ..nic._spec import parse_ips
from ._tcp import TcpApi

log = logging.getLogger("aiorusty.stack")
_EVENT = struct.Struct("<IHHiI")
_EVENTS_PER_POLL = 1024
_CONFIG_FIELDS = {name for name, _ in ffi.typeof("struct rusty_stack_config").fields}


# RUSTY_LIMIT_* -> (option, errno name, what it refuses)
_LIMITS = {
    lib.RUSTY_LIMIT_TCP_MEM: ("tcp_mem", "ENOBUFS", "new connections"),
    lib.RUSTY_LIMIT_TCP_CONNS: ("max_tcp_conns", "EMFILE", "new connections"),
    lib.RUSTY_LIMIT_SOCKETS: ("max_sockets", "EMFILE", "new sockets"),
}
_LIMIT_NAMES = {"tcp_mem": "TCP memory limit", "max_tcp_conns": "TCP connection limit",
                "max_sockets": "socket limit"}

ip_to_int = _ipv4.to_int
int_to_ip = _ipv4.to_str


def _free_stack(ptr, devices):
    if any(dev._ptr is None for dev, _ in devices):
        # A device was closed under the stack: its pool (which the stack's queued
        # buffers point into) is gone, so freeing the stack would write into freed
        # memory. Leak the stack instead, and say so.
        log.warning("a device was closed before the stack using it; the stack's memory is leaked "
                    "(close the Stack first, then its devices)")
    else:
        lib.rusty_stack_free(ptr)
    for dev, owned in devices:
        if owned:
            dev.close()
    devices.clear()


class Stack(TcpApi):
    """One user-space stack: interfaces, sockets, timers, polled by the loop."""

    def __init__(self, interfaces=(), *, seed=None, **config):
        unknown = set(config) - _CONFIG_FIELDS
        if unknown:
            known = ", ".join(sorted(_CONFIG_FIELDS - {"seed"}))
            raise TypeError(f"unknown stack option(s) {', '.join(sorted(unknown))} (known: {known})")
        cfg = ffi.new("struct rusty_stack_config *")
        for key, value in config.items():
            setattr(cfg, key, value)
        cfg.seed = seed if seed is not None else int.from_bytes(os.urandom(8), "little")
        out = ffi.new("struct rusty_stack **")
        check(lib.rusty_stack_new(cfg, out), "stack")
        # (device, owned) pairs; the destructor closes the owned ones after the stack.
        self._devices = []
        self._ptr = ffi.gc(out[0], lambda p, devs=self._devices: _free_stack(p, devs))
        self._events = ffi.new("struct rusty_event[]", _EVENTS_PER_POLL)
        self._events_buf = ffi.buffer(self._events)
        self._info_out = ffi.new("struct rusty_tcp_info *")     # tcp_endpoints, once per connection
        self._recv_buf = ffi.new("uint8_t[]", 65536)
        self._src = ffi.new("uint32_t *")
        self._port = ffi.new("uint16_t *")
        self._traced = []
        self._limits_logged = set()
        self.interfaces = []
        try:
            for spec in interfaces:
                self.add_interface(spec)
        except BaseException:
            self.close()
            raise

    # ---- interfaces

    @property
    def devices(self):
        return [dev for dev, _ in self._devices]

    def add_interface(self, spec_or_device, now_us=None, *, ip=None, gateway=None):
        """Attach a device (or open one from a spec / Interface); returns the Interface.

        A Device opened elsewhere (open_pair, open_device) stays the caller's to
        close; one opened here from a spec is closed with the stack. `ip=` and
        `gateway=` override the spec's (devices from open_pair carry none); `ip=`
        takes the spec's forms, a range or list of addresses included. Every
        address after the first becomes a secondary address (add_address).
        """
        ptr = self._live()
        if isinstance(spec_or_device, Device):
            dev, owned = spec_or_device, False
            iface = dev.interface
        else:
            iface = Interface.parse(spec_or_device)
            dev, owned = None, True
        if ip is not None:
            first, others = parse_ips(str(ip))
            iface = _replace(iface, ip=first, addresses=others)
        if gateway is not None:
            iface = _replace(iface, gateway=ipaddress.IPv4Address(str(gateway)))
        if iface.ip is None:
            raise ValueError(f"interface {iface} needs an address: add ip=ADDR/PREFIX to the spec")
        if dev is None:
            dev = open_device(iface)
            iface = _replace(iface, queue=dev.interface.queue)    # queue=auto: the queue it claimed
        try:
            gw = int(iface.gateway) if iface.gateway is not None else 0
            now = self.now_us() if now_us is None else now_us
            index = check(lib.rusty_stack_add_iface(ptr, dev.ptr, int(iface.ip.ip), iface.ip.network.prefixlen,
                                                    gw, now), f"interface {iface}")
        except BaseException:
            if owned:
                dev.close()
            raise
        self._devices.append((dev, owned))
        self.interfaces.append(dataclasses.replace(iface, addresses=()))
        for addr in iface.addresses:
            self.add_address(addr, index, now)
        if iface.trace:
            self._traced.append(dev)
        return iface

    def add_address(self, ip, interface=0, now_us=None):
        """Give interface number `interface` (0: the first added) one more address of its own
        (ARP answers for it, connections come and go from it), in its subnet; at most
        RUSTY_IFACE_MAX_ADDRS addresses per interface. The Interface in self.interfaces
        lists it in `addresses`."""
        if not 0 <= interface < len(self.interfaces):
            raise ValueError(f"no interface {interface}: the stack has {len(self.interfaces)} (0 is the first added)")
        iface = self.interfaces[interface]
        addr = ipaddress.IPv4Address(str(ip))
        ret = lib.rusty_stack_add_address(self._live(), interface, int(addr), self.now_us() if now_us is None
                                          else now_us)
        hint = {-errno.EINVAL: f"it must be a host address of {iface.ip.network}, the interface's subnet",
                -errno.EADDRINUSE: "the stack already has it",
                -errno.ENOSPC: f"an interface holds at most {lib.RUSTY_IFACE_MAX_ADDRS} addresses"}.get(ret)
        check(ret, f"address {addr} on interface {iface}", hint)
        self.interfaces[interface] = _replace(iface, addresses=iface.addresses + (addr,))

    # ---- the tick

    @staticmethod
    def now_us():
        """Microseconds on CLOCK_MONOTONIC (what the C core's callers pass as now_us)."""
        return time.monotonic_ns() // 1000

    def poll(self, now_us=None):
        """Run the stack once; a list of (sock, type, flags, arg, arg2) events."""
        n = lib.rusty_stack_poll(self._live(), self.now_us() if now_us is None else now_us,
                                 self._events, _EVENTS_PER_POLL)
        for dev in self._traced:
            dev.drain_trace()
        if n <= 0:
            check(n, "stack poll")
            return []
        return list(_EVENT.iter_unpack(self._events_buf[: n * 16]))

    def output(self, now_us):
        """Send what transports queued since the last poll, without receiving."""
        lib.rusty_stack_output(self._live(), now_us)

    def next_deadline(self, now_us=None):
        """Absolute time (us) the stack wants to be polled again, or None for never."""
        d = lib.rusty_stack_next_deadline(self._live(), self.now_us() if now_us is None else now_us)
        return None if d < 0 else d

    def prepare_sleep(self, now_us=None):
        """next_deadline() for a loop about to sleep on fds(): also arms the devices' wakeups
        (a busy-polling loop never does, so its peer makes no wakeup syscalls); now_us when
        frames arrived meanwhile."""
        d = lib.rusty_stack_prepare_sleep(self._live(), self.now_us() if now_us is None else now_us)
        return None if d < 0 else d

    def fds(self):
        """File descriptors the loop can sleep on (one per device queue that has one)."""
        out = []
        for dev in self.devices:
            queues = max(1, dev.info()["queues"])
            for q in range(queues):
                fd = dev.fileno(q)
                if fd >= 0:
                    out.append(fd)
        return out

    def route(self, ip):
        """1: one of our addresses, 2: reachable through an interface, 0: not ours to send."""
        return lib.rusty_stack_route(self._live(), ip_to_int(ip))

    def config(self):
        """The configuration in force, C defaults filled in: {option: value}."""
        out = ffi.new("struct rusty_stack_config *")
        lib.rusty_stack_get_config(self._live(), out)
        return {name: getattr(out, name) for name, _ in ffi.typeof("struct rusty_stack_config").fields}

    def report_limit(self, limit):
        """Log, once per stack and limit, that a limit refused work (RUSTY_EV_LIMIT)."""
        if limit in self._limits_logged:
            return
        self._limits_logged.add(limit)
        cfg = self.config()
        option, errname, effect = _LIMITS.get(limit, (None, "", ""))
        if option is None:
            log.warning("stack limit %d reached", limit)
            return
        value = cfg[option]
        shown = f"{value / (1 << 20):.0f} MiB" if option == "tcp_mem" else f"{value:,}"
        log.warning("%s reached (%s = %s): %s fail with %s; raise it with AIORUSTY_%s=... in the environment "
                    "or %s=... to aiorusty.new_event_loop()", _LIMIT_NAMES[option], option, shown, effect, errname,
                    option.upper(), option)

    def stats(self):
        out = ffi.new("struct rusty_stats *")
        lib.rusty_stack_get_stats(self._live(), out)
        result = {name: getattr(out, name) for name, _ in ffi.typeof("struct rusty_stats").fields}
        result["devices"] = {str(iface): dev.stats() for iface, dev in zip(self.interfaces, self.devices)}
        return result

    # ---- UDP

    def udp_bind(self, ip=None, port=0):
        sock = ffi.new("uint32_t *")
        check(lib.rusty_udp_bind(self._live(), ip_to_int(ip), port, sock), f"udp bind {ip or '0.0.0.0'}:{port}")
        return sock[0]

    def udp_sendto(self, handle, data, addr, now_us=None):
        ip, port = addr
        return check(lib.rusty_udp_sendto(self._live(), handle, ip_to_int(ip), port, ffi.from_buffer(data),
                                          len(data), self.now_us() if now_us is None else now_us),
                     f"udp sendto {ip}:{port}")

    def udp_recvfrom(self, handle, cap=65536):
        """(data, (ip, port)) of the next queued datagram, or None when none is queued."""
        n = lib.rusty_udp_recvfrom(self._live(), handle, self._recv_buf, min(cap, 65536), self._src, self._port)
        if n == -errno.EAGAIN:
            return None
        check(n, "udp recvfrom")
        return bytes(ffi.buffer(self._recv_buf, n)), (int_to_ip(self._src[0]), self._port[0])

    def udp_getsockname(self, handle):
        ip = ffi.new("uint32_t *")
        port = ffi.new("uint16_t *")
        check(lib.rusty_udp_getsockname(self._live(), handle, ip, port), "udp getsockname")
        return int_to_ip(ip[0]), port[0]

    def udp_close(self, handle):
        check(lib.rusty_udp_close(self._live(), handle), "udp close")

    # ---- ICMP

    def ping(self, dst, ident, seq, size=56, now_us=None):
        """Send one echo request; its reply comes back as a RUSTY_EV_ICMP_ECHO_REPLY event."""
        check(lib.rusty_icmp_echo(self._live(), ip_to_int(dst), ident, seq, size,
                                  self.now_us() if now_us is None else now_us), f"ping {dst}")

    # ---- lifetime

    def _live(self):
        if self._ptr is None:
            raise ValueError("stack is closed")
        return self._ptr

    @property
    def closed(self):
        return self._ptr is None

    def close(self):
        if self._ptr is None:
            return
        ptr, self._ptr = self._ptr, None
        ffi.gc(ptr, None)               # detaches the destructor (returns None): ptr stays valid
        _free_stack(ptr, self._devices)
        self.interfaces = []
        self._traced = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._ptr is None else ", ".join(str(i) for i in self.interfaces) or "no interfaces"
        return f"<Stack {state}>"


def _replace(iface, **changes):
    return dataclasses.replace(iface, **changes)

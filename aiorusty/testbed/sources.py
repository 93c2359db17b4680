"""Where the load generator's next connection comes from: its source address and port.

Owns: the list of source addresses (every address of the stack's interface that
routes to the target: the first, then the secondary ones of an `ip=` range or
list), which one new connections use, and moving to the next when one has no
port left towards the target; for steered workers (steer.py), the source ports
of each address whose flow hash lands on the worker's own queue. Not: the
connections (load.py), the flow hash (steer.py).

One address reaches one (server address, port) from at most the ephemeral port
range (16k ports by default; 4-tuples must differ), so 100,000 connections to
one server need seven or more addresses: `--iface shm:x,ip=10.77.0.2-10.77.0.9/24`.

  * Unsteered (one worker, or --no-steer): the stack picks the port. While the
    interface has one address, connections name no source (as before); with
    several they name the current address, and the stack's EADDRNOTAVAIL (no
    free port) moves new connections to the next one.
  * Steered: the ports of each address come from a steer.PortPicker, round robin;
    once an address's ports have all been handed out, new connections move to
    the next address, so connections spread over addresses instead of failing
    with EADDRINUSE on ports still open or in TIME-WAIT.
"""

import errno
import ipaddress

from .steer import PortPicker


class Sources:
    """Source (ip, port) for the generator's next connection, or None (the stack's choice)."""

    def __init__(self, ips, host, port, worker=0, workers=1, steer=False, ports=None):
        self.ips = [str(ip) for ip in ips]
        self.host, self.port = host, port
        self.worker, self.workers = worker, workers
        self.steer = steer and workers > 1 and bool(self.ips)
        self.port_range = ports
        self.index = 0                  # the address new connections use
        self.tried = 0                  # addresses found without a free port since the last connect
        self.used = set()               # addresses connections were opened from
        self._pickers = {}

    def next(self):
        """local_addr for the next connection (None: let the stack choose)."""
        if not self.ips:
            return None
        ip = self.ips[self.index]
        if self.steer:
            picker = self._picker(ip)
            port = picker.next()
            if picker.wrapped and len(self.ips) > 1:
                self.index = (self.index + 1) % len(self.ips)   # this address's ports all handed out
            return (ip, port)
        return (ip, 0) if len(self.ips) > 1 else None

    def connected(self, local):
        """A connection from local (what next() gave) is open."""
        self.tried = 0
        if local is not None:
            self.used.add(local[0])
        elif self.ips:
            self.used.add(self.ips[0])

    def exhausted(self, local, exc):
        """True when connect failed for want of a port (EADDRNOTAVAIL) and another address is
        left to try now: the caller connects again at once. False: an error to count."""
        if exc.errno != errno.EADDRNOTAVAIL or len(self.ips) < 2:
            return False
        ip = local[0] if local is not None else self.ips[0]
        if ip == self.ips[self.index]:
            self.index = (self.index + 1) % len(self.ips)
        self.tried += 1
        if self.tried < len(self.ips):
            return True
        self.tried = 0                  # every address is full: count it, try again later
        return False

    def _picker(self, ip):
        picker = self._pickers.get(ip)
        if picker is None:
            kw = {"lo": self.port_range[0], "hi": self.port_range[1] + 1} if self.port_range else {}
            picker = PortPicker(int(ipaddress.IPv4Address(ip)), int(ipaddress.IPv4Address(self.host)), self.port,
                                self.worker, self.workers, **kw)
            self._pickers[ip] = picker
        return picker

"""Flow steering: which queue (worker) a flow lands on, and source ports that land on ours.

Owns: the symmetric flow hash the shm link uses with RUSTY_DEVF_STEER
(aiorusty/nic/_core/shm.c, steer_queue), AF_PACKET queue K of N uses in
its classic-BPF socket filter (aiorusty/nic/_core/af_packet.c, steer_filter)
and a multi-queue tap runs as its eBPF steering program
(aiorusty/nic/_core/tap_steer.c, TUNSETSTEERINGEBPF): the same arithmetic,
and the choice of source ports for outgoing connections of worker K of N so
that both directions of each flow hash to queue K - so a multi-queue peer
(shm), the worker's own AF_PACKET filter or the tap's program brings the
replies back to the worker that opened the connection. Not: opening devices.

The tap hashes only unfragmented IPv4 TCP/UDP; everything else (ARP, other
protocols, fragments) goes to queue 0 there, while shm and AF_PACKET hash
other IPv4 on its addresses (ports 0).
"""

import ipaddress

_M32 = 0xFFFFFFFF


def _ip(ip):
    return ip if isinstance(ip, int) else int(ipaddress.IPv4Address(ip))


def flow_hash(saddr, daddr, sport, dport):
    """The 32-bit symmetric hash of an IPv4 TCP/UDP flow (shm.c steer_queue, af_packet.c steer_filter,
    tap_steer.c steer_prog)."""
    x = (_ip(saddr) ^ _ip(daddr) ^ (((sport ^ dport) * 0x10001) & _M32)) & _M32
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & _M32
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & _M32
    x ^= x >> 16
    return x


def flow_queue(saddr, daddr, sport, dport, queues):
    return flow_hash(saddr, daddr, sport, dport) % queues


class PortPicker:
    """Source ports for worker `queue` of `queues` towards one (daddr, dport), round robin."""

    def __init__(self, saddr, daddr, dport, queue, queues, lo=20000, hi=48000):
        # Below the stack's ephemeral range (49152+), so explicit ports never
        # collide with ports the stack hands out by itself.
        self.ports = [p for p in range(lo, hi) if flow_queue(saddr, daddr, p, dport, queues) == queue]
        if not self.ports:
            raise ValueError("no source port lands on this queue")
        self._next = 0

    def next(self):
        p = self.ports[self._next]
        self._next = (self._next + 1) % len(self.ports)
        return p

    @property
    def wrapped(self):
        """True when the last next() handed out the last port: the next one starts over."""
        return self._next == 0

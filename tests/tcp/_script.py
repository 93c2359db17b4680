"""Scripted TCP segment tests (smoltcp's send!/recv!/recv_nothing!, lwIP's segments
built relative to the connection).

A Stack is attached to one end of an in-process pair; the test holds the other
end and plays the peer: it answers ARP for its own address, builds
Ethernet/IPv4/TCP frames (checksums computed here in Python, independent of
the C code), injects them at an explicit time `now` (microseconds, virtual),
polls the stack at that time and asserts exactly which segments came out.

    p = Peer()
    c = p.passive_open(80)             # SYN in, SYN-ACK out, ACK in, accepted
    c.send("A", b"hello")              # seq/ack default to where the connection is
    p.advance(40_000)                  # delayed ACK timer
    c.expect("A", ack=5)               # ack relative to the peer's ISN+1
    p.nothing()

Relative numbers: a Conn's `seq`/`ack` arguments and Seg.rseq/rack are offsets
from the stack's ISN+1 and the peer's ISN+1, like Wireshark's relative numbers.
"""

import os
import re
import struct

from aiorusty._rusty import lib
from aiorusty.nic import open_pair
from aiorusty.tcp import Stack

from _pkt import ETH_ARP, ETH_IP, Frame, arp, csum, eth, ip4, ipv4, mac

STACK_IP = "10.0.0.1"
PEER_IP = "10.0.0.2"
PEER_MAC = mac("02:00:00:00:00:02")
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_FLAG_CHARS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK}
M32 = 0xFFFFFFFF


def flags_of(spec):
    if isinstance(spec, int):
        return spec
    out = 0
    for ch in spec:
        out |= _FLAG_CHARS[ch]
    return out


def flag_str(f):
    return "".join(ch for ch, bit in _FLAG_CHARS.items() if f & bit) or "."


def tcp_options(mss=None, wscale=None, sack_perm=False, ts=None):
    o = b""
    if mss is not None:
        o += struct.pack("!BBH", 2, 4, mss)
    if wscale is not None:
        o += struct.pack("!BBBB", 1, 3, 3, wscale)
    if sack_perm:
        o += b"\x01\x01\x04\x02"
    if ts is not None:
        o += struct.pack("!BBBBII", 1, 1, 8, 10, ts[0] & M32, ts[1] & M32)
    return o


def tcp_segment(src, dst, sport, dport, seq, ack, flags, window, payload=b"", options=b"", bad_csum=False):
    assert len(options) % 4 == 0
    off = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & M32, ack & M32, off << 4, flags, window, 0, 0) + options
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload) ^ (0x1234 if bad_csum else 0)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


class Seg:
    """A TCP segment the stack sent."""

    def __init__(self, frame):
        ip = frame.ip
        l4 = frame.l4
        self.src, self.dst = ip["src"], ip["dst"]
        (self.sport, self.dport, self.seq, self.ack, off, self.flags, self.window, self.csum,
         _urg) = struct.unpack("!HHIIBBHHH", l4[:20])
        hlen = (off >> 4) * 4
        self.payload = bytes(l4[hlen:])
        pseudo = ip4(self.src) + ip4(self.dst) + struct.pack("!BBH", 0, 6, len(l4))
        self.csum_ok = csum(pseudo + bytes(l4)) == 0
        self.opts = {}
        o = l4[20:hlen]
        i = 0
        while i < len(o):
            k = o[i]
            if k == 0:
                break
            if k == 1:
                i += 1
                continue
            ln = o[i + 1]
            body = o[i + 2:i + ln]
            if k == 2:
                self.opts["mss"] = struct.unpack("!H", body)[0]
            elif k == 3:
                self.opts["wscale"] = body[0]
            elif k == 4:
                self.opts["sack_perm"] = True
            elif k == 8:
                self.opts["ts"] = struct.unpack("!II", body)
            i += ln
        self.rseq = self.rack = None

    @property
    def flag_str(self):
        return flag_str(self.flags)

    def __repr__(self):
        rel = f" rseq={self.rseq} rack={self.rack}" if self.rseq is not None else ""
        return (f"<Seg {self.sport}->{self.dport} [{self.flag_str}] seq={self.seq} ack={self.ack}{rel} "
                f"win={self.window} len={len(self.payload)} opts={self.opts}>")


def _capture_path():
    """With AIORUSTY_TEST_PCAP=DIR, each Peer captures the stack's frames to DIR/<test>.pcap
    (fuzz/seeds_from_pcap.py turns such captures into fuzzing seeds)."""
    where = os.environ.get("AIORUSTY_TEST_PCAP")
    if not where:
        return None
    test = os.environ.get("PYTEST_CURRENT_TEST", "peer").split(" ")[0]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test)[-120:]
    os.makedirs(where, exist_ok=True)
    return os.path.join(where, name + ".pcap")


class Peer:
    """The test's end of the wire, and the clock."""

    def __init__(self, now=0, gather=False, **config):
        config.setdefault("arp_timeout_us", 4_000_000_000)
        config.setdefault("tcp_msl_us", 2_000_000)
        self.a, self.b = open_pair(gather=gather, pcap=_capture_path())
        self.stack = Stack(seed=7, **config)
        self.now = now
        self.stack.add_interface(self.a, now, ip=f"{STACK_IP}/24")
        self.stack_mac = bytes.fromhex(self.a.info()["mac"].replace(":", ""))
        self.events = []
        # Teach the stack our MAC (it answers a request aimed at it and learns the sender).
        self.b.send(eth(b"\xff" * 6, PEER_MAC, ETH_ARP, arp(1, PEER_MAC, PEER_IP, b"\0" * 6, STACK_IP)))
        self.poll()
        self.frames()

    def close(self):
        self.stack.close()
        self.a.close()
        self.b.close()

    # ---- clock and polling
    def poll(self):
        self.events.extend(self.stack.poll(self.now))

    def advance(self, us):
        """Move the clock, polling at every stack deadline on the way (timers fire in order)."""
        end = self.now + us
        while True:
            d = self.stack.next_deadline(self.now)
            if d is None or d > end:
                break
            self.now = max(self.now, d)
            self.poll()
        self.now = end
        self.poll()

    def take_events(self, sock=None, kind=None):
        out = [e for e in self.events if (sock is None or e[0] == sock) and (kind is None or e[1] == kind)]
        self.events = [e for e in self.events if e not in out]
        return out

    # ---- frames
    def inject_raw(self, frame):
        self.b.send(frame)
        self.poll()

    def inject(self, sport, dport, seq, ack, flags, window=65535, payload=b"", options=b"", bad_csum=False):
        seg = tcp_segment(PEER_IP, STACK_IP, sport, dport, seq, ack, flags_of(flags), window, payload, options,
                          bad_csum)
        self.inject_raw(eth(self.stack_mac, PEER_MAC, ETH_IP, ipv4(PEER_IP, STACK_IP, 6, seg)))

    def frames(self):
        """Every frame the stack sent since the last call; ARP requests for us are answered."""
        out = []
        while True:
            raw = self.b.recv()
            if raw is None:
                return out
            f = Frame(raw)
            if f.arp is not None:
                if f.arp["op"] == 1 and f.arp["tpa"] == PEER_IP:
                    self.b.send(eth(f.src, PEER_MAC, ETH_ARP, arp(2, PEER_MAC, PEER_IP, f.arp["sha"], f.arp["spa"])))
                    self.poll()
                continue
            out.append(f)

    def segments(self):
        out = []
        for f in self.frames():
            if f.ip is not None and f.ip["proto"] == 6:
                s = Seg(f)
                assert s.csum_ok, f"bad TCP checksum from the stack: {s}"
                assert f.ip["csum_ok"]
                out.append(s)
        return out

    def nothing(self):
        segs = self.segments()
        assert segs == [], f"expected no segment, got {segs}"

    # ---- connections
    def listen(self, port=80, backlog=16):
        return self.stack.tcp_listen(STACK_IP, port, backlog)

    def passive_open(self, port=80, peer_port=40000, iss=1000, window=65535, options=None, listener=None,
                     accept=True, mss=1460):
        """Listener (unless given) + SYN in, SYN-ACK out, ACK in; returns the accepted Conn."""
        if listener is None:
            listener = self.listen(port)
        c = Conn(self, port, peer_port, peer_iss=iss, window=window)
        c.listener = listener
        opts = options if options is not None else tcp_options(mss=mss)
        c.inject_abs(iss, 0, "S", options=opts)
        synack = self.segments()
        assert len(synack) == 1 and synack[0].flags == SYN | ACK, synack
        c.stack_iss = synack[0].seq
        c.synack = synack[0]
        assert synack[0].ack == (iss + 1) & M32
        c.send("A")
        self.nothing()
        if accept:
            c.sock = self.stack.tcp_accept(listener)
            assert c.sock is not None
        return c

    def active_open(self, port=80, peer_port=None, iss=5000, window=65535, options=None, mss=1460):
        """Connect from the stack; SYN out, SYN-ACK in, ACK out."""
        sock = self.stack.tcp_connect((PEER_IP, port), now_us=self.now)
        self.poll()
        syn = self.segments()
        assert len(syn) == 1 and syn[0].flags == SYN, syn
        c = Conn(self, syn[0].sport, port, peer_iss=iss, window=window)
        c.sock = sock
        c.syn = syn[0]
        c.stack_iss = syn[0].seq
        opts = options if options is not None else tcp_options(mss=mss)
        c.inject_abs(iss, c.stack_iss + 1, "SA", options=opts)
        c.expect("A", seq=0, ack=0)
        self.nothing()
        return c


class Conn:
    """One connection seen from the peer: relative sequence numbers and shortcuts."""

    def __init__(self, peer, stack_port, peer_port, peer_iss, window=65535):
        self.p = peer
        self.stack_port = stack_port
        self.peer_port = peer_port
        self.peer_iss = peer_iss
        self.stack_iss = None
        self.window = window
        self.ts = None                  # (tsval, tsecr) to put on segments when set
        self.nxt = 0                    # peer's next relative seq
        self.una = 0                    # what the peer acks by default (relative stack seq)
        self.sock = None

    def inject_abs(self, seq, ack, flags, payload=b"", window=None, options=b""):
        self.p.inject(self.peer_port, self.stack_port, seq, ack, flags, self.window if window is None else window,
                      payload, options)

    def send(self, flags="A", payload=b"", seq=None, ack=None, window=None, options=None, advance=True):
        """Inject a segment; seq/ack relative (default: next seq, last acked)."""
        f = flags_of(flags)
        rseq = self.nxt if seq is None else seq
        rack = self.una if ack is None else ack
        if options is None:
            options = tcp_options(ts=self.ts) if self.ts is not None else b""
        self.inject_abs(self.peer_iss + 1 + rseq, self.stack_iss + 1 + rack, f, payload, window, options)
        if advance and seq is None:
            self.nxt += len(payload) + (1 if f & (FIN | SYN) else 0)

    def rel(self, s):
        s.rseq = (s.seq - self.stack_iss - 1) & M32
        s.rack = (s.ack - self.peer_iss - 1) & M32 if s.flags & ACK else None
        return s

    def segs(self):
        return [self.rel(s) for s in self.p.segments()]

    def expect(self, flags, seq=None, ack=None, data=None, length=None, window=None, more=False):
        """Exactly one segment (or the first of several when more=True) with these fields."""
        segs = self.segs()
        assert segs, f"expected a [{flags}] segment, got nothing"
        if not more:
            assert len(segs) == 1, f"expected one segment, got {segs}"
        s = segs[0]
        self._check(s, flags, seq, ack, data, length, window)
        self._leftover = segs[1:]
        return s if not more else segs

    @staticmethod
    def _check(s, flags, seq, ack, data, length, window):
        assert s.flags & ~PSH == flags_of(flags) & ~PSH, f"flags {s.flag_str} != {flags}: {s}"
        if seq is not None:
            assert s.rseq == seq & M32, f"seq {s.rseq} != {seq}: {s}"
        if ack is not None:
            assert s.rack == ack & M32, f"ack {s.rack} != {ack}: {s}"
        if data is not None:
            assert s.payload == data, f"payload {s.payload[:40]!r} != {data[:40]!r}: {s}"
        if length is not None:
            assert len(s.payload) == length, f"len {len(s.payload)} != {length}: {s}"
        if window is not None:
            assert s.window == window, f"window {s.window} != {window}: {s}"

    def info(self):
        return self.p.stack.tcp_info(self.sock)

    def state(self):
        return self.info()["state"]


def ev_types(events):
    return [e[1] for e in events]


EV = dict(accept=lib.RUSTY_EV_TCP_ACCEPT, connected=lib.RUSTY_EV_TCP_CONNECTED, readable=lib.RUSTY_EV_TCP_READABLE,
          writable=lib.RUSTY_EV_TCP_WRITABLE, eof=lib.RUSTY_EV_TCP_EOF, closed=lib.RUSTY_EV_TCP_CLOSED)

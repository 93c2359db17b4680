"""trace: one decoded line per frame (aiorusty/nic/_core/trace.c), drained into logging."""

import logging
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from aiorusty._rusty import ffi, lib
from aiorusty.nic import open_device

ETH = bytes.fromhex("025200000002025200000001")     # dst 02:52:00:00:00:02, src 02:52:00:00:00:01


def close(dev):
    # Device.close() hands ffi.gc(ptr, None) - None on cffi 2 - to rusty_dev_close
    # (aiorusty/nic/_device.py, reported); release the handle directly.
    ptr, dev._ptr = dev._ptr, None
    if ptr is not None:
        ffi.release(ptr)


def ipv4(proto, l4, src=(10, 0, 0, 2), dst=(10, 0, 0, 1), frag=0, ttl=64):
    return ETH + b"\x08\x00" + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, frag, ttl, proto, 0,
                                           bytes(src), bytes(dst)) + l4


def tcp(sport, dport, seq, ack, flags, win, payload=b"", options=b""):
    off = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, 0) + options + payload


FRAMES = {
    "arp-request": (bytes.fromhex("ffffffffffff025200000001080600010800060400010252000000010a0000010000000000000a000002"),
                    "02:52:00:00:00:01>ff:ff:ff:ff:ff:ff ARP who-has 10.0.0.2 tell 10.0.0.1"),
    "arp-reply": (ETH + bytes.fromhex("0806000108000604000202520000000b0a000002025200000001" "0a000001"),
                  "ARP reply 10.0.0.2 is-at 02:52:00:00:00:0b"),
    "syn-ack": (ipv4(6, tcp(80, 41234, 1000, 2001, 0x12, 64240,
                            options=bytes.fromhex("020405b4" "0103030701010402"))),
                "02:52:00:00:00:01>02:52:00:00:00:02 IPv4 10.0.0.2>10.0.0.1 TCP 80>41234 [S.] seq=1000 ack=2001 "
                "win=64240 len=0 mss=1460 wscale=7 sackOK"),
    "data": (ipv4(6, tcp(80, 41234, 5, 6, 0x18, 500, payload=b"hello")),
             "TCP 80>41234 [P.] seq=5 ack=6 win=500 len=5"),
    "syn": (ipv4(6, tcp(41234, 80, 7, 0, 0x02, 1000)), "TCP 41234>80 [S] seq=7 win=1000 len=0"),
    "udp": (ipv4(17, struct.pack("!HHHH", 5353, 53, 8 + 12, 0) + b"x" * 12), "IPv4 10.0.0.2>10.0.0.1 UDP 5353>53 len=12"),
    "ping": (ipv4(1, struct.pack("!BBHHH", 8, 0, 0, 0x1234, 7) + b"p" * 56), "ICMP echo request id=4660 seq=7 len=56"),
    "unreach": (ipv4(1, struct.pack("!BBHI", 3, 3, 0, 0) + b"\x45" + b"\x00" * 27), "ICMP unreachable code=3"),
    "fragment": (ipv4(17, b"z" * 16, frag=0x0002), "frag id=1 off=16 proto 17 len=16"),
    "ipv6": (ETH + b"\x86\xdd" + b"\x60" + b"\x00" * 39, "IPv6 len=40"),
    "other": (ETH + b"\x88\xb5" + b"\x00" * 46, "ethertype 0x88b5 len=46"),
}

MALFORMED = {
    "runt": (b"\x01\x02\x03\x04\x05", "malformed: 5-byte frame"),
    "empty": (b"", "malformed: 0-byte frame"),
    "short-arp": (ETH + b"\x08\x06\x00\x01", "ARP malformed"),
    "short-ip": (ETH + b"\x08\x00\x45\x00", "IPv4 malformed"),
    "bad-ihl": (ipv4(6, tcp(1, 2, 3, 4, 0x10, 5))[:14] + b"\x4f" + ipv4(6, tcp(1, 2, 3, 4, 0x10, 5))[15:], "malformed"),
    "truncated-ip": (ipv4(17, struct.pack("!HHHH", 1, 2, 8 + 100, 0) + b"y" * 100)[:60], "truncated"),
    "bad-tcp-offset": (ipv4(6, tcp(1, 2, 3, 4, 0x10, 5)[:12] + b"\xf0" + tcp(1, 2, 3, 4, 0x10, 5)[13:]),
                       "TCP 1>2 malformed: data offset 60"),
    "bad-udp-length": (ipv4(17, struct.pack("!HHHH", 1, 2, 300, 0)), "UDP 1>2 len=292 malformed"),
    "bad-tcp-option": (ipv4(6, tcp(1, 2, 3, 4, 0x02, 5, options=b"\x02\x09\x00\x00")), "opts-malformed"),
}


def drain(dev):
    buf = ffi.new("char[]", 65536)
    n = lib.rusty_trace_drain(dev.ptr, buf, 65536)
    return ffi.string(buf, n).decode().splitlines() if n else []


def roundtrip(frames):
    dev = open_device("loopback,trace=1")
    try:
        for f in frames:
            dev.send(f)
        for f in frames:
            assert dev.recv() == f              # the tracer never changes a frame
        return drain(dev)
    finally:
        close(dev)


def test_each_protocol_gets_a_decoded_line_in_both_directions():
    frames = [f for f, _ in FRAMES.values()]
    lines = roundtrip(frames)
    assert len(lines) == 2 * len(frames)
    for i, (name, (_, expected)) in enumerate(FRAMES.items()):
        tx, rx = lines[i], lines[len(frames) + i]
        assert tx.startswith("tx ") and rx.startswith("rx "), (tx, rx)
        assert expected in tx and tx[3:] == rx[3:], (name, tx)


def test_malformed_frames_get_a_line_saying_so():
    frames = [f for f, _ in MALFORMED.values()]
    lines = roundtrip(frames)
    for i, (name, (_, expected)) in enumerate(MALFORMED.items()):
        assert expected in lines[i] and "malformed" in lines[i], (name, lines[i])


def test_lines_reach_logging_through_drain_trace(caplog):
    dev = open_device("loopback,trace=1")
    try:
        dev.send(FRAMES["ping"][0])
        dev.recv()
        with caplog.at_level(logging.INFO, logger="aiorusty.trace"):
            dev.drain_trace()
        msgs = [r.getMessage() for r in caplog.records if r.name == "aiorusty.trace"]
        assert len(msgs) == 2 and all("ICMP echo request id=4660 seq=7" in m for m in msgs)
        assert drain(dev) == []                 # drained once, gone
    finally:
        close(dev)


def test_a_full_ring_drops_the_oldest_lines_and_says_how_many():
    dev = open_device("loopback,trace=1")
    try:
        frame = FRAMES["syn-ack"][0]
        for i in range(1000):                   # 2000 lines of ~130 bytes > the 64 KiB ring
            dev.send(frame)
            dev.recv()
        lines = drain(dev) + drain(dev)
        assert lines[0].startswith("(trace: ") and "older lines dropped" in lines[0]
        dropped = int(lines[0].split()[1])
        assert dropped > 0 and dropped + len(lines) - 1 == 2000
        assert lines[-1].startswith("rx ")      # the newest are kept
    finally:
        close(dev)


def test_drain_copies_whole_lines_only():
    dev = open_device("loopback,trace=1")
    try:
        for _ in range(3):
            dev.send(FRAMES["udp"][0])
        buf = ffi.new("char[]", 100)
        n = lib.rusty_trace_drain(dev.ptr, buf, 100)
        text = ffi.string(buf, n).decode()
        assert text.endswith("\n") and text.count("\n") == 1
        assert len(drain(dev)) == 2
    finally:
        close(dev)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=10), st.sampled_from([b"\x08\x00", b"\x08\x06", b"\x81\x00"]),
       st.binary(max_size=1))
def test_random_bytes_never_crash_and_give_one_line_each(bodies, ethertype, proto):
    frames = []
    for body in bodies:
        if len(body) > 10 and ethertype == b"\x08\x00":
            body = bytes([0x45]) + body[1:9] + (proto or body[9:10]) + body[10:]   # reach the L4 decoders
        frames.append(ETH + ethertype + body)
    frames += [b[:k] for b in bodies[:2] for k in (0, 13)]
    lines = roundtrip(frames)
    assert len(lines) == 2 * len(frames)

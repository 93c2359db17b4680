"""Frames as the stack hands them to a checksum-offloading device, and their checks."""

import struct

from aiorusty._errors import check
from aiorusty._rusty import lib


def ones_sum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def udp_partial(payload, src=(10, 0, 0, 1), dst=(10, 0, 0, 2)):
    """An Ethernet/IPv4/UDP frame as the stack hands it to an offloading device:
    the UDP checksum field holds the folded pseudo-header sum (RFC 768)."""
    ulen = 8 + len(payload)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 1, 0, 64, 17, 0, bytes(src), bytes(dst)))
    ip[10:12] = struct.pack("!H", 0xFFFF - ones_sum(bytes(ip)))
    pseudo = ones_sum(bytes(src) + bytes(dst) + struct.pack("!HH", 17, ulen))
    udp = struct.pack("!HHHH", 40000, 9, ulen, pseudo) + payload
    return bytes.fromhex("025200000002025200000001") + b"\x08\x00" + bytes(ip) + udp, 34, 6


def checksums_ok(frame):
    """(IPv4 header checksum valid, UDP checksum valid) of an Ethernet/IPv4/UDP frame."""
    ip, udp = frame[14:34], frame[34:]
    pseudo = ip[12:20] + struct.pack("!HH", 17, len(udp))
    return ones_sum(ip) == 0xFFFF, ones_sum(pseudo + udp) == 0xFFFF


def send_partial(dev, frame, start, offset, now=0, queue=0):
    check(lib.rusty_dev_send_partial(dev.ptr, queue, frame, len(frame), start, offset, now), "send_partial")

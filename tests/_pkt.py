"""Hand-built frames for stack tests: Ethernet, ARP, IPv4, ICMP, UDP, built and
decoded with struct in Python (independent of the C code under test)."""

import ipaddress
import struct

BROADCAST = b"\xff" * 6
ETH_IP, ETH_ARP = 0x0800, 0x0806


def mac(s):
    return bytes.fromhex(s.replace(":", ""))


def ip4(s):
    return ipaddress.IPv4Address(s).packed


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def eth(dst, src, ethertype, payload):
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return frame + b"\0" * max(0, 60 - len(frame))  # minimum frame, padded like a NIC


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, ip4(spa), tha, ip4(tpa))


def ipv4(src, dst, proto, payload, ttl=64, ident=1, frag=0x4000, tos=0, options=b"", bad_csum=False):
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(payload), ident, frag, ttl, proto, 0,
                      ip4(src), ip4(dst)) + options
    c = csum(hdr) ^ (0x5555 if bad_csum else 0)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def icmp(type_, code, rest, data=b""):
    msg = struct.pack("!BBHI", type_, code, 0, rest) + data
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


def echo_request(ident, seq, data=b"abcdefgh" * 7):
    return icmp(8, 0, (ident << 16) | seq, data)


def udp(src, dst, sport, dport, payload, checksum=True):
    length = 8 + len(payload)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    if not checksum:
        return hdr + payload
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, length)
    c = csum(pseudo + hdr + payload) or 0xFFFF
    return hdr[:6] + struct.pack("!H", c) + payload


class Frame:
    """A decoded frame: eth fields, and ip / arp / icmp / udp views when present."""

    def __init__(self, raw):
        self.raw = raw
        self.dst, self.src, self.type = raw[:6], raw[6:12], struct.unpack("!H", raw[12:14])[0]
        self.arp = self.ip = self.icmp = self.udp = None
        body = raw[14:]
        if self.type == ETH_ARP:
            f = struct.unpack("!HHBBH6s4s6s4s", body[:28])
            self.arp = dict(op=f[4], sha=f[5], spa=str(ipaddress.IPv4Address(f[6])), tha=f[7],
                            tpa=str(ipaddress.IPv4Address(f[8])))
        elif self.type == ETH_IP:
            ihl = (body[0] & 15) * 4
            total = struct.unpack("!H", body[2:4])[0]
            self.ip_header = body[:ihl]
            self.ip = dict(src=str(ipaddress.IPv4Address(body[12:16])), dst=str(ipaddress.IPv4Address(body[16:20])),
                           proto=body[9], ttl=body[8], frag=struct.unpack("!H", body[6:8])[0],
                           csum_ok=csum(body[:ihl]) == 0, total=total)
            self.l4 = body[ihl:total]
            if self.ip["proto"] == 1:
                t, c, _, rest = struct.unpack("!BBHI", self.l4[:8])
                self.icmp = dict(type=t, code=c, rest=rest, data=self.l4[8:], csum_ok=csum(self.l4) == 0)
            elif self.ip["proto"] == 17:
                sp, dp, ln, ck = struct.unpack("!HHHH", self.l4[:8])
                pseudo = body[12:20] + struct.pack("!BBH", 0, 17, ln)
                self.udp = dict(sport=sp, dport=dp, length=ln, csum=ck, data=self.l4[8:ln],
                                csum_ok=ck == 0 or csum(pseudo + self.l4[:ln]) == 0)

    def __repr__(self):
        return f"<Frame type={self.type:#x} arp={self.arp} ip={self.ip} icmp={self.icmp} udp={self.udp}>"


def drain(dev):
    """All frames waiting on a device end, decoded."""
    out = []
    while (raw := dev.recv()) is not None:
        out.append(Frame(raw))
    return out

"""Turn captures of the scripted TCP tests into seed inputs of fuzz/stack_script.c.

    AIORUSTY_TEST_PCAP=/tmp/caps python -m pytest tests/tcp/test_close.py ...
    python fuzz/seeds_from_pcap.py /tmp/caps fuzz/corpus/stack_script

Each capture (the stack's end of the pair, both directions) becomes one script:
what the test's peer sent, as harness steps. TCP segments become SEG steps on a
harness connection - the test's connections are numbered in order of their
first segment and each gets a fresh peer port towards the harness's listener,
or, when the stack opened it, the harness's active connection (slot 4) - keeping
flags, window, options and payload; the harness supplies sequence numbers
relative to its own connection. Other IPv4 and ARP frames become RAW steps
readdressed to the harness's stack. Frames the stack sent are left out (they are
its answers); each gap between the peer's frames becomes a 1 ms ADVANCE.
"""

import os
import struct
import sys

OP_RAW, OP_SEG, OP_ADVANCE = 0, 1, 2
SLOT_ACTIVE = 4
MAX_STEPS = 200
MAX_BYTES = 4000


def read_pcap(path):
    data = open(path, "rb").read()
    off, frames = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        frames.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return frames


def seed_of(frames):
    if not frames:
        return None
    # The stack's MAC: the source of most frames it sent; the peer's frames are the others.
    macs = [f[6:12] for f in frames if len(f) >= 14]
    stack_mac = max(set(macs), key=macs.count)
    conns, out, steps = {}, bytearray([0]), 0
    for f in frames:
        if len(f) < 14 or f[6:12] == stack_mac or steps >= MAX_STEPS:
            continue
        etype = struct.unpack_from("!H", f, 12)[0]
        step = None
        if etype == 0x0800 and len(f) >= 34 and f[23] == 6:
            ihl = (f[14] & 15) * 4
            tcp = f[14 + ihl:14 + struct.unpack_from("!H", f, 16)[0]]
            if len(tcp) < 20:
                continue
            sport, dport = struct.unpack_from("!HH", tcp)
            flags, window = tcp[13], struct.unpack_from("!H", tcp, 14)[0]
            thl = (tcp[12] >> 4) * 4
            opts, payload = bytes(tcp[20:thl]), bytes(tcp[thl:])
            key = (sport, dport)
            if key not in conns:
                passive = flags & 0x12 == 0x02
                conns[key] = (len(conns) % 200, 4 | 8) if passive else (SLOT_ACTIVE, 0)
            which, mode = conns[key]
            step = (bytes([OP_SEG, which, flags, mode]) + struct.pack("<hhH", 0, 0, window)
                    + bytes([len(opts)]) + opts + struct.pack("<H", len(payload)) + payload)
        elif etype in (0x0800, 0x0806):
            raw = bytearray(f[:1500])
            if etype == 0x0800 and len(raw) >= 34:
                raw[26:30] = bytes([10, 0, 0, 2])           # from the harness's peer to its stack
                raw[30:34] = bytes([10, 0, 0, 1])
                ihl = (raw[14] & 15) * 4
                if raw[23] == 17 and len(raw) >= 14 + ihl + 8:
                    raw[14 + ihl + 6:14 + ihl + 8] = b"\0\0"  # UDP: no checksum (RFC 768)
            step = bytes([OP_RAW, 3]) + struct.pack("<H", len(raw)) + bytes(raw)
        if step is None or len(out) + len(step) + 3 > MAX_BYTES:
            continue
        if steps:
            out += bytes([OP_ADVANCE]) + struct.pack("<H", 1000)
        out += step
        steps += 1
    return bytes(out) if steps else None


def main(src, dst):
    os.makedirs(dst, exist_ok=True)
    made = 0
    for name in sorted(os.listdir(src)):
        if not name.endswith(".pcap"):
            continue
        seed = seed_of(read_pcap(os.path.join(src, name)))
        if seed:
            with open(os.path.join(dst, name[:-5].replace("tests_tcp_", "")), "wb") as f:
                f.write(seed)
            made += 1
    print(f"{made} seeds in {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: seeds_from_pcap.py CAPTURE_DIR SEED_DIR")
    main(sys.argv[1], sys.argv[2])

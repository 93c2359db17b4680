"""pcap: the capture wrapper (aiorusty/nic/_core/pcap.c) writes files tcpdump reads."""

import struct
import time

from _netns import need_tool, sh

from aiorusty._rusty import lib
from aiorusty.nic import open_device
from _offload import checksums_ok, send_partial, udp_partial




ARP = bytes.fromhex("ffffffffffff025200000001080600010800060400010252000000010a0000010000000000000a000002")


def udp_frame(i, payload_len):
    payload = bytes((i + k) % 256 for k in range(payload_len))
    udp = struct.pack("!HHHH", 40000 + i, 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return bytes.fromhex("025200000002025200000001") + b"\x08\x00" + ip + udp


def read_pcap(path):
    data = open(path, "rb").read()
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    assert snaplen >= 2048
    records, off = [], 24
    while off < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        assert incl == orig and usec < 1_000_000
        records.append((sec + usec / 1e6, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    assert off == len(data)
    return records


def test_frames_in_both_directions_are_captured_byte_for_byte(tmp_path):
    path = tmp_path / "cap.pcap"
    frames = [ARP] + [udp_frame(i, n) for i, n in enumerate((0, 1, 100, 1472))]
    before = time.time()
    dev = open_device(f"loopback,pcap={path}")
    try:
        assert dev.info()["offloads"] & lib.RUSTY_OFF_TX_CSUM == 0      # checksums done before capture
        for f in frames:
            dev.send(f)
        got = [dev.recv() for _ in frames]
        assert got == frames
    finally:
        dev.close()
    after = time.time()
    records = read_pcap(path)
    assert [r[1] for r in records] == frames + frames                   # tx then rx
    stamps = [r[0] for r in records]
    assert stamps == sorted(stamps)
    assert before - 1 <= stamps[0] and stamps[-1] <= after + 1          # wall-clock microseconds


def test_tcpdump_reads_the_capture(tmp_path):
    need_tool("tcpdump")
    path = tmp_path / "cap.pcap"
    dev = open_device(f"loopback,pcap={path}")
    try:
        dev.send(ARP)
        for i in range(20):
            dev.send(udp_frame(i, 10 * i))
        while dev.recv() is not None:
            pass
    finally:
        dev.close()
    out = sh("tcpdump", "-r", path, "-nn").stdout.splitlines()
    assert len(out) == 42
    assert sum("ARP, Request who-has 10.0.0.2 tell 10.0.0.1" in line for line in out) == 2
    assert sum("10.0.0.1.40005 > 10.0.0.2.9: UDP, length 50" in line for line in out) == 2


def test_the_file_is_flushed_while_the_device_runs(tmp_path):
    path = tmp_path / "cap.pcap"
    dev = open_device(f"loopback,pcap={path}")
    try:
        for i in range(70):                     # tx records: flushed every 64 frames
            dev.send(udp_frame(i, 20))
        assert len(read_pcap(path)) >= 64
    finally:
        dev.close()
    assert len(read_pcap(path)) == 70


def test_an_unwritable_path_is_a_clear_error(tmp_path):
    import pytest
    with pytest.raises(FileNotFoundError) as e:
        open_device(f"loopback,pcap={tmp_path / 'no' / 'such' / 'dir.pcap'}")
    assert "pcap file" in str(e.value)


def test_partial_checksums_are_finished_before_the_capture(tmp_path):
    path = tmp_path / "cap.pcap"
    f, start, offset = udp_partial(b"checksum me" * 9)
    assert checksums_ok(f) == (True, False)     # as the stack leaves it for the device
    dev = open_device(f"loopback,pcap={path}")  # loopback offloads TX_CSUM; the capture hides that
    try:
        send_partial(dev, f, start, offset)
        got = dev.recv()
    finally:
        dev.close()
    (_, tx), (_, rx) = read_pcap(path)
    assert checksums_ok(tx) == (True, True)
    assert tx == rx == got
    assert tx[:40] == f[:40] and tx[42:] == f[42:]     # only the checksum field changed

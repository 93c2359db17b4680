"""shm: what fuzz/shm_ring.c found, replayed (a peer index far ahead is in test_shm_hostile.py).

The test maps /dev/shm/aiorusty-NAME itself and plays the hostile side: any
byte of the file is the other process's to write, at any time. Each case
replays what the fuzzer found, through the normal Python device.
"""

import glob
import mmap
import os
import struct
import subprocess
import sys
import textwrap

import pytest

from aiorusty.nic import open_device

from _netns import unique

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HEADER_BYTES = 4096
RING_CTL = 192                          # head, tail, wants_wakeup: a cache line each
SLOT_BYTES = 2048
QUEUES_OFF = 16                         # struct shm_header: magic, version, header_bytes, queues
CLAIMS_OFF = 64                         # claim[16][2]: {pid, attaches}


@pytest.fixture
def name():
    n = unique("shmh")
    yield n
    for path in glob.glob(f"/dev/shm/aiorusty-{n}") + glob.glob(f"/dev/shm/aiorusty-{n}.q*"):
        os.unlink(path)


def peer_map(name):
    fd = os.open(f"/dev/shm/aiorusty-{name}", os.O_RDWR)
    try:
        return mmap.mmap(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def test_a_header_rewritten_to_a_huge_queue_count_is_not_trusted_by_close(name):
    # shm_close counts live claims to decide whether to remove the name, over the
    # header's queue count as read from the file: 0xffffffff walked claim[] off its
    # end (the fuzzer's UBSan build stopped at index 16; a normal build reads on
    # through the mapping). A live pid planted past the table, where only such a
    # walk looks, shows whether close still trusts the count.
    dev = open_device(f"shm:{name},ring=4")
    m = peer_map(name)
    try:
        struct.pack_into("<I", m, QUEUES_OFF, 0xffffffff)
        struct.pack_into("<i", m, CLAIMS_OFF + 20 * 2 * 8, os.getpid())   # "claim[20][0]"
    finally:
        m.close()
    dev.close()
    assert not os.path.exists(f"/dev/shm/aiorusty-{name}")


def test_a_slot_longer_than_a_buffer_takes_is_skipped(name):
    # A slot holds 2040 bytes, a frame buffer 2048 after 128 of headroom: a length in
    # between passed the slot check and was copied through the NULL that
    # rusty_buf_put returns (SIGSEGV). Run in a child so that fails this test only.
    child = textwrap.dedent(f"""
        import mmap, os, struct, sys
        sys.path.insert(0, {ROOT!r})
        from aiorusty.nic import open_device
        dev = open_device("shm:{name},ring=4")
        fd = os.open("/dev/shm/aiorusty-{name}", os.O_RDWR)
        m = mmap.mmap(fd, os.fstat(fd).st_size)
        slots = struct.unpack_from("<I", m, 20)[0]
        rx = {HEADER_BYTES} + {RING_CTL} + slots * {SLOT_BYTES}
        tail = struct.unpack_from("<I", m, rx + 64)[0]
        struct.pack_into("<HHHH", m, rx + {RING_CTL} + (tail % slots) * {SLOT_BYTES}, 2000, 0, 0, 0)
        struct.pack_into("<I", m, rx, tail + 1)
        print(dev.recv(), dev.stats()["rx_errors"])
        dev.close()
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.split() == ["None", "1"], out.stderr

"""Two aiorusty stacks over an in-process pair with the fault injector between
them, in virtual time: deterministic by seed, so a failure here is a regression
case that replays exactly."""

import hashlib
import random

import pytest

from aiorusty._rusty import ffi, lib
from aiorusty.nic import open_pair
from aiorusty.nic._device import Device
from aiorusty.nic._spec import Interface
from aiorusty.tcp import Stack
from aiorusty.tcp._stack import close_device


def faulty(dev, seed, drop=0.0, dup=0.0, reorder=0.0, corrupt=0.0, delay_us=0):
    """Wrap a pair end in the fault injector (the wrapper takes the device over)."""
    ptr = dev._ptr
    dev._ptr = None
    ffi.gc(ptr, None)
    fc = ffi.new("struct rusty_faults_config *")
    fc.seed = seed
    fc.drop_ppm = int(drop * 1e6)
    fc.duplicate_ppm = int(dup * 1e6)
    fc.reorder_ppm = int(reorder * 1e6)
    fc.corrupt_ppm = int(corrupt * 1e6)
    fc.delay_us = delay_us
    fc.direction = 3
    out = ffi.new("struct rusty_dev **")
    ret = lib.rusty_faults_wrap(ptr, fc, out)
    if ret == -38:
        pytest.skip("fault injector not built")
    assert ret == 0
    return Device(out[0], Interface("loopback"))


def transfer(seed, n=300_000, **faults):
    a, b = open_pair(pool=8192)
    a = faulty(a, seed, **faults)
    sa, sb = Stack(seed=seed, tcp_msl_us=1000), Stack(seed=seed + 1, tcp_msl_us=1000)
    now = 0
    try:
        sa.add_interface(a, 0, ip="10.2.0.1/24")
        sb.add_interface(b, 0, ip="10.2.0.2/24")
        lsock = sa.tcp_listen(None, 9)
        up = random.Random(seed).randbytes(n)
        down = random.Random(seed + 100).randbytes(n)
        cs = sb.tcp_connect(("10.2.0.1", 9), now_us=0)
        ss = None
        sides = {}
        for _ in range(400_000):
            now += 200
            sa.poll(now)
            sb.poll(now)
            if ss is None:
                ss = sa.tcp_accept(lsock)
                if ss is not None:
                    sides = {"a": [sa, ss, down, 0, hashlib.sha256(), 0, False],
                             "b": [sb, cs, up, 0, hashlib.sha256(), 0, False]}
            done = 0
            for side in sides.values():
                st, s, data, off, h, got, eof = side
                while off < len(data):
                    k = st.tcp_send(s, data[off:off + 65536], now)
                    if not k:
                        break
                    off += k
                    if off == len(data):
                        st.tcp_shutdown(s, now_us=now)
                while not eof:
                    d = st.tcp_recv(s)
                    if d is None:
                        break
                    if d == b"":
                        eof = True
                    h.update(d)
                    got += len(d)
                side[3:] = [off, h, got, eof]
                done += eof and off == len(data)
            if done == 2:
                break
        assert sides, "never connected"
        assert sides["a"][4].hexdigest() == hashlib.sha256(up).hexdigest()
        assert sides["b"][4].hexdigest() == hashlib.sha256(down).hexdigest()
        return sa.stats(), sb.stats()
    finally:
        sa.close()
        sb.close()
        close_device(a)
        close_device(b)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_loss_5pct(seed):
    st_a, st_b = transfer(seed, drop=0.05)
    assert st_a["tcp_retransmits"] + st_b["tcp_retransmits"] > 0


def test_reorder_dup_corrupt_delay():
    st_a, st_b = transfer(7, reorder=0.1, dup=0.05, corrupt=0.01, delay_us=5000)
    assert st_a["tcp_ooo_segments"] + st_b["tcp_ooo_segments"] > 0
    assert st_a["tcp_bad_checksum"] + st_b["tcp_bad_checksum"] + st_a["ip_bad_checksum"] + st_b["ip_bad_checksum"] > 0


def test_heavy_loss_20pct():
    transfer(11, n=100_000, drop=0.2)

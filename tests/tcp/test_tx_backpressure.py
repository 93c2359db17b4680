"""A device whose ring is full: TCP holds its segments back instead of losing them
(stack.c, Transmit). Two stacks on the two sides of a shm link with 16-slot rings
(a full shm ring refuses frames), a transfer of 400 KB: everything arrives, in
order, without one retransmission or dropped frame, though the ring filled again
and again."""

import os

from aiorusty.tcp import Stack

from _lockstep import Lockstep


def test_full_device_ring_holds_segments_back_without_loss():
    name = f"txbp{os.getpid()}"
    sa = Stack([f"shm:{name},ring=16,ip=10.1.0.1/24"], seed=1)
    sb = Stack([f"shm:{name},ring=16,ip=10.1.0.2/24"], seed=2)
    clock = Lockstep(sa, sb)
    try:
        cs, ss = clock.connect(sa.tcp_listen(None, 80))
        assert ss is not None
        data = bytes(i % 253 for i in range(400_000))
        sent, got = 0, bytearray()

        def step():
            nonlocal sent
            if sent < len(data):
                sent += sb.tcp_send(cs, data[sent:sent + 65536], clock.now)
            got.extend(sa.tcp_recv(ss, 1 << 20) or b"")
            return len(got) == len(data)
        clock.tick(step, n=20_000)
        assert bytes(got) == data
        st = sb.stats()
        assert st["tx_device_busy"] > 0, "the ring never filled: the test proves nothing"
        assert st["tx_device_full"] == 0 and st["tcp_retransmits"] == 0, st
        assert sa.stats()["tcp_rx_past_window"] == 0
    finally:
        sa.close()
        sb.close()

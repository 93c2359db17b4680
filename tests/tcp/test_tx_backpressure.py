"""A device whose ring is full: TCP holds its segments back instead of losing them
(stack.c, Transmit). Two stacks on the two sides of a shm link with 16-slot rings
(a full shm ring refuses frames), a transfer of 400 KB: everything arrives, in
order, without one retransmission or dropped frame, though the ring filled again
and again."""

import os

from aiorusty.tcp import Stack


def test_full_device_ring_holds_segments_back_without_loss():
    name = f"txbp{os.getpid()}"
    sa = Stack([f"shm:{name},ring=16,ip=10.1.0.1/24"], seed=1)
    sb = Stack([f"shm:{name},ring=16,ip=10.1.0.2/24"], seed=2)
    try:
        now = 0
        lsock = sb.tcp_listen(None, 80)
        cs = sa.tcp_connect(("10.1.0.2", 80), now_us=now)
        data = bytes(i % 253 for i in range(400_000))
        sent, got, ss = 0, bytearray(), None
        for _ in range(20_000):
            now += 20
            sa.poll(now)
            sb.poll(now)
            if ss is None:
                ss = sb.tcp_accept(lsock)
                continue
            if sent < len(data):
                sent += sa.tcp_send(cs, data[sent:sent + 65536], now)
            got += sb.tcp_recv(ss, 1 << 20) or b""
            if len(got) == len(data):
                break
        assert bytes(got) == data
        st = sa.stats()
        assert st["tx_device_busy"] > 0, "the ring never filled: the test proves nothing"
        assert st["tx_device_full"] == 0 and st["tcp_retransmits"] == 0, st
        assert sb.stats()["tcp_rx_past_window"] == 0
    finally:
        sa.close()
        sb.close()

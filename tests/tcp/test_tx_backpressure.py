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


def test_a_device_that_takes_nothing_is_retried_less_and_less_often():
    """A stopped peer (never polls): the sender's retries of its full ring back off from
    TX_RETRY_US to TX_RETRY_MAX_US instead of waking its loop every 50 us; once the
    peer takes frames again, the next retry comes after 50 us."""
    name = f"txbo{os.getpid()}"
    sa = Stack([f"shm:{name},ring=4,ip=10.1.0.1/24"], seed=1)    # the initial window overfills it
    sb = Stack([f"shm:{name},ring=4,ip=10.1.0.2/24"], seed=2)
    clock = Lockstep(sa, sb)
    try:
        cs, ss = clock.connect(sa.tcp_listen(None, 80))
        assert ss is not None
        now = clock.now
        sb.tcp_send(cs, bytes(200_000), now)
        gaps = []
        for _ in range(30):                 # sa is stopped: only sb runs, when it asks to
            sb.poll(now)
            deadline = sb.next_deadline(now)
            assert deadline is not None and deadline > now, "a full device made the stack spin"
            gaps.append(deadline - now)
            now = deadline
        assert sb.stats()["tx_device_busy"] > 0
        # 50, 50, 100, 200, ... 10 ms, 10 ms, ... (the retransmission timer may come first once)
        assert gaps[0] == 50 and max(gaps) == 10_000, gaps
        assert gaps[:12] == sorted(gaps[:12]) and gaps.count(10_000) > 15, gaps
        sa.poll(now)                        # the peer resumes and drains its ring
        sb.poll(now + 1)
        assert sb.next_deadline(now + 1) - (now + 1) == 50
    finally:
        sa.close()
        sb.close()

"""The timer heap cannot be full: every TCP timer is embedded in its TCB and the
heap gets a slot for each (1 per ARP entry at start, 3 per control block as
slabs of blocks are added), whatever max_timers asks for at start, so no arm
is ever refused and no timer lost. (test_table_growth.py: a retransmission on a
connection in the second slab.)"""

from _script import Peer


def test_small_max_timers_loses_no_timer():
    # A heap of max_timers=2 would hold the peer's ARP entry and one TCP timer:
    # if it stayed that small, most connections below would never retransmit.
    p = Peer(max_timers=2, max_tcp_conns=8)
    try:
        conns = []
        lsock = p.listen(80, backlog=16)
        for i in range(8):
            conns.append(p.passive_open(peer_port=41000 + i, listener=lsock))
        for c in conns:
            p.stack.tcp_setsockopt(c.sock, "keepalive", 1)
            p.stack.tcp_setsockopt(c.sock, "keepidle", 10)
            p.stack.tcp_send(c.sock, b"data", p.now)
        p.poll()
        first = p.segments()
        assert len(first) == 8
        # RTO, keep-alive and ARP timers of all eight connections are armed at once.
        assert p.stack.stats()["timers"] >= 8 * 2 + 1
        p.advance(p.stack.next_deadline(p.now) - p.now)
        again = p.segments()
        assert sorted(s.dport for s in again) == [41000 + i for i in range(8)]   # every one retransmitted
        assert all(s.payload == b"data" for s in again)
    finally:
        p.close()


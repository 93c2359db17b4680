"""The stack's tables grow with use: control blocks come in slabs of 1024, the
4-tuple hash starts at 256 buckets and doubles, the timer heap gets three slots
per block as slabs are added, the socket table starts at 64 slots and the event
ring at 1024 events, all doubling up to their configured limits. These tests
cross each first size with live connections, and check the limits: EMFILE and
a counted SYN drop at max_tcp_conns, and stale handles still caught after the
socket table moved."""

import errno

import pytest

from aiorusty.nic import open_pair
from aiorusty.tcp import Stack

from _script import Conn, Peer

FIRST_SLAB = 1024                       # tcp.h TCP_TCB_SLAB
N = FIRST_SLAB + 76                     # past the first slab, the first hash size and the first event ring
READABLE, WRITABLE = 18, 19             # RUSTY_EV_TCP_*


class Pair:
    """Stacks sa (10.1.0.1, server) and sb (10.1.0.2, client) on a pair link, polled
    together on a virtual clock; events each poll returned are kept per stack."""

    def __init__(self, sa_config=None, **config):
        self.a, self.b = open_pair(pool=8192, ring=4096)
        self.sa = Stack(seed=1, **{**config, **(sa_config or {})})
        self.sb = Stack(seed=2, **config)
        self.sa.add_interface(self.a, 0, ip="10.1.0.1/24")
        self.sb.add_interface(self.b, 0, ip="10.1.0.2/24")
        self.now = 0
        self.events = {self.sa: [], self.sb: []}
        # Resolve each other's MAC first: SYNs held for ARP are bounded.
        self.sb.ping("10.1.0.1", 1, 1, now_us=self.now)
        self.tick(5)

    def tick(self, n=1):
        for _ in range(n):
            self.now += 100
            for s in (self.sa, self.sb):
                self.events[s] += s.poll(self.now)

    def open(self, lsock, n, accept=True, batch=200):
        """n connections sb -> sa:80, handshakes done; (client, server) handle lists, the
        server's i-th the other end of the client's i-th (servers empty when not
        accepting: the connections wait in the accept queue)."""
        clients, servers = [], []
        while len(clients) < n:
            k = min(batch, n - len(clients))
            new = [self.sb.tcp_connect(("10.1.0.1", 80), now_us=self.now) for _ in range(k)]
            clients += new
            for _ in range(50):
                self.tick()
                while accept and (h := self.sa.tcp_accept(lsock)) is not None:
                    servers.append(h)
                if (len(servers) == len(clients) or not accept) and \
                        all(self.sb.tcp_info(c)["state"] == "ESTABLISHED" for c in new):
                    break
            else:
                raise AssertionError(f"handshakes did not complete: {self.sa.stats()}")
        if accept:                                  # in the clients' order (accepts come as handshakes end)
            by_port = {self.sa.tcp_endpoints(h)[1][1]: h for h in servers}
            servers = [by_port[self.sb.tcp_endpoints(c)[0][1]] for c in clients]
        return clients, servers

    def close(self):
        for s in (self.sa, self.sb):
            s.close()
        self.a.close()
        self.b.close()


@pytest.fixture
def pair():
    p = Pair(tcp_sndbuf=4096, tcp_rcvbuf=4096)
    yield p
    p.close()


def test_connections_past_every_first_size_all_work(pair):
    sa, sb = pair.sa, pair.sb
    lsock = sa.tcp_listen(None, 80, backlog=N)
    clients, servers = pair.open(lsock, N)
    assert sa.stats()["tcp_conns"] == N and sb.stats()["tcp_conns"] == N
    assert sa.stats()["sockets"] == N + 1           # the table grew from 64 slots
    # Each side's hash finds every connection: a distinct message each way arrives
    # on the right socket.
    for i, (c, s) in enumerate(zip(clients, servers)):
        sb.tcp_send(c, b"c%d" % i, pair.now)
        sa.tcp_send(s, b"s%d" % i, pair.now)
    pair.tick(40)
    assert [sa.tcp_recv(s) for s in servers] == [b"c%d" % i for i in range(N)]
    assert [sb.tcp_recv(c) for c in clients] == [b"s%d" % i for i in range(N)]
    # A keep-alive timer on every connection: the heap holds more than its first size.
    for s in servers:
        sa.tcp_setsockopt(s, "keepalive", 1)
    assert sa.stats()["timers"] >= N
    st = sa.stats()
    assert st["events_dropped"] == 0 and st["tcp_conns_refused"] == 0


def test_retransmission_on_a_connection_made_after_the_heap_grew(pair):
    sa, sb = pair.sa, pair.sb
    lsock = sa.tcp_listen(None, 80, backlog=N)
    pair.open(lsock, FIRST_SLAB)                    # fills the first slab and its timer slots
    (c,), (s,) = pair.open(lsock, 1)                # in the second slab
    for h in pair.open(lsock, 100)[1]:              # ... with many timers armed beside it
        sa.tcp_setsockopt(h, "keepalive", 1)
    sa.tcp_send(s, b"lost once", pair.now)
    # Only sa runs: its segment waits unanswered on the link until the RTO fires.
    t = pair.now
    while sa.stats()["tcp_retransmits"] == 0 and t < pair.now + 3_000_000:
        t = sa.next_deadline(t)
        sa.poll(t)
    assert sa.tcp_info(s)["retransmits"] == 1
    pair.now = t
    pair.tick(5)
    assert sb.tcp_recv(c) == b"lost once"


def test_events_beyond_the_first_ring_are_kept():
    """Accepting N connections that each sent data raises READABLE and WRITABLE on
    each at the next poll: more than the event ring's first 1024 slots."""
    p = Pair(tcp_sndbuf=4096, tcp_rcvbuf=4096)
    try:
        lsock = p.sa.tcp_listen(None, 80, backlog=N)
        clients, _ = p.open(lsock, N, accept=False)
        for c in clients:
            p.sb.tcp_send(c, b"hi", p.now)
        p.tick(10)
        servers = [p.sa.tcp_accept(lsock) for _ in range(N)]
        assert None not in servers
        events = p.sa.poll(p.now)
        while len(events) < 2 * N:                  # Python takes 1024 a poll; the rest wait in C
            more = p.sa.poll(p.now)
            assert more, f"events lost: {len(events)} of {2 * N}, {p.sa.stats()['events_dropped']} dropped"
            events += more
        assert p.sa.stats()["events_dropped"] == 0
        readable = {e[0] for e in events if e[1] == READABLE}
        assert readable == set(servers)
        assert {e[0] for e in events if e[1] == WRITABLE} == set(servers)
    finally:
        p.close()


def test_max_tcp_conns_refuses_connect_and_syn():
    # 1030 blocks: a full slab and a short one.
    p = Peer(max_tcp_conns=FIRST_SLAB + 6, tcp_sndbuf=4096, tcp_rcvbuf=4096)
    try:
        lsock = p.listen(80, backlog=4)
        conns = [p.passive_open(peer_port=41000 + i, listener=lsock) for i in range(3)]
        for i in range(FIRST_SLAB + 3):
            p.stack.tcp_connect(("10.0.0.2", 1000 + i), now_us=p.now)
        assert p.stack.stats()["tcp_conns"] == FIRST_SLAB + 6
        with pytest.raises(OSError) as e:
            p.stack.tcp_connect(("10.0.0.2", 1), now_us=p.now)
        assert e.value.errno == errno.EMFILE
        while p.segments():                         # the SYNs above (the link takes them in bursts)
            p.poll()
        Conn(p, 80, 42000, peer_iss=1).inject_abs(1, 0, "S")
        p.nothing()                                 # no SYN-ACK: the SYN was dropped
        assert p.stack.stats()["tcp_conns_refused"] == 2
        # A block given back is used again.
        p.stack.tcp_abort(conns[0].sock, p.now)
        p.stack.tcp_connect(("10.0.0.2", 1), now_us=p.now)
        assert p.stack.stats()["tcp_conns_refused"] == 2
    finally:
        p.close()


def test_stale_handle_rejected_after_socket_table_grew():
    s = Stack(["loopback,ip=10.9.0.1/24"], seed=1, max_sockets=300)
    try:
        kept = s.udp_bind(None, 5000)
        stale = s.udp_bind(None, 5001)
        s.udp_close(stale)
        more = [s.udp_bind(None, 6000 + i) for i in range(299)]    # 64 -> 128 -> 256 -> 300 slots
        assert s.stats()["sockets"] == 300
        assert s.udp_getsockname(kept) == ("0.0.0.0", 5000)       # moved with the table
        with pytest.raises(OSError) as e:
            s.udp_getsockname(stale)                # its slot has a new socket, a new generation
        assert e.value.errno == errno.EBADF
        with pytest.raises(OSError) as e:
            s.udp_bind(None, 7000)                  # max_sockets slots in use
        assert e.value.errno == errno.EMFILE
        s.udp_close(more[0])
        assert s.udp_bind(None, 7000)
    finally:
        s.close()

"""TCP options: MSS (RFC 9293 3.7.1), window scaling (RFC 7323 2), timestamps and
RTTM (RFC 7323 3-4), PAWS (RFC 7323 5), SACK-permitted parsed and ignored, and
malformed option lists."""

import pytest

from _script import Conn, Peer, tcp_options


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def test_mss_limits_segments(p):
    c = p.passive_open(mss=500)
    p.stack.tcp_send(c.sock, b"m" * 1200, p.now)
    p.poll()
    assert [len(s.payload) for s in c.segs()] == [500, 500]   # Nagle holds the 200-byte tail


def test_no_mss_option_means_536(p):
    c = p.passive_open(options=b"")
    assert c.info()["mss"] == 536


def test_window_scaling_negotiated(p):
    c = p.passive_open(options=tcp_options(mss=1460, wscale=2))
    assert c.synack.opts["wscale"] == 7       # auto-tuning up to 6 MiB -> shift 7
    assert c.synack.window == 65535           # never scaled in a SYN
    info = c.info()
    assert (info["snd_wscale"], info["rcv_wscale"]) == (2, 7)
    c.send("A", window=1000)                  # 1000 << 2 = 4000 bytes
    assert c.info()["snd_wnd"] == 4000
    c.send("A", b"x" * 10)
    p.advance(40_000)
    s = c.expect("A", ack=10)
    assert s.window == (65536 - 10) >> 7     # the initial 64 KiB buffer, 10 bytes unread


def test_window_scale_capped_at_14(p):
    c = p.passive_open(options=tcp_options(mss=1460, wscale=20))
    assert c.info()["snd_wscale"] == 14


def test_no_window_scaling_unless_both(p):
    c = p.passive_open(options=tcp_options(mss=1460))
    assert "wscale" not in c.synack.opts
    assert c.info()["rcv_wscale"] == 0


def test_timestamps_echo_and_rttm(p):
    c = p.passive_open(options=tcp_options(mss=1460, ts=(1000, 0)))
    tsval0, tsecr0 = c.synack.opts["ts"]
    assert tsecr0 == 1000
    assert c.info()["mss"] == 1448            # 12 bytes of timestamp option per segment
    c.ts = (1001, tsval0)
    p.advance(50_000)
    p.stack.tcp_send(c.sock, b"t", p.now)
    p.poll()
    (s,) = c.segs()
    assert s.opts["ts"][1] == 1000            # TSecr = TS.Recent (the handshake ACK had no TS)
    c.send("A")                               # a segment with TSval 1001 updates TS.Recent
    p.stack.tcp_send(c.sock, b"u", p.now)
    p.poll()
    p.nothing()                               # Nagle: "t" unacked
    c.send("A", ack=1)
    (s,) = c.segs()
    assert s.opts["ts"][1] == 1001
    assert s.opts["ts"][0] == p.now // 1000   # 1 ms clock
    p.advance(80_000)
    c.ts = (1002, s.opts["ts"][0])
    c.send("A", ack=2)
    # RTTM: the 80 ms sample entered SRTT (1/8 of it at least)
    assert c.info()["srtt_us"] >= 10_000


def test_paws_drops_old_timestamp(p):
    c = p.passive_open(options=tcp_options(mss=1460, ts=(5000, 0)))
    c.ts = (5001, c.synack.opts["ts"][0])
    c.send("A", b"new")
    p.advance(40_000)
    c.expect("A", ack=3)
    c.ts = (4000, 0)                          # older than TS.Recent: a wrapped-sequence duplicate
    c.send("A", b"old", advance=False)
    c.expect("A", ack=3)                      # dropped, ACKed
    assert p.stack.tcp_recv(c.sock) == b"new"
    assert p.stack.tcp_recv(c.sock) is None


def test_active_open_offers_ws_ts_and_handles_peer_without(p):
    c = p.active_open(options=tcp_options(mss=1460))
    assert {"mss", "wscale", "ts"} <= set(c.syn.opts)
    info = c.info()
    assert info["timestamps"] == 0 and info["rcv_wscale"] == 0
    p.stack.tcp_send(c.sock, b"plain", p.now)
    p.poll()
    (s,) = c.segs()
    assert s.opts == {}


def test_sack_permitted_parsed_and_not_echoed(p):
    c = p.passive_open(options=tcp_options(mss=1460, sack_perm=True))
    assert "sack_perm" not in c.synack.opts
    assert c.state() == "ESTABLISHED"


@pytest.mark.parametrize("opts", [
    b"\x01\x01\x01\x02",           # MSS kind with no room for its length
    b"\x02\x00\x00\x00",           # length 0
    b"\x08\x0a\x00\x00",           # timestamps longer than the header
    b"\x03\x04\x07\x00",           # window scale of wrong length
])
def test_malformed_options_dropped(p, opts):
    p.listen(80)
    opts = opts + b"\x00" * (-len(opts) % 4)
    Conn(p, 80, 40000, peer_iss=1).inject_abs(1, 0, "S", options=opts)
    p.nothing()
    assert p.stack.stats()["tcp_malformed"] == 1


def test_unknown_options_skipped(p):
    opts = b"\xfe\x06abcd" + tcp_options(mss=1000) + b"\x01\x01"
    c = p.passive_open(options=opts)
    assert c.info()["mss"] == 1000


@pytest.mark.parametrize("announced", [1, 47])
def test_tiny_peer_mss_is_floored_at_48(p, announced):
    """A peer's MSS of 1 cut 1960 bytes into 1960 segments; Linux floors it at
    TCP_MIN_SND_MSS (48), and so does the stack."""
    c = p.passive_open(mss=announced)
    assert c.info()["mss"] == 48
    p.stack.tcp_send(c.sock, b"m" * 1960, p.now)
    p.poll()
    sizes = [len(s.payload) for s in c.segs()]
    assert sizes and set(sizes) == {48}, sizes


def test_tiny_mss_in_syn_ack_is_floored_at_48(p):
    c = p.active_open(mss=1)
    assert c.info()["mss"] == 48


def test_mss_at_the_floor_is_kept(p):
    c = p.passive_open(mss=49)
    assert c.info()["mss"] == 49

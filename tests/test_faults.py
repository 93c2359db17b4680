"""faults: the seeded fault injector (aiorusty/nic/_core/faults.c), through interface specs.

Frames go through `loopback,...` (transmit -> injector -> loopback -> injector
-> receive) or through one end of an in-process pair; time is explicit
(rusty_dev_send_at / recv_at / next_deadline), so nothing here depends on the
machine's speed.
"""

import errno
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiorusty._errors import check
from aiorusty._rusty import ffi, lib
from aiorusty.nic import Device, Interface, open_device
from _offload import checksums_ok, ones_sum, send_partial, udp_partial

T0 = 1_000_000_000                              # an arbitrary "now" in microseconds




@pytest.fixture
def devices():
    opened = []

    def open_(spec):
        opened.append(open_device(spec))
        return opened[-1]

    yield open_
    for d in opened:
        d.close()


def frame(seq, size=64):
    body = bytes((seq + i) % 251 for i in range(size - 18))
    return b"\x02\x52\x00\x00\x00\x02\x02\x52\x00\x00\x00\x01\x88\xb5" + seq.to_bytes(4, "big") + body


def seq_of(f):
    return int.from_bytes(f[14:18], "big")


def send_at(dev, f, now):
    check(lib.rusty_dev_send_at(dev.ptr, 0, f, len(f), now), "send_at")


def recv_at(dev, now):
    buf = ffi.new("uint8_t[]", 2048)
    n = lib.rusty_dev_recv_at(dev.ptr, 0, buf, 2048, now)
    if n == -errno.EAGAIN:
        return None
    check(n, "recv_at")
    return bytes(ffi.buffer(buf, n))


def recv_all(dev, now=T0):
    out = []
    while (f := recv_at(dev, now)) is not None:
        out.append(f)
    return out


def counts(dev):
    out = ffi.new("struct rusty_faults_stats *")
    check(lib.rusty_faults_counts(dev.ptr, out), "faults counts")
    return {name: getattr(out, name) for name, _ in ffi.typeof("struct rusty_faults_stats").fields}


def deadline(dev, now):
    return lib.rusty_dev_next_deadline(dev.ptr, now)


def survivors(spec, n=300):
    dev = open_device(spec)
    try:
        got = []
        for i in range(n):
            send_at(dev, frame(i), T0)
            got += [seq_of(f) for f in recv_all(dev)]
        return got, counts(dev)
    finally:
        dev.close()


def test_the_same_seed_drops_the_same_frames_and_another_seed_others():
    first, c1 = survivors("loopback,drop=0.3,seed=7")
    second, c2 = survivors("loopback,drop=0.3,seed=7")
    other, _ = survivors("loopback,drop=0.3,seed=8")
    assert first == second and c1 == c2
    assert first != other
    assert first == sorted(first)               # dropping never reorders
    assert c1["dropped"] == 300 - len(first) > 0


def test_the_drop_rate_is_close_to_the_configured_one():
    # 10000 frames, one direction: binomial sd ~ 46, so +-300 is > 6 sd.
    got, c = survivors("loopback,drop=0.3,seed=1,faults_dir=rx", n=10000)
    assert abs(len(got) - 7000) < 300
    assert c["dropped"] == 10000 - len(got)
    got, _ = survivors("loopback,drop=0,duplicate=0.0001,seed=1", n=2000)
    assert len(got) >= 2000                     # drop=0 drops nothing


def test_duplicates_arrive_next_to_their_original(devices):
    dev = devices("loopback,duplicate=0.5,seed=3,faults_dir=tx")
    got = []
    for i in range(200):
        send_at(dev, frame(i), T0)
        got += recv_all(dev)
    seqs = [seq_of(f) for f in got]
    c = counts(dev)
    assert len(got) == 200 + c["duplicated"] and 50 < c["duplicated"] < 150
    assert sorted(set(seqs)) == list(range(200))
    assert seqs == sorted(seqs)                 # a duplicate follows its original
    assert all(f == frame(seq_of(f)) for f in got)


def test_reorder_swaps_a_held_frame_with_the_next_one(devices):
    dev = devices("loopback,reorder=1,seed=1,faults_dir=tx")
    for i in range(5):
        send_at(dev, frame(i), T0)
    assert [seq_of(f) for f in recv_all(dev)] == [1, 0, 3, 2]
    assert recv_all(dev, T0 + 999) == []        # frame 4 has no follower: held ...
    assert deadline(dev, T0) == T0 + 1000
    assert [seq_of(f) for f in recv_all(dev, T0 + 1000)] == [4]    # ... until its timeout
    assert counts(dev)["reordered"] == 3


def test_corruption_flips_one_byte_past_the_ethernet_header(devices):
    dev = devices("loopback,corrupt=1,seed=5,faults_dir=rx")
    positions = set()
    for i in range(50):
        sent = frame(i, size=200)
        send_at(dev, sent, T0)
        (got,) = recv_all(dev)
        diff = [k for k in range(len(sent)) if got[k] != sent[k]]
        assert len(got) == len(sent) and len(diff) == 1 and diff[0] >= 14
        positions.add(diff[0])
    assert len(positions) > 10                  # not always the same byte
    assert counts(dev)["corrupted"] == 50


def test_a_corrupted_frame_fails_its_checksums(devices):
    # The injector finishes a partial checksum before damaging the frame (and
    # never lets it arrive marked valid), so the receiving stack must drop it.
    dev = devices("loopback,corrupt=1,seed=9,faults_dir=tx")
    for i in range(60):
        f, start, offset = udp_partial(bytes([i]) * (20 + i))
        send_partial(dev, f, start, offset, T0)
        (got,) = recv_all(dev)
        done = f[:40] + struct.pack("!H", 0xFFFF - ones_sum(f[34:])) + f[42:]   # checksum finished
        assert checksums_ok(done) == (True, True)
        assert len(got) == len(f) and sum(x != y for x, y in zip(got, done)) == 1   # then one byte flipped
        assert checksums_ok(got) != (True, True), i
    assert counts(dev)["corrupted"] == 60


def test_delay_releases_frames_only_when_their_time_comes(devices):
    dev = devices("loopback,delay=10ms,seed=1,faults_dir=rx")
    assert deadline(dev, T0) == -1              # nothing pending
    send_at(dev, frame(1), T0)
    assert recv_at(dev, T0) is None             # pulled into the delay line
    assert deadline(dev, T0) == T0 + 10_000
    assert recv_at(dev, T0 + 9_999) is None
    assert recv_at(dev, T0 + 10_000) == frame(1)
    assert deadline(dev, T0 + 10_000) == -1
    assert counts(dev)["delayed"] == 1


def test_jitter_spreads_release_times_but_keeps_order(devices):
    dev = devices("loopback,delay=10ms,jitter=5ms,seed=4,faults_dir=rx")
    sends = {i: T0 + i * 2_000 for i in range(100)}     # one frame every 2 ms
    released = {}
    t, nxt = T0, 0
    while nxt < 100 or deadline(dev, t) != -1:
        due = deadline(dev, t)
        t = min(x for x in (sends.get(nxt, -1), due) if x != -1)
        if sends.get(nxt) == t:
            send_at(dev, frame(nxt), t)
            nxt += 1
        for f in recv_all(dev, t):
            released[seq_of(f)] = t
    assert list(released) == list(range(100))           # in order
    delays = [released[i] - sends[i] for i in range(100)]
    assert all(5_000 <= d <= 15_000 for d in delays), delays
    assert len(set(delays)) > 20                        # really spread out
    assert counts(dev)["delayed"] == 100


def test_rate_limit_bounds_the_bytes_per_interval(devices):
    # 8 Mbit/s = 1 byte/us; the bucket holds 10 ms worth (10000 bytes).
    dev = devices("loopback,rate=8mbit,seed=1,faults_dir=rx")
    for i in range(100):
        send_at(dev, frame(i, 1000), T0)
    out_by = {}
    total = 0
    for step in range(0, 120_001, 1000):
        total += sum(len(f) for f in recv_all(dev, T0 + step))
        out_by[step] = total
    assert out_by[120_000] == 100 * 1000        # everything comes out eventually
    for step, sent in out_by.items():
        assert sent <= 10_000 + step + 1000, (step, sent)
    assert out_by[0] >= 9000                    # the bucket starts full
    assert out_by[50_000] >= 50_000             # and the rate is really 1 byte/us
    assert counts(dev)["rate_limited"] == 0


def test_rate_limit_drops_what_overflows_the_backlog(devices):
    dev = devices("loopback,rate=8mbit,seed=1,faults_dir=rx")
    for i in range(300):                        # 300 kB against a 100 kB (100 ms) backlog
        send_at(dev, frame(i, 1000), T0)
    received = recv_all(dev, T0)
    t = T0
    while (t := deadline(dev, t)) != -1:
        received += recv_all(dev, t)
    c = counts(dev)
    assert c["rate_limited"] > 0
    assert len(received) + c["rate_limited"] == 300
    assert [seq_of(f) for f in received] == sorted(seq_of(f) for f in received)


def test_delay_on_transmit_goes_out_on_a_later_call(devices):
    dev = devices("loopback,delay=2ms,seed=1,faults_dir=tx")
    send_at(dev, frame(9), T0)
    assert recv_at(dev, T0) is None
    assert deadline(dev, T0) == T0 + 2_000
    assert recv_at(dev, T0 + 2_000) == frame(9)


def test_wrappers_pass_deadlines_and_counts_through(tmp_path, devices):
    dev = devices(f"loopback,delay=1ms,seed=1,pcap={tmp_path / 'c.pcap'},trace=1")
    send_at(dev, frame(3), T0)
    assert recv_at(dev, T0) is None
    assert deadline(dev, T0) == T0 + 1_000      # trace -> pcap -> faults
    assert counts(dev)["delayed"] == 1
    assert dev.info()["driver"] == "trace"


def test_through_a_pair_each_end_sees_the_other_s_faults():
    a, b = ffi.new("struct rusty_dev **"), ffi.new("struct rusty_dev **")
    check(lib.rusty_pair_open(ffi.NULL, a, b), "pair")
    cfg = ffi.new("struct rusty_faults_config *")
    cfg.seed, cfg.duplicate_ppm, cfg.reorder_ppm, cfg.direction = 11, 300_000, 200_000, 2
    wrapped = ffi.new("struct rusty_dev **")
    check(lib.rusty_faults_wrap(a[0], cfg, wrapped), "faults")
    end_a, end_b = Device(wrapped[0], Interface("loopback")), Device(b[0], Interface("loopback"))
    try:
        for i in range(300):
            send_at(end_a, frame(i), T0)
        got = [seq_of(f) for f in recv_all(end_b, T0)]
        recv_at(end_a, T0 + 1000)               # a call on a's side releases a last held frame
        got += [seq_of(f) for f in recv_all(end_b, T0 + 1000)]
        c = counts(end_a)
        assert sorted(set(got)) == list(range(300))
        assert len(got) == 300 + c["duplicated"] and c["duplicated"] > 0
        assert got != sorted(got) and c["reordered"] > 0
        assert sum(1 for x, y in zip(got, got[1:]) if y < x) <= c["reordered"]
        for i in range(5):                      # the other direction is untouched
            send_at(end_b, frame(1000 + i), T0)
        assert [seq_of(f) for f in recv_all(end_a, T0)] == list(range(1000, 1005))
    finally:
        end_b.close()
        end_a.close()


def test_counts_without_an_injector_is_an_error():
    dev = open_device("loopback")
    try:
        out = ffi.new("struct rusty_faults_stats *")
        assert lib.rusty_faults_counts(dev.ptr, out) == -errno.ENODEV
    finally:
        dev.close()


def test_bad_configs_are_refused_and_leave_the_inner_device_to_the_caller():
    a = ffi.new("struct rusty_dev **")
    check(lib.rusty_loopback_open(ffi.NULL, a), "loopback")
    inner = Device(a[0], Interface("loopback"))
    try:
        cfg = ffi.new("struct rusty_faults_config *")
        cfg.drop_ppm = 1_000_001
        out = ffi.new("struct rusty_dev **")
        assert lib.rusty_faults_wrap(inner.ptr, cfg, out) == -errno.EINVAL
        inner.send(frame(1))
        assert inner.recv() == frame(1)         # still whole and usable
    finally:
        inner.close()


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(st.binary(min_size=0, max_size=1600), max_size=30),
       probs=st.tuples(*[st.sampled_from([0, 0.1, 0.5, 1]) for _ in range(4)]),
       delay=st.sampled_from([0, 1, 3]), rate=st.sampled_from([0, 100_000, 10_000_000]),
       seed=st.integers(0, 2**63), direction=st.sampled_from(["rx", "tx", "both"]))
def test_random_frames_and_faults_never_crash(frames, probs, delay, rate, seed, direction):
    drop, dup, reorder, corrupt = probs
    spec = (f"loopback,drop={drop},duplicate={dup},reorder={reorder},corrupt={corrupt},"
            f"delay={delay}ms,seed={seed},faults_dir={direction}" + (f",rate={rate}bit" if rate else ""))
    dev = open_device(spec)
    try:
        t = T0
        for f in frames:
            send_at(dev, f, t)
            recv_all(dev, t)
            t += 100
        for _ in range(200):
            t = max(t, deadline(dev, t))
            recv_all(dev, t)
            if deadline(dev, t) == -1:
                break
            t += 1
        if any(probs) or delay or rate:         # otherwise the spec adds no injector
            c = counts(dev)
            assert c["corrupted"] <= 2 * len(frames) + c["duplicated"]
    finally:
        dev.close()

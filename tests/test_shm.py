"""shm: the shared-memory link between two processes (aiorusty/nic/_core/shm.c).

The peer is a real second process (a small Python program driven over its
stdin/stdout), so the rings, the side claims and the wakeup FIFOs are crossed
by two address spaces exactly as two aiorusty loops would cross them.
"""

import errno
import glob
import os
import select
import subprocess
import sys
import textwrap

import pytest

from aiorusty._rusty import ffi, lib
from aiorusty.nic import open_device

from _netns import unique
from _offload import checksums_ok, send_partial, udp_partial

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PEER = textwrap.dedent(r"""
    import os, select, sys
    sys.path.insert(0, sys.argv[1])
    from aiorusty.nic import open_device
    try:
        dev = open_device(sys.argv[2])
    except OSError as e:
        print("error", e.errno, e, flush=True)
        sys.exit(0)
    print("ready", dev.info()["mac"], dev.info()["queues"], flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "send":
            dev.send(bytes.fromhex(args[1]), queue=int(args[0]))
            print("sent", flush=True)
        elif cmd == "recv":
            q = int(args[0])
            frame = dev.recv(queue=q)
            if frame is None and not dev.arm_wakeup(q):
                select.select([dev.fileno(q)], [], [], float(args[1]))
            if frame is None:
                frame = dev.recv(queue=q)
            print("frame", frame.hex() if frame is not None else "none", flush=True)
        elif cmd == "burst":                    # frames numbered 0..n-1, retried while the ring is full
            n, size, i = int(args[0]), int(args[1]), 0
            while i < n:
                body = i.to_bytes(4, "big") * (size // 4)
                try:
                    dev.send(bytes.fromhex("025200000002025200000001") + b"\x88\xb5" + body)
                    i += 1
                except BlockingIOError:
                    select.select([], [], [], 0.0005)
            print("sent", flush=True)
        elif cmd == "crash":
            os._exit(0)
        elif cmd == "close":
            ptr, dev._ptr = dev._ptr, None
            from aiorusty._rusty import ffi
            ffi.release(ptr)
            print("closed", flush=True)
            sys.exit(0)
""")


class Peer:
    """The other process: opens `spec`, then sends/receives frames on command."""

    def __init__(self, spec, wait=True):
        self.proc = subprocess.Popen([sys.executable, "-c", PEER, ROOT, spec], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.hello = self._line() if wait else None

    def _line(self, timeout=20):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("peer process did not answer")
        line = self.proc.stdout.readline().split()
        if not line:
            raise AssertionError(f"peer process exited ({self.proc.wait(5)})")
        return line

    def ask(self, *cmd):
        self.proc.stdin.write(" ".join(str(c) for c in cmd) + "\n")
        self.proc.stdin.flush()
        return self._line()

    def send(self, frame, queue=0):
        assert self.ask("send", queue, frame.hex()) == ["sent"]

    def recv(self, queue=0, timeout=5):
        reply = self.ask("recv", queue, timeout)
        assert reply[0] == "frame"
        return None if reply[1] == "none" else bytes.fromhex(reply[1])

    def crash(self, reap=True):
        self.proc.stdin.write("crash\n")
        self.proc.stdin.flush()
        if reap:
            assert self.proc.wait(10) == 0
        else:                                   # exited, but a zombie until someone waits for it
            import time
            deadline = time.monotonic() + 10
            while open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
                assert time.monotonic() < deadline
                time.sleep(0.01)

    def close(self):
        if self.proc.poll() is None:
            assert self.ask("close") == ["closed"]
            assert self.proc.wait(10) == 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)




def shm_files(name):
    return sorted(glob.glob(f"/dev/shm/aiorusty-{name}") + glob.glob(f"/dev/shm/aiorusty-{name}.*"))


@pytest.fixture
def name():
    n = unique("shm")
    yield n
    for path in shm_files(n):
        os.unlink(path)


@pytest.fixture
def peers():
    started = []
    yield lambda spec, wait=True: started.append(Peer(spec, wait)) or started[-1]
    for p in started:
        p.kill()


def frame(seq, size=60):
    body = bytes((seq * 7 + i) % 256 for i in range(size - 16))
    return bytes.fromhex("025200000002025200000001") + b"\x88\xb5" + seq.to_bytes(2, "big") + body


def recv_wait(dev, queue=0, timeout=5):
    got = dev.recv(queue)
    if got is None and not dev.arm_wakeup(queue):
        select.select([dev.fileno(queue)], [], [], timeout)
    return got if got is not None else dev.recv(queue)


def readable(fd, timeout=0):
    return bool(select.select([fd], [], [], timeout)[0])


def test_two_processes_exchange_frames_both_ways_on_every_queue(name, peers):
    a = open_device(f"shm:{name},queues=2")
    try:
        b = peers(f"shm:{name}")
        assert b.hello[0] == "ready" and b.hello[2] == "2"      # the attacher takes the file's queue count
        assert b.hello[1] != a.info()["mac"]                    # one MAC per side
        assert a.info()["driver"] == "shm" and a.info()["queues"] == 2
        sizes = [14, 60, 61, 590, 1514, 1918]
        for q in (0, 1):
            sent = [frame(q * 100 + i, size) for i, size in enumerate(sizes)]
            for f in sent:
                a.send(f, queue=q)
            assert [b.recv(q) for _ in sent] == sent
            assert b.recv(1 - q, timeout=0) is None             # nothing leaked onto the other queue
            back = [frame(q * 100 + 50 + i, size) for i, size in enumerate(sizes)]
            for f in back:
                b.send(f, queue=q)
            assert [recv_wait(a, q) for _ in back] == back
            assert a.recv(1 - q) is None
        b.close()
    finally:
        a.close()
    assert shm_files(name) == []


def test_a_burst_larger_than_the_ring_arrives_complete_and_in_order(name, peers):
    a = open_device(f"shm:{name},ring=64")
    try:
        b = peers(f"shm:{name}")
        n, size = 5000, 100
        b.proc.stdin.write(f"burst {n} {size}\n")
        b.proc.stdin.flush()
        expect = 0
        while expect < n:
            f = a.recv()
            if f is None:
                assert a.arm_wakeup() or readable(a.fileno(), timeout=10), f"stalled after {expect} frames"
                continue
            assert f[14:] == expect.to_bytes(4, "big") * (size // 4), expect
            expect += 1
        assert b._line() == ["sent"]
        assert a.recv() is None
        b.close()
    finally:
        a.close()


def test_wakeup_fd_becomes_readable_when_the_peer_sends(name, peers):
    a = open_device(f"shm:{name}")
    try:
        b = peers(f"shm:{name}")
        fd = a.fileno()
        assert fd >= 0
        assert a.recv() is None
        assert a.arm_wakeup() is False          # empty: armed for a sleep
        assert not readable(fd)
        b.send(frame(1))
        assert readable(fd, timeout=5)
        assert a.recv() == frame(1)
        assert a.recv() is None
        assert a.arm_wakeup() is False
        assert not readable(fd)                 # arming drained the FIFO
        for i in range(3):                      # several frames, one wakeup
            b.send(frame(10 + i))
        assert readable(fd, timeout=5)
        assert [a.recv() for _ in range(3)] == [frame(10 + i) for i in range(3)]
        assert a.recv() is None
        b.close()
    finally:
        a.close()


def test_a_busy_polling_consumer_is_never_woken(name, peers):
    """Event suppression: a consumer that polls without arming costs its producer no
    write() to the FIFO, and arming with frames waiting says so instead of sleeping."""
    a = open_device(f"shm:{name}")
    try:
        b = peers(f"shm:{name}")
        fd = a.fileno()
        for i in range(3):
            assert a.recv() is None             # an empty poll does not arm
            b.send(frame(20 + i))
            assert recv_wait(a, timeout=0) == frame(20 + i)
        assert not readable(fd, timeout=0.2)    # no wakeup was written
        b.send(frame(30))
        b.send(frame(31))
        assert a.arm_wakeup() is True           # frames wait: do not sleep
        assert not readable(fd)
        assert a.recv() == frame(30)
        assert a.recv() == frame(31)
        assert a.arm_wakeup() is False and not readable(fd)
        b.close()
    finally:
        a.close()


def test_two_processes_opening_at_once_get_one_side_each(name, peers):
    first, second = peers(f"shm:{name}", wait=False), peers(f"shm:{name}", wait=False)
    first.hello, second.hello = first._line(), second._line()
    assert first.hello[0] == second.hello[0] == "ready"
    assert first.hello[1] != second.hello[1]
    first.send(frame(1))
    assert second.recv() == frame(1)
    first.close()
    second.close()
    assert shm_files(name) == []


def test_third_opener_gets_busy(name, peers):
    a = open_device(f"shm:{name}")
    try:
        b = peers(f"shm:{name}")
        assert b.hello[0] == "ready"
        with pytest.raises(OSError) as e:
            open_device(f"shm:{name}")
        assert e.value.errno == errno.EBUSY and name in str(e.value)
        c = peers(f"shm:{name}")                # another process: same answer
        assert c.hello[:2] == ["error", str(errno.EBUSY)]
        b.close()
    finally:
        a.close()


def test_attacher_with_another_queue_count_is_refused(name, peers):
    a = open_device(f"shm:{name},queues=2")
    try:
        b = peers(f"shm:{name},queues=3")
        assert b.hello[:2] == ["error", str(errno.EINVAL)]
    finally:
        a.close()
    assert shm_files(name) == []


def test_name_is_freed_when_both_sides_close_or_the_creator_closes_alone(name, peers):
    a = open_device(f"shm:{name},queues=2")
    files = shm_files(name)
    assert f"/dev/shm/aiorusty-{name}" in files and len(files) == 5     # the file + a FIFO per ring
    a.close()
    assert shm_files(name) == []                # the other side never came

    a = open_device(f"shm:{name}")
    b = peers(f"shm:{name}")
    a.close()
    assert shm_files(name) != []                # B still holds it
    b.close()
    assert shm_files(name) == []


def test_frames_to_an_absent_peer_are_dropped_and_a_full_ring_refuses(name):
    a = open_device(f"shm:{name},ring=16")
    try:
        a.send(frame(1))                        # nobody attached: dropped, like an unplugged cable
        assert a.stats()["tx_dropped"] == 1
        b = open_device(f"shm:{name}")          # both sides in one process works too
        try:
            assert b.recv() is None             # the dropped frame never arrives
            for i in range(16):
                a.send(frame(i))
            with pytest.raises(BlockingIOError):
                a.send(frame(16))               # ring full: the caller keeps it
            assert [b.recv() for _ in range(16)] == [frame(i) for i in range(16)]
            a.send(frame(17))
            assert b.recv() == frame(17)
        finally:
            b.close()
    finally:
        a.close()


def test_a_crashed_peer_side_is_taken_over_by_a_new_process(name, peers):
    a = open_device(f"shm:{name}")
    try:
        b = peers(f"shm:{name}")
        mac_b = b.hello[1]
        b.send(frame(1))
        assert recv_wait(a) == frame(1)
        b.crash(reap=False)                     # exits without closing: its claim stays, its pid a zombie
        a.send(frame(2))                        # lands in the dead side's ring
        c = peers(f"shm:{name}")
        assert c.hello[:2] == ["ready", mac_b]  # the same side, so the same MAC
        assert c.recv(timeout=0) is None        # what the dead side never read is discarded
        a.send(frame(3))
        assert c.recv() == frame(3)
        c.send(frame(4))
        assert recv_wait(a) == frame(4)
        c.close()
        d = peers(f"shm:{name}")                # a clean close frees the side as well
        assert d.hello[:2] == ["ready", mac_b]
        d.send(frame(5))
        assert recv_wait(a) == frame(5)
        d.close()
    finally:
        a.close()
    assert shm_files(name) == []


def test_a_stale_file_with_no_live_process_is_replaced(name, peers):
    b = peers(f"shm:{name},queues=2")           # creates it, then dies without cleaning up
    assert b.hello[0] == "ready"
    b.crash()
    assert shm_files(name) != []
    a = open_device(f"shm:{name},queues=3")     # fresh file, with the new queue count
    try:
        assert a.info()["queues"] == 3
        c = peers(f"shm:{name}")
        assert c.hello[2] == "3"
        c.close()
    finally:
        a.close()
    assert shm_files(name) == []


def test_one_worker_per_queue(name, peers):
    a = open_device(f"shm:{name},queues=2")
    try:
        w0 = peers(f"shm:{name},queues=2,queue=0")
        w1 = peers(f"shm:{name},queues=2,queue=1")
        assert w0.hello[0] == w1.hello[0] == "ready"
        assert w0.hello[1] == w1.hello[1]       # the same side on both queues: one MAC
        a.send(frame(10), queue=0)
        a.send(frame(11), queue=1)
        assert w0.recv() == frame(10)           # a single-queue device numbers its queue 0
        assert w1.recv() == frame(11)
        w1.send(frame(21))
        w0.send(frame(20))
        assert recv_wait(a, 1) == frame(21)
        assert recv_wait(a, 0) == frame(20)
        assert peers(f"shm:{name},queues=2,queue=1").hello[:2] == ["error", str(errno.EBUSY)]
        assert peers(f"shm:{name},queues=3,queue=2").hello[:2] == ["error", str(errno.EINVAL)]
        w0.close()
        w1.close()
    finally:
        a.close()


def test_offloads_follow_the_spec(name):
    a = open_device(f"shm:{name}")
    b = open_device(f"shm:{name},offload=0")
    try:
        # RX_CSUM | TX_CSUM (frames never leave memory) | TX_SG (payload copied once, into the ring)
        assert a.info()["offloads"] == lib.RUSTY_OFF_RX_CSUM | lib.RUSTY_OFF_TX_CSUM | lib.RUSTY_OFF_TX_SG
        assert b.info()["offloads"] == 0
    finally:
        b.close()
        a.close()


def test_bad_names_are_rejected():
    out = ffi.new("struct rusty_dev **")
    for bad in (b"", b"a/b", b"..", b"x" * 40):
        assert lib.rusty_shm_open(bad, ffi.NULL, out) == -errno.EINVAL


def test_partial_checksums_cross_unfinished_and_a_receiver_without_offload_finishes_them(name):
    f, start, offset = udp_partial(bytes(range(100)))
    a = open_device(f"shm:{name}")
    b = open_device(f"shm:{name},offload=0")
    try:
        send_partial(a, f, start, offset)       # a offloads: the frame travels unfinished ...
        got = b.recv()
        assert checksums_ok(got) == (True, True)    # ... and b, without RX_CSUM, finishes it
        assert got[:40] == f[:40] and got[42:] == f[42:]
        send_partial(b, f, start, offset)       # b has no TX_CSUM: rusty_dev_tx finishes it first
        assert checksums_ok(a.recv()) == (True, True)
    finally:
        b.close()
        a.close()
    name2 = name + "x"
    a = open_device(f"shm:{name2}")
    b = open_device(f"shm:{name2}")
    try:
        send_partial(a, f, start, offset)
        assert b.recv() == f                    # offloading receiver: as sent, trusted (CSUM_VALID)
    finally:
        b.close()
        a.close()

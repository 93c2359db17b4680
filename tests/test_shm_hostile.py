"""shm as a trust boundary: a hostile process on the link must not crash, hang or
take over ours (aiorusty/nic/_core/shm.c, "Trust").

The hostile side is a real second process that maps the live segment file and
writes what it likes into it: slot headers with lengths no pool buffer holds,
unknown flags, checksum offsets past the frame, a producer index far ahead of
or behind ours, garbage queue and slot counts in the header. Our side counts
what it skips (rx_bad_slots) and keeps working. A name squatted by a file that
is not ours alone (mode 0666, another user's) is refused with an error that
names the file and says how to fix it.
"""

import errno
import os
import select
import struct
import subprocess
import sys
import textwrap
import time

import pytest

from aiorusty.nic import open_device
from aiorusty.tcp import Stack

from _netns import unique
from _stack_peer import wait_line
from test_shm import frame, shm_files

pytestmark = pytest.mark.timeout(120)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The segment's layout (shm.c): a 4 KiB header page, then per queue two rings
# (direction 0 = A->B, 1 = B->A), each three 64-byte control lines (head, tail,
# wants_wakeup) and then 2 KiB slots of an 8-byte header and the frame.
HEADER_BYTES, RING_CTL, SLOT_BYTES = 4096, 192, 2048
OFF_QUEUES, OFF_SLOTS, OFF_RING_BYTES, OFF_TOTAL = 16, 20, 28, 32
RING_START = 2**32 - 256                # where a new file's indices start (shm.c RING_START)

# The hostile process: maps the file and acts as side B's producer on queue 0,
# on command, without ever opening a device. Lines in, "ok ..." out.
HOSTILE = textwrap.dedent(r"""
    import fcntl, mmap, os, random, struct, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR)
    m = mmap.mmap(fd, 0)
    slots, ring_bytes = struct.unpack_from("<I", m, 20)[0], struct.unpack_from("<I", m, 28)[0]
    ring = 4096 + 1 * ring_bytes            # queue 0, direction B->A
    u32 = lambda off: struct.unpack_from("<I", m, off)[0]
    put32 = lambda off, v: struct.pack_into("<I", m, off, v % 2**32)
    def slot(i):
        return ring + 192 + (i % slots) * 2048
    # Headers no receiver may trust: too short, longer than a pool buffer holds
    # (1921..2040 fit the slot but not the buffer), longer than the slot,
    # unknown flags, a partial checksum whose field lies past the frame.
    BAD = [(0, 0, 0, 0), (13, 0, 0, 0), (1921, 0, 0, 0), (2040, 0, 0, 0), (2041, 0, 0, 0), (0xffff, 0, 0, 0),
           (60, 0x8000, 0, 0), (60, 1, 50, 10), (60, 1, 0xffff, 0xffff)]
    print("ready", slots, flush=True)
    for line in sys.stdin:
        cmd, *a = line.split()
        head, tail = u32(ring), u32(ring + 64)
        if cmd == "slot":                   # slot K LEN FLAGS CSUM_START CSUM_OFFSET HEX: at head + K
            k, length, flags, cs, co = (int(x) for x in a[:5])
            struct.pack_into("<HHHH", m, slot(head + k), length, flags, cs, co)
            body = bytes.fromhex(a[5]) if len(a) > 5 else b""
            m[slot(head + k) + 8: slot(head + k) + 8 + len(body)] = body
        elif cmd == "publish":              # publish N: head += N
            put32(ring, head + int(a[0]))
        elif cmd == "head":                 # head DELTA: head = the consumer's tail + DELTA
            put32(ring, tail + int(a[0]))
        elif cmd == "header":               # header OFFSET VALUE: overwrite a 32-bit header field
            put32(int(a[0]), int(a[1]))
        elif cmd == "lock":                 # take the lock that attach and detach use, and keep it
            fcntl.flock(fd, fcntl.LOCK_EX)
        elif cmd == "flood":                # flood N: N bad slots as the consumer frees room, and
            n, sent, jumps = int(a[0]), 0, 0   # after every 9973 an index jump instead of a publish
            rnd = random.Random(7)
            deadline = time.monotonic() + 30
            while sent < n and time.monotonic() < deadline:
                head, tail = u32(ring), u32(ring + 64)
                room = slots - (head - tail) % 2**32
                if room <= 0:
                    time.sleep(0.0001)
                    continue
                k = min(room, n - sent)
                for i in range(k):
                    struct.pack_into("<HHHH", m, slot(head + i), *rnd.choice(BAD))
                sent += k
                if sent // 9973 > jumps:
                    jumps = sent // 9973
                    put32(ring, tail + rnd.choice([slots + 1, 2**31, 2**32 - 1]))
                else:
                    put32(ring, head + k)
            print("ok", sent, jumps, flush=True)
            continue
        print("ok", u32(ring), u32(ring + 64), flush=True)
""")


class Hostile:
    """The process that writes into the live segment of link `name`."""

    def __init__(self, name):
        self.proc = subprocess.Popen([sys.executable, "-c", HOSTILE, f"/dev/shm/aiorusty-{name}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self._line()
        assert hello[0] == "ready"
        self.slots = int(hello[1])

    def _line(self, timeout=40):
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise AssertionError("hostile process did not answer")
        line = self.proc.stdout.readline().split()
        assert line, f"hostile process exited ({self.proc.wait(5)})"
        return line

    def start(self, *cmd):
        self.proc.stdin.write(" ".join(str(c) for c in cmd) + "\n")
        self.proc.stdin.flush()

    def ask(self, *cmd):
        self.start(*cmd)
        reply = self._line()
        assert reply[0] == "ok", reply
        return [int(x) for x in reply[1:]]

    def slot(self, k, length, flags=0, csum_start=0, csum_offset=0, body=b""):
        self.ask("slot", k, length, flags, csum_start, csum_offset, body.hex())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def name():
    n = unique("shmx")
    yield n
    for path in shm_files(n):
        os.unlink(path)


@pytest.fixture
def hostile():
    started = []
    yield lambda name: started.append(Hostile(name)) or started[-1]
    for h in started:
        h.kill()


def drain(dev):
    out = []
    while (f := dev.recv()) is not None:
        out.append(f)
    return out


def test_slot_headers_no_buffer_can_hold_are_counted_and_skipped(name, hostile):
    a = open_device(f"shm:{name}")
    try:
        h = hostile(name)
        shortest = bytes.fromhex("025200000002025200000001") + b"\x88\xb5"        # an Ethernet header alone
        good = [frame(1), frame(2, 1920), shortest]     # 1920: the longest a pool buffer holds
        bad = [(0,), (13,), (1921,), (2000,), (2040,), (2041,), (0xffff,),
               (60, 0x8000),                    # a flag nobody defined
               (60, 1, 50, 10),                 # partial checksum: its field past the frame
               (60, 1, 0xffff, 0xffff)]
        h.slot(0, len(good[0]), body=good[0])
        for k, fields in enumerate(bad, 1):
            h.slot(k, *fields, body=bytes(range(256)) * 4)
        h.slot(len(bad) + 1, len(good[1]), body=good[1])
        h.slot(len(bad) + 2, len(good[2]), body=good[2])
        h.ask("publish", len(bad) + 3)
        got = []
        for _ in range(len(bad) + 3):           # one slot examined per recv(): none is lost or doubled
            got.append(a.recv())
        assert [f for f in got if f is not None] == good
        assert a.recv() is None
        st = a.stats()
        assert st["rx_bad_slots"] == len(bad) and st["rx_frames"] == len(good)
        assert st["rx_errors"] == len(bad)
    finally:
        a.close()
    assert shm_files(name) == []


@pytest.mark.parametrize("delta", [None, 2**31, 2**32 - 1], ids=["one-past-a-ring", "half-way", "behind"])
def test_a_producer_index_out_of_range_is_resynchronised(name, hostile, delta):
    a = open_device(f"shm:{name}")
    try:
        h = hostile(name)
        delta = delta or h.slots + 1
        h.slot(0, 60, body=frame(1))
        h.ask("publish", 1)
        assert a.recv() == frame(1)
        head, tail = h.ask("head", delta)       # more than a ring ahead, or behind us
        assert (head - tail) % 2**32 == delta
        assert a.recv() is None
        assert a.stats()["rx_bad_slots"] == 1
        head, tail = h.ask("publish", 0)
        assert tail == head                     # we go on from where its index points now
        h.slot(0, 60, body=frame(2))
        h.ask("publish", 1)
        assert a.recv() == frame(2) and a.recv() is None
        assert a.stats()["rx_bad_slots"] == 1
    finally:
        a.close()


def test_garbage_counts_in_the_header_do_not_reach_the_data_path_or_close(name, hostile):
    """The queue and slot counts are read once, when the file is validated at open:
    rewritten later, they bound nothing (close used to walk a rewritten queue count
    past the end of the mapping)."""
    a = open_device(f"shm:{name}")
    b = open_device(f"shm:{name}")
    try:
        h = hostile(name)
        for off, value in ((OFF_QUEUES, 2**32 - 1), (OFF_SLOTS, 3), (OFF_RING_BYTES, 2**31), (OFF_TOTAL, 1)):
            h.ask("header", off, value)
        for i in range(600):                    # more than the ring, across the index wrap
            a.send(frame(i))
            assert b.recv() == frame(i)
            b.send(frame(i + 1000))
            assert a.recv() == frame(i + 1000)
        assert a.stats()["rx_bad_slots"] == b.stats()["rx_bad_slots"] == 0
    finally:
        b.close()
        a.close()
    assert shm_files(name) == []


def test_a_peer_holding_the_lock_for_ever_makes_open_fail_and_close_go_on(name, hostile):
    a = open_device(f"shm:{name}")
    h = hostile(name)
    h.ask("lock")
    with pytest.raises(TimeoutError) as e:
        open_device(f"shm:{name}")              # bounded: LOCK_TRIES ms, not for ever
    assert e.value.errno == errno.ETIMEDOUT and "held the lock" in str(e.value)
    a.close()                                   # returns, its claim released without the lock
    assert shm_files(name) != []                # the unlink waits for the lock: left to the holder
    h.kill()
    b = open_device(f"shm:{name}")              # nobody alive holds a claim: a fresh file
    try:
        assert b.info()["queues"] == 1
    finally:
        b.close()
    assert shm_files(name) == []


def ring_indices(name, direction, slots):
    """(head, tail) of queue 0's ring in `direction` of a link with `slots` per ring."""
    with open(f"/dev/shm/aiorusty-{name}", "rb") as f:
        f.seek(HEADER_BYTES + direction * (RING_CTL + slots * SLOT_BYTES))
        ctl = f.read(RING_CTL)
    return struct.unpack_from("<I", ctl, 0)[0], struct.unpack_from("<I", ctl, 64)[0]


def test_traffic_crosses_the_2_32_index_wrap(name):
    """A new file's ring indices start 256 frames before 2^32, so every link crosses
    the wrap at once; frames cross it in order, with full and empty rings either side."""
    a = open_device(f"shm:{name},ring=16")
    b = open_device(f"shm:{name}")
    try:
        assert ring_indices(name, 0, 16) == ring_indices(name, 1, 16) == (RING_START, RING_START)
        seq = 0
        for _ in range(40):                     # 40 x 16 = 640 frames each way: the wrap at 256
            batch = [frame(seq + i) for i in range(16)]
            for f in batch:
                a.send(f)
                b.send(f)
            with pytest.raises(BlockingIOError):
                a.send(frame(9999))             # full: head - tail == 16 across the wrap too
            assert drain(b) == batch and drain(a) == batch
            seq += 16
        assert ring_indices(name, 0, 16) == ring_indices(name, 1, 16) == ((RING_START + 640) % 2**32,) * 2
        assert a.stats()["rx_bad_slots"] == b.stats()["rx_bad_slots"] == 0
    finally:
        b.close()
        a.close()


# The legit peer: a stack on the other link that sends 200 messages to our echo
# server, one at a time, and checks every echo.
LEGIT = r"""
import hashlib, sys, time
sys.path.insert(0, sys.argv[1])
from aiorusty.tcp import Stack
s = Stack([f"shm:{sys.argv[2]},ip=10.9.1.1/24"], seed=3)
print("ready", flush=True)
c = s.tcp_connect(("10.9.1.2", 7))
done, buf, h = 0, b"", hashlib.sha256()
deadline = time.monotonic() + 60
msg = lambda i: bytes((i + k) % 251 for k in range(1000))
sent = -1
while done < 200 and time.monotonic() < deadline:
    s.poll()
    if sent < done and s.tcp_info(c)["state"] == "ESTABLISHED":
        s.tcp_send(c, msg(done)); sent = done
    while (d := s.tcp_recv(c)) not in (None, b""):
        buf += d
    if len(buf) >= 1000:
        assert buf[:1000] == msg(done), done
        h.update(buf[:1000]); buf = buf[1000:]; done += 1
    time.sleep(0.0002)
s.tcp_close(c)
for _ in range(50):
    s.poll(); time.sleep(0.001)
print("done", done, flush=True)
s.close()
"""


def test_a_flood_of_bad_slots_on_one_link_leaves_a_connection_on_another_served(name, hostile):
    """Our stack serves a TCP echo to a legit peer over one link while a hostile process
    floods the other with bad slots and index jumps: the connection completes, every bad
    slot is counted, and no poll examines more slots than its budget."""
    legit = name + "l"
    stack = Stack([f"shm:{legit},ip=10.9.1.2/24", f"shm:{name},ip=10.9.2.2/24"], seed=1)
    proc = subprocess.Popen([sys.executable, "-c", LEGIT, ROOT, legit], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        h = hostile(name)
        for off, value in ((OFF_QUEUES, 2**32 - 1), (OFF_SLOTS, 3), (OFF_RING_BYTES, 2**31)):
            h.ask("header", off, value)
        wait_line(stack, proc)
        h.start("flood", 200_000)
        ls = stack.tcp_listen(None, 7)
        conn, pending, flooded, legit_done = None, b"", None, None
        bad_dev = stack.devices[1]
        budget = stack.config()["rx_budget"]
        seen, polls, worst = 0, 0, 0
        deadline = time.monotonic() + 90
        while (flooded is None or legit_done is None) and time.monotonic() < deadline:
            stack.poll()
            polls += 1
            st = bad_dev.stats()
            examined = st["rx_frames"] + st["rx_bad_slots"]
            worst, seen = max(worst, examined - seen), examined
            if conn is None:
                conn = stack.tcp_accept(ls)
            if conn is not None:
                while (d := stack.tcp_recv(conn)) not in (None, b""):
                    pending += d
                if pending:
                    pending = pending[stack.tcp_send(conn, pending):]
            for stream in [s for s in select.select([proc.stdout, h.proc.stdout], [], [], 0)[0]]:
                words = stream.readline().split()
                if stream is h.proc.stdout:
                    flooded, jumps = int(words[1]), int(words[2])
                elif words[:1] == ["done"]:
                    legit_done = int(words[1])
        assert legit_done == 200, proc.stderr.read() if proc.poll() is not None else "legit peer still running"
        assert flooded == 200_000
        for _ in range(1000):                   # what the flood published last
            head, tail = ring_indices(name, 1, h.slots)
            if head == tail:
                break
            stack.poll()
        st = bad_dev.stats()
        assert st["rx_frames"] == 0
        # A jump replaces a publish (its slots, at most a ring of 512, are never examined)
        # and counts once; one "behind" lets us examine one slot twice.
        assert 200_000 - jumps * 512 <= st["rx_bad_slots"] <= 200_000 + 2 * jumps, (st, jumps)
        assert 0 < worst <= budget, (worst, budget)
        print(f"{st['rx_bad_slots']} bad slots over {polls} polls, at most {worst} in one")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        stack.close()                           # close bounded by our own counts, not the header's
        left = shm_files(legit)
        for path in left:
            os.unlink(path)
    assert shm_files(name) == [] and left == []


def squat(name, mode, owner=None):
    """What a squatter leaves at a link name: a valid, ready file (and its FIFOs) whose
    side A is held by a live process (ours), mode `mode`, owned by `owner` (uid)."""
    slots = 16
    ring_bytes = RING_CTL + slots * SLOT_BYTES
    total = HEADER_BYTES + 2 * ring_bytes
    hdr = bytearray(HEADER_BYTES)
    struct.pack_into("<QIIIIIIQ", hdr, 0, 0x4d48535954535552, 1, HEADER_BYTES, 1, slots, SLOT_BYTES, ring_bytes, total)
    struct.pack_into("<I", hdr, 56, 1)                  # ready
    struct.pack_into("<i", hdr, 64, os.getpid())        # claim[0][A]: a live pid
    paths = [f"/dev/shm/aiorusty-{name}"] + [f"/dev/shm/aiorusty-{name}.q0.{d}" for d in (0, 1)]
    fd = os.open(paths[0], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, bytes(hdr))
    os.ftruncate(fd, total)
    os.close(fd)
    for p in paths[1:]:
        os.mkfifo(p, 0o600)
    for p in paths:
        os.chmod(p, mode)
        if owner is not None:
            os.chown(p, owner, owner)
    return paths[0]


def test_a_name_squatted_with_group_or_other_access_is_refused(name):
    path = squat(name, 0o666)
    with pytest.raises(PermissionError) as e:
        open_device(f"shm:{name}")
    msg = str(e.value)
    assert e.value.errno == errno.EACCES
    assert path in msg and "mode 0666" in msg and f"rm {path}" in msg, msg
    assert os.path.exists(path)                 # left for its owner to remove


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a file owned by another user (nobody) needs root")
def test_a_name_squatted_by_another_user_is_refused_even_for_root(name):
    path = squat(name, 0o600, owner=65534)
    with pytest.raises(PermissionError) as e:
        open_device(f"shm:{name}")
    msg = str(e.value)
    assert e.value.errno == errno.EACCES
    assert path in msg and "uid 65534" in msg and "not by you" in msg, msg

"""queue=auto: each process claims the lowest queue no live process holds (aiorusty/nic/_claim.py).

Claims are checked across real processes: distinct while they live, freed when
one exits (however it exits: a SIGKILLed holder frees its queue too), one
process too many refused with EBUSY naming the interface and N. A claim file
another user could tamper with is refused. Then whole opens: shm (no root),
and, as root, a 2-queue tap in a namespace of ours (including what a worker
restart does to its attach order) and AF_PACKET over a veth.
"""

import contextlib
import errno
import glob
import os
import signal
import subprocess
import sys

import pytest
from _netns import IS_ROOT, needs_root, netns, sh, unique

from aiorusty.nic import Interface, InterfaceSpecError, open_device
from aiorusty.nic._claim import claim_path, claim_queue
from aiorusty.tcp import Stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A process that opens `spec` (claim only, or the whole device), prints the queue it got
# (or the error), then holds it until its stdin closes.
HOLDER = """
import sys
from aiorusty.nic import Interface, open_device
from aiorusty.nic._claim import claim_queue
spec, what = sys.argv[1], sys.argv[2]
try:
    if what == "claim":
        held = claim_queue(Interface.parse(spec))
        print("queue", held.queue, flush=True)
    else:
        held = open_device(spec)
        print("queue", held.claimed_queue, held.interface.queue, flush=True)
except OSError as e:
    print("error", e.errno, e, flush=True)
    sys.exit(0)
sys.stdin.read()
"""


class Holder:
    """One claiming process, ended by its pid."""

    def __init__(self, spec, what="claim", ns=None):
        argv = [sys.executable, "-c", HOLDER, spec, what]
        if ns is not None:
            argv = ["ip", "netns", "exec", ns] + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, PYTHONPATH=ROOT))
        self.line = self.proc.stdout.readline().strip().split(maxsplit=2)
        if not self.line:
            raise AssertionError(f"holder of {spec} said nothing: {self.proc.stderr.read()}")

    @property
    def queue(self):
        assert self.line[0] == "queue", self.line
        return int(self.line[1])

    def end(self, sig=None):
        if self.proc.poll() is None:
            if sig is None:
                self.proc.stdin.close()
            else:
                os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=20)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if not f.closed:
                f.close()


@contextlib.contextmanager
def holders():
    started = []

    def start(spec, what="claim", ns=None):
        h = Holder(spec, what, ns)
        started.append(h)
        return h
    try:
        yield start
    finally:
        for h in started:
            if h.proc.poll() is None:
                os.kill(h.proc.pid, signal.SIGKILL)
            h.end()


@pytest.fixture
def shm_name():
    name = unique("clm")
    yield name
    for path in (claim_path(Interface.parse(f"shm:{name}")),):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def test_spec_takes_auto_only_with_several_queues_of_a_queued_driver():
    iface = Interface.parse("shm:x,queues=4,queue=auto")
    assert iface.queue == "auto" and str(iface) == "shm:x,queues=4,queue=auto"
    for bad, says in (("shm:x,queue=auto", "queues=N with N > 1"),
                      ("shm:x,queues=1,queue=auto", "queues=N with N > 1"),
                      ("loopback,queues=2,queue=auto", "multi-queue driver"),
                      ("shm:x,queues=2,queue=first", "queue index K (0..N-1, with queues=N) or auto")):
        with pytest.raises(InterfaceSpecError, match=r"queue=auto|queue=first") as e:
            Interface.parse(bad)
        assert says in str(e.value)


def test_claims_are_distinct_across_processes_freed_at_exit_and_the_extra_one_refused(shm_name):
    spec = f"shm:{shm_name},queues=3,queue=auto"
    with holders() as start:
        a, b, c = start(spec), start(spec), start(spec)
        assert sorted(h.queue for h in (a, b, c)) == [0, 1, 2]
        extra = start(spec)
        assert extra.line[0] == "error" and int(extra.line[1]) == errno.EBUSY
        assert f"shm device {shm_name}" in extra.line[2] and "all 3 queues claimed" in extra.line[2]
        # the holder of the middle queue exits: the next process gets exactly that queue
        middle = next(h for h in (a, b, c) if h.queue == 1)
        middle.end()
        assert start(spec).queue == 1
        # a holder killed outright frees its queue as well
        low = next(h for h in (a, b, c) if h.queue == 0)
        low.end(signal.SIGKILL)
        assert start(spec).queue == 0


def test_two_claims_in_one_process_conflict_and_release_gives_the_queue_back(shm_name):
    iface = Interface.parse(f"shm:{shm_name},queues=2,queue=auto")
    first, second = claim_queue(iface), claim_queue(iface)
    try:
        assert (first.queue, second.queue) == (0, 1)
        with pytest.raises(OSError) as e:
            claim_queue(iface)
        assert e.value.errno == errno.EBUSY
        first.release()
        again = claim_queue(iface)
        assert again.queue == 0
        again.release()
    finally:
        first.release()
        second.release()


def test_a_claim_file_others_can_write_is_refused(shm_name):
    iface = Interface.parse(f"shm:{shm_name},queues=2,queue=auto")
    path = claim_path(iface)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o666)
    with pytest.raises(PermissionError, match=r"writable by group or others \(mode 0666\).*rm "):
        claim_queue(iface)
    os.unlink(path)
    os.symlink("/dev/null", path)
    with pytest.raises(PermissionError, match="another user's file or a symlink"):
        claim_queue(iface)
    os.unlink(path)
    assert claim_queue(iface).queue == 0        # a fresh file of ours is fine


@pytest.mark.skipif(not IS_ROOT, reason="needs root: makes a claim file owned by another user")
def test_a_claim_file_of_another_user_is_refused(shm_name):
    iface = Interface.parse(f"shm:{shm_name},queues=2,queue=auto")
    path = claim_path(iface)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chown(path, 65534, 65534)
    # fs.protected_regular refuses even root's O_CREAT open of it (EACCES); without it, fstat sees the owner.
    with pytest.raises(PermissionError, match=r"belongs to uid 65534|another user's file"):
        claim_queue(iface)


def test_shm_workers_open_their_own_queue(shm_name):
    spec = f"shm:{shm_name},queues=2,queue=auto"
    with holders() as start:
        got = [start(spec, "open").line for _ in range(2)]
        # claimed_queue and interface.queue agree, and the two differ
        assert sorted((int(q), int(k)) for _, q, k in got) == [(0, 0), (1, 1)], got
    # the stack shows the queue it claimed (repr and stats) and gives it back on close
    st = Stack([f"{spec},ip=10.211.0.2/24"])
    try:
        assert st.interfaces[0].queue == 0 and st.devices[0].claimed_queue == 0
        assert "queues=2,queue=0" in repr(st)
        assert any("queue=0" in key for key in st.stats()["devices"])
    finally:
        st.close()
    with holders() as start:
        assert start(spec).queue == 0


@contextlib.contextmanager
def claims_in_netns():
    """A namespace of ours; the claim files made for links in it are removed afterwards."""
    with netns() as ns:
        ino = os.stat(f"/run/netns/{ns}").st_ino
        try:
            yield ns
        finally:
            for path in glob.glob(f"/dev/shm/aiorusty.*.{ino}.claims"):
                os.unlink(path)


@needs_root
@pytest.mark.timeout(120)
def test_tap_workers_claim_in_order_and_a_lone_restart_is_a_clear_error():
    tap = unique("rqa")
    with claims_in_netns() as ns, holders() as start:
        spec = f"tap:{tap},queues=2,queue=auto"
        w = [start(spec, "open", ns) for _ in range(2)]
        assert sorted(int(h.line[1]) for h in w) == [0, 1], [h.line for h in w]
        r = sh("ip", "-d", "link", "show", tap, ns=ns)
        assert "numqueues 2" in r.stdout, r.stdout
        high = next(h for h in w if int(h.line[1]) == 1)
        low = next(h for h in w if int(h.line[1]) == 0)
        # the highest queue's worker restarts alone: it claims queue 1 and attaches in order
        high.end(signal.SIGKILL)
        again = start(spec, "open", ns)
        assert again.line[:3] == ["queue", "1", "1"], again.line
        # the lowest queue's worker exits: the kernel moves queue 1 into its place, so a new
        # worker claiming queue 0 cannot attach in order and says what to do
        low.end()
        lone = start(spec, "open", ns)
        assert lone.line[0] == "error" and int(lone.line[1]) == errno.EBUSY, lone.line
        assert "queue=auto claimed queue 0 of 2" in lone.line[2] and "queue 0 is attached already" in lone.line[2] and "restart every worker" in lone.line[2]
        assert lone.proc.wait(timeout=20) == 0


@needs_root
@pytest.mark.timeout(120)
def test_afpacket_workers_claim_distinct_queues_and_reuse_a_freed_one():
    with claims_in_netns() as ns, holders() as start:
        sh("ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", ns=ns)
        sh("ip", "link", "set", "va", "up", ns=ns)
        spec = "afpacket:va,queues=2,queue=auto"
        w = [start(spec, "open", ns) for _ in range(2)]
        assert sorted(int(h.line[1]) for h in w) == [0, 1], [h.line for h in w]
        extra = start(spec, "open", ns)
        assert extra.line[0] == "error" and "afpacket device va" in extra.line[2]
        w[0].end(signal.SIGKILL)
        assert start(spec, "open", ns).line[1] == w[0].line[1]

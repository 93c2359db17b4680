"""TCP between two aiorusty stacks in two processes over a shm:NAME link (no root,
no kernel in the path), with the fault injector on one side (seeded loss,
reordering, duplication, corruption): a sha256-verified transfer both ways.
The peer sends either bytes or a StaticPayload: shm offers scatter-gather, so
payload segments go from the payload straight into the ring (rusty_buf ext),
retransmissions included."""

import hashlib
import os
import random
import subprocess
import sys

import pytest

from aiorusty.tcp import Stack

from _netns import unique
from _stack_peer import skip_if_enosys, wait_line
from _interop import Endpoint, pump

pytestmark = pytest.mark.timeout(120)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The other process: a TCP server on port 9 that reads to EOF, sends N bytes back
# (as bytes, or as ranges of one StaticPayload), closes.
PEER = r"""
import hashlib, random, sys, time
sys.path.insert(0, sys.argv[1])
from aiorusty._rusty import lib
from aiorusty._payload import StaticPayload
from aiorusty.tcp import Stack
n = int(sys.argv[3])
as_payload = sys.argv[4] == "payload"
s = Stack([f"shm:{sys.argv[2]},ip=10.9.1.1/24"], seed=5)
ls = s.tcp_listen(None, 9)
print("ready", flush=True)
data = random.Random(77).randbytes(n)
payload = StaticPayload(data) if as_payload else None
h = hashlib.sha256(); got = 0; c = None; sent = 0; fin = False; eof = False
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    s.poll()
    if c is None:
        c = s.tcp_accept(ls)
        continue
    while sent < n:
        if as_payload:
            k = s.tcp_send_payload(c, payload, sent, min(65536, n - sent))
        else:
            k = s.tcp_send(c, data[sent:sent + 65536])
        if not k:
            break
        sent += k
    if sent == n and not fin:
        s.tcp_shutdown(c); fin = True
    while not eof:
        d = s.tcp_recv(c)
        if d is None:
            break
        if d == b"":
            eof = True
        h.update(d); got += len(d)
    if fin and eof and s.tcp_info(c)["snd_una"] == s.tcp_info(c)["snd_nxt"]:
        break
    time.sleep(0.0002)
for _ in range(200):
    s.poll(); time.sleep(0.001)
print(h.hexdigest(), got, flush=True)
s.close()
"""


@pytest.mark.parametrize("send", ["bytes", "payload"])
@pytest.mark.parametrize("faults", [
    "drop=3%,seed=1",
    "reorder=10%,duplicate=5%,corrupt=1%,seed=2",
], ids=["loss3", "reorder+dup+corrupt"])
def test_shm_transfer_with_faults(faults, send):
    name = unique("rstcp")
    n = 500_000
    try:
        stack = Stack([f"shm:{name},ip=10.9.1.2/24,{faults}"], seed=1)
    except OSError as e:
        skip_if_enosys(e, "shm")
    proc = subprocess.Popen([sys.executable, "-c", PEER, ROOT, name, str(n), send], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_line(stack, proc)
        up = random.Random(88).randbytes(n)
        e = Endpoint(stack, stack.tcp_connect(("10.9.1.1", 9)), up)

        def until():
            e.step()
            return e.done

        pump(stack, until, 90)
        pump(stack, lambda: proc.poll() is not None, 20)
        out, err = proc.communicate(timeout=5)
        sha, got = out.split()[-2:]
        assert (int(got), sha) == (n, hashlib.sha256(up).hexdigest()), err
        assert e.error is None
        assert (e.nreceived, e.received.hexdigest()) == (n, hashlib.sha256(random.Random(77).randbytes(n)).hexdigest())
        st = stack.stats()
        assert st["tcp_retransmits"] + st["tcp_ooo_segments"] > 0
    finally:
        if proc.poll() is None:
            proc.kill()
        stack.close()

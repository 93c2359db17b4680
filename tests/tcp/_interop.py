"""Interop with the Linux TCP stack: aiorusty on a tap whose kernel end lives in a
network namespace the test creates; the Linux peer is a Python subprocess in
that namespace using ordinary kernel sockets.

Impairment: nftables `numgen random` drops in the namespace's input and output
hooks (real loss seen by the Linux stack), and aiorusty's fault injector on its
own device (delay, reorder, duplication, corruption) via the interface spec.
"""

import contextlib
import hashlib
import ipaddress
import os
import random
import select
import sys
import time

from aiorusty._rusty import lib
from aiorusty.nic import open_device
from aiorusty.nic._host import configure_host_side
from aiorusty.tcp import Stack

from _netns import netns, sh, unique
from _stack_peer import popen_ns, skip_if_enosys

NET = 150 + os.getpid() % 50
STACK_IP = f"10.{NET}.9.2"
HOST_IP = f"10.{NET}.9.1"


def payload(n, seed):
    return random.Random(seed).randbytes(n)


# The Linux side. argv: mode ip port nsend seed
#   server: listen, accept one, read to EOF, send nsend bytes, close
#   client: connect, send nsend bytes, shut down writing, read to EOF
# Prints "ready" (server, once listening), then "<sha of received> <bytes received>".
LINUX_PEER = r"""
import hashlib, random, socket, sys, threading
mode, ip, port, nsend, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = random.Random(seed).randbytes(nsend)
if mode == "server":
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, port)); ls.listen(8)
    print("ready", flush=True)
    ls.settimeout(60)
    s, _ = ls.accept()
else:
    s = socket.create_connection((ip, port), timeout=60)
s.settimeout(120)
def sender():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
th = threading.Thread(target=sender); th.start()
h = hashlib.sha256(); n = 0
while True:
    b = s.recv(65536)
    if not b: break
    h.update(b); n += len(b)
th.join()
s.close()
print(h.hexdigest(), n, flush=True)
"""


@contextlib.contextmanager
def tap_stack(faults="", loss=0, **config):
    """(stack, ns): aiorusty on a tap, its kernel end in a fresh namespace.

    loss=N: N% random loss of TCP segments in both directions (see nft_loss)."""
    name = unique("rtcp")
    if loss and not faults:
        # nftables drops in the namespace's OUTPUT hook are not wire losses for the
        # local Linux sender (the error reaches tcp_transmit_skb, which sends the
        # segment again, as after local congestion), so Linux's data also loses
        # the same share on our receive side, through the fault injector.
        faults = f"drop={loss}%,faults_dir=rx,seed={loss}"
        # And the stack sends MSS-sized frames (no TSO, offload=0): Linux's input
        # hook sees a TSO frame as one packet, so N% of packets would be N% of
        # 64 KiB frames - a 1 MB transfer often lost none. (TSO frames through
        # loss: test_interop's *_tso_frames_through_* tests.)
        faults += ",offload=0"
    with netns() as ns:
        spec = f"tap:{name}" + (f",{faults}" if faults else "")
        try:
            dev = open_device(spec)
        except OSError as e:
            skip_if_enosys(e, "tap")
        stack = Stack(seed=3, **config)
        try:
            stack.add_interface(dev, ip=f"{STACK_IP}/24")
            configure_host_side(dev, host=ipaddress.IPv4Interface(f"{HOST_IP}/24"), netns=ns)
            if loss:
                nft_loss(ns, loss, name)
            yield stack, ns
        finally:
            stack.close()
            dev.close()


@contextlib.contextmanager
def afpacket_stack(**config):
    """(stack, ns): aiorusty on AF_PACKET over the root end of a veth pair whose
    other end (with the Linux peer's address) is in a fresh namespace. The Linux
    end sends no GSO/TSO super-frames (AF_PACKET would see frames over the MTU)
    and merges nothing with GRO, so both sides see wire-sized segments."""
    from _netns import veth_pair

    a, b = unique("rtva"), unique("rtvb")
    with netns() as ns, veth_pair(a, b, ns_b=ns):
        # The root end carries no address: the stack owns it through AF_PACKET.
        sh("sysctl", "-qw", f"net.ipv6.conf.{a}.disable_ipv6=1", check=False)
        sh("sysctl", "-qw", f"net.ipv4.conf.{a}.forwarding=0", check=False)
        sh("sysctl", "-qw", f"net.ipv6.conf.{b}.disable_ipv6=1", check=False, ns=ns)
        sh("ethtool", "-K", a, "tso", "off", "gso", "off", "gro", "off", check=False)
        sh("ethtool", "-K", b, "tso", "off", "gso", "off", "gro", "off", ns=ns, check=False)
        sh("ip", "link", "set", a, "up")
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", b, ns=ns)
        sh("ip", "link", "set", b, "up", ns=ns)
        try:
            stack = Stack([f"afpacket:{a},ip={STACK_IP}/24"], seed=3, **config)
        except OSError as e:
            skip_if_enosys(e, "afpacket")
        try:
            yield stack, ns
        finally:
            stack.close()


def nft_loss(ns, percent, dev=None):
    """Random loss of TCP segments in both directions, on the Linux side. Segmentation
    offloads are turned off on the kernel end so a drop removes one segment, not a
    64 KB GSO burst (the output hook runs before segmentation)."""
    if dev:
        # Linux TCP always builds GSO packets (segmented at the device, after the
        # output hook) and GRO merges on input (before the input hook): without
        # this a "1%" drop removes dozens of segments at once.
        sh("ip", "link", "set", "dev", dev, "gso_max_segs", "1", ns=ns, check=False)
        sh("ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", ns=ns, check=False)
    rules = f"""
table inet rustyloss {{
  chain in {{ type filter hook input priority 0; meta l4proto tcp numgen random mod 100 < {percent} counter drop; }}
  chain out {{ type filter hook output priority 0; meta l4proto tcp numgen random mod 100 < {percent} counter drop; }}
}}
"""
    sh("nft", "-f", "-", ns=ns, input=rules)


class Endpoint:
    """One aiorusty connection driven by pump(): sends `data`, then FIN; collects what arrives."""

    def __init__(self, stack, sock, data):
        self.stack, self.sock, self.data = stack, sock, data
        self.sent = 0
        self.fin = False
        self.received = hashlib.sha256()
        self.nreceived = 0
        self.eof = False
        self.error = None

    def step(self):
        st = self.stack
        if st.tcp_info(self.sock)["state"] == "SYN-SENT":
            return                          # shutdown() in SYN-SENT closes (as in Linux): wait
        while self.sent < len(self.data):
            n = st.tcp_send(self.sock, memoryview(self.data)[self.sent:self.sent + 262144])
            if not n:
                break
            self.sent += n
        if self.sent == len(self.data) and not self.fin:
            st.tcp_shutdown(self.sock)
            self.fin = True
        while not self.eof:
            try:
                b = st.tcp_recv(self.sock, 65536)
            except OSError as e:
                self.error = e
                self.eof = True
                break
            if b is None:
                break
            if b == b"":
                self.eof = True
                break
            self.received.update(b)
            self.nreceived += len(b)

    @property
    def done(self):
        return self.fin and self.eof


class PayloadEndpoint(Endpoint):
    """Sends its data as a StaticPayload (no copy into the send buffer), after the
    first `head` bytes sent as ordinary bytes: segments mix both, and every
    payload range starts at an odd offset when head is odd."""

    head = 1001

    def __init__(self, stack, sock, data):
        super().__init__(stack, sock, data)
        from aiorusty._payload import StaticPayload
        self.payload = StaticPayload(data)

    def step(self):
        st = self.stack
        if st.tcp_info(self.sock)["state"] == "SYN-SENT":
            return                          # shutdown() in SYN-SENT closes (as in Linux): wait
        while self.sent < len(self.data):
            if self.sent < self.head:
                n = st.tcp_send(self.sock, memoryview(self.data)[self.sent:self.head])
            else:
                n = st.tcp_send_payload(self.sock, self.payload, self.sent)
            if not n:
                break
            self.sent += n
        self.payload_done = self.sent == len(self.data)
        if self.payload_done:
            self.payload = None             # the queue keeps it alive until acknowledged
        Endpoint.step(self)


def pump(stack, until, timeout, on_event=None):
    fds = stack.fds()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in stack.poll():
            if on_event:
                on_event(ev)
        if until():
            return
        nd = stack.next_deadline()
        wait = 0.005 if nd is None else max(0.0, min(0.005, (nd - stack.now_us()) / 1e6))
        select.select(fds, [], [], wait)
    raise TimeoutError(f"not done in {timeout}s")


def finish_peer(proc, stack, timeout=30):
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        stack.poll()
        time.sleep(0.002)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    sha, n = out.split()[-2:]
    return sha, int(n)


def linux_to_rusty(stack, ns, nup, ndown, timeout=60, endpoint=Endpoint):
    """Linux client -> aiorusty server; checks both directions' sha256."""
    lsock = stack.tcp_listen(None, 5001)
    proc = popen_ns(ns, sys.executable, "-c", LINUX_PEER, "client", STACK_IP, 5001, nup, 11)
    down = payload(ndown, 22)
    ep = []

    def on_event(ev):
        if ev[0] == lsock and ev[1] == lib.RUSTY_EV_TCP_ACCEPT and not ep:
            s = stack.tcp_accept(lsock)
            if s is not None:
                ep.append(endpoint(stack, s, down))

    def until():
        if ep:
            ep[0].step()
            return ep[0].done
        return False

    try:
        pump(stack, until, timeout, on_event)
        sha, n = finish_peer(proc, stack)
    finally:
        if proc.poll() is None:
            proc.kill()
    e = ep[0]
    assert e.error is None, e.error
    assert (e.nreceived, e.received.hexdigest()) == (nup, hashlib.sha256(payload(nup, 11)).hexdigest())
    assert (n, sha) == (ndown, hashlib.sha256(down).hexdigest())
    info = stack.tcp_info(e.sock)
    stack.tcp_close(e.sock)
    stack.tcp_close(lsock)
    return info


def rusty_to_linux(stack, ns, nup, ndown, timeout=60, endpoint=Endpoint):
    """aiorusty client -> Linux server; checks both directions' sha256."""
    from _stack_peer import wait_line

    proc = popen_ns(ns, sys.executable, "-c", LINUX_PEER, "server", HOST_IP, 5002, ndown, 33)
    try:
        wait_line(stack, proc)
        up = payload(nup, 44)
        sock = stack.tcp_connect((HOST_IP, 5002))
        e = endpoint(stack, sock, up)

        def until():
            e.step()
            return e.done

        pump(stack, until, timeout)
        sha, n = finish_peer(proc, stack)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert e.error is None, e.error
    assert (e.nreceived, e.received.hexdigest()) == (ndown, hashlib.sha256(payload(ndown, 33)).hexdigest())
    assert (n, sha) == (nup, hashlib.sha256(up).hexdigest())
    info = stack.tcp_info(sock)
    stack.tcp_close(sock)
    return info

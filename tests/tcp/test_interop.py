"""aiorusty TCP against the Linux TCP stack over a tap in a namespace the test
creates: sha256-verified transfers in both directions, clean and impaired."""

import os

import pytest

from aiorusty._rusty import lib

from _interop import PayloadEndpoint, afpacket_stack, linux_to_rusty, rusty_to_linux, tap_stack
from _netns import need_tool, needs_root, sh

pytestmark = [needs_root, pytest.mark.timeout(120)]

MB = 1 << 20


def test_linux_client_to_rusty_server():
    with tap_stack() as (stack, ns):
        info = linux_to_rusty(stack, ns, 4 * MB, 4 * MB)
        assert info["timestamps"] == 1 and info["snd_wscale"] > 0 and info["mss"] == 1448
        st = stack.stats()
        assert st["tcp_bad_checksum"] == 0 and st["tcp_malformed"] == 0
        assert st["tcp_rst_rx"] == 0 and st["tcp_rst_tx"] == 0     # a clean close on both sides


def test_rusty_client_to_linux_server():
    with tap_stack() as (stack, ns):
        info = rusty_to_linux(stack, ns, 4 * MB, 4 * MB)
        assert info["timestamps"] == 1 and info["rcv_wscale"] > 0


@pytest.mark.parametrize("percent", [1, 5])
def test_loss_nftables(percent):
    need_tool("nft")
    with tap_stack(loss=percent) as (stack, ns):
        linux_to_rusty(stack, ns, MB, MB, timeout=90)
        rusty_to_linux(stack, ns, MB, MB, timeout=90)
        st = stack.stats()
        assert st["tcp_retransmits"] > 0          # we recovered our losses
        assert st["tcp_ooo_segments"] > 0         # and Linux's (holes in what it sent us)


@pytest.mark.parametrize("faults", [
    "delay=25ms,drop=1%,seed=1,offload=0",     # MSS frames: 1% of 64 KiB TSO frames is often none
    "reorder=10%,seed=2",
    "duplicate=5%,seed=3",
    "corrupt=1%,seed=4",
], ids=["delay25ms+loss1", "reorder10", "dup5", "corrupt1"])
def test_fault_injector(faults):
    with tap_stack(faults=faults) as (stack, ns):
        linux_to_rusty(stack, ns, MB, MB, timeout=90)
        info = rusty_to_linux(stack, ns, MB, MB, timeout=90)
        st = stack.stats()
        # The impairment really happened (else this test could not fail).
        if "corrupt" in faults:
            assert st["tcp_bad_checksum"] + st["ip_bad_checksum"] + st["tcp_malformed"] > 0
        if "reorder" in faults or "drop" in faults:
            assert st["tcp_ooo_segments"] > 0
        if "delay" in faults:
            assert info["srtt_us"] >= 25_000
            assert st["tcp_retransmits"] > 0


LINUX_SEND_THEN = r"""
import socket, sys, time, struct
ip, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.create_connection((ip, port), timeout=30)
data = bytes(i % 253 for i in range(n))
if mode == "rst":
    s.send(data[: n // 2])
    time.sleep(0.3)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()                       # RST mid-transfer
else:
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    s.close()
print("done", flush=True)
"""


def _accept_one(stack, lsock, timeout=10):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.poll()
        s = stack.tcp_accept(lsock)
        if s is not None:
            return s
        time.sleep(0.001)
    raise TimeoutError("no connection")


def test_zero_window_stall_then_recovery():
    """The application stops reading: the window closes, Linux probes; then it reads
    everything and the transfer completes intact."""
    import sys
    import time
    from _stack_peer import popen_ns
    from _interop import STACK_IP, pump

    n = 2 * MB
    with tap_stack(tcp_rcvbuf=65536) as (stack, ns):
        lsock = stack.tcp_listen(None, 6001)
        proc = popen_ns(ns, sys.executable, "-c", LINUX_SEND_THEN, STACK_IP, 6001, n, "send")
        s = _accept_one(stack, lsock)
        t_end = time.monotonic() + 1.5
        pump(stack, lambda: time.monotonic() > t_end, 10)        # not reading: window goes to 0
        info = stack.tcp_info(s)
        assert info["rcv_wnd"] < 1 << info["rcv_wscale"] and info["bytes_readable"] > 60000   # closed (to the scale unit)
        got = bytearray()
        eof = []

        def until():
            while True:
                d = stack.tcp_recv(s)
                if d is None:
                    return False
                if d == b"":
                    eof.append(1)
                    stack.tcp_close(s)
                    return True
                got.extend(d)

        pump(stack, until, 60)
        pump(stack, lambda: proc.poll() is not None, 10)
        assert proc.returncode == 0, proc.stderr.read()
        assert bytes(got) == bytes(i % 253 for i in range(n))


def test_linux_rst_mid_transfer_econnreset():
    import sys
    from _stack_peer import popen_ns
    from _interop import STACK_IP, pump

    with tap_stack() as (stack, ns):
        lsock = stack.tcp_listen(None, 6002)
        proc = popen_ns(ns, sys.executable, "-c", LINUX_SEND_THEN, STACK_IP, 6002, 400_000, "rst")
        s = _accept_one(stack, lsock)
        errors = []

        def until():
            try:
                while stack.tcp_recv(s) not in (None, b""):
                    pass
            except ConnectionResetError as e:
                errors.append(e)
                return True
            return False

        pump(stack, until, 20)
        assert errors and stack.tcp_info(s)["state"] == "CLOSED"
        assert stack.stats()["tcp_rst_rx"] == 1
        stack.tcp_close(s)
        proc.wait(10)


@pytest.mark.skipif(not os.environ.get("AIORUSTY_SLOW"), reason="100 MB transfers: set AIORUSTY_SLOW=1")
@pytest.mark.timeout(600)
def test_100mb_both_ways_and_lossy():
    with tap_stack() as (stack, ns):
        linux_to_rusty(stack, ns, 100 * MB, 100 * MB, timeout=240)
        rusty_to_linux(stack, ns, 100 * MB, 100 * MB, timeout=240)
    with tap_stack(loss=1) as (stack, ns):
        linux_to_rusty(stack, ns, 20 * MB, 20 * MB, timeout=240)
        rusty_to_linux(stack, ns, 20 * MB, 20 * MB, timeout=240)


def test_static_payload_to_linux_over_tap():
    # A multi-MB StaticPayload (after 1001 ordinary bytes, so every payload range
    # starts at an odd offset) sent to Linux, which checks nothing but the bytes:
    # a wrong precomputed checksum would be dropped by Linux and stall the transfer.
    with tap_stack() as (stack, ns):
        linux_to_rusty(stack, ns, 64 * 1024, 6 * MB, endpoint=PayloadEndpoint)
        dev = stack.devices[0]
        before = dev.stats()["tx_frames"]
        rusty_to_linux(stack, ns, 6 * MB, 64 * 1024, endpoint=PayloadEndpoint)
        st = stack.stats()
        assert st["tcp_rst_rx"] == 0 and st["tcp_rst_tx"] == 0
        # The tap offers TSO: payload runs leave as frames of up to 64 KiB that the
        # kernel cuts into MSS segments - far fewer writes than 6 MB / MSS (4,300).
        assert dev.info()["offloads"] & lib.RUSTY_OFF_TSO
        assert dev.stats()["tx_frames"] - before < 6 * MB // 1448 // 4


def test_static_payload_tso_frames_through_loss():
    # Linux drops every 25th TCP packet it receives (nftables `numgen inc`, in its
    # input hook: a TSO frame arrives as one GSO packet, so a whole frame goes;
    # a counter, not a random draw, so there is always a loss). The lost frames
    # are retransmitted from SND.UNA, again as TSO frames, until every byte is
    # there. (No fault injector here: a wrapper device offers no TSO.)
    with tap_stack() as (stack, ns):
        sh("nft", "-f", "-", ns=ns, input="table inet rustytso {\n chain in {\n type filter hook input priority 0;\n"
                                          " meta l4proto tcp numgen inc mod 25 == 0 counter drop\n }\n}\n")
        dev = stack.devices[0]
        before = dev.stats()["tx_frames"]
        rusty_to_linux(stack, ns, 4 * MB, 64 * 1024, endpoint=PayloadEndpoint, timeout=120)
        assert stack.stats()["tcp_retransmits"] > 0
        assert dev.stats()["tx_frames"] - before < 4 * MB // 1448 // 4


def test_afpacket_both_directions():
    with afpacket_stack() as (stack, ns):
        linux_to_rusty(stack, ns, 4 * MB, 4 * MB)
        rusty_to_linux(stack, ns, 4 * MB, 4 * MB, endpoint=PayloadEndpoint)
        st = stack.stats()
        assert st["tcp_bad_checksum"] == 0 and st["tcp_malformed"] == 0
        assert st["tcp_rst_rx"] == 0 and st["tcp_rst_tx"] == 0


# Bytes an app writes (copied into the send ring) leave as TSO frames of up to
# 64 KiB gathered from the ring: far fewer device frames than bytes / MSS, and
# every byte intact as Linux's sha256 says.
def _tso_frames(dev, before, nbytes):
    # Not a tight bound: under CPU contention a device that refuses writes holds
    # frames, the big buffers run out and some segments leave MSS-sized.
    sent = dev.stats()["tx_frames"] - before
    assert sent < nbytes // 1448 // 2, f"{sent} frames for {nbytes} bytes: not TSO"


def test_bytes_leave_as_tso_frames_over_tap():
    with tap_stack() as (stack, ns):
        dev = stack.devices[0]
        linux_to_rusty(stack, ns, 64 * MB, 64 * MB, timeout=110)       # both ways, sha256
        before = dev.stats()["tx_frames"]
        linux_to_rusty(stack, ns, 64 * 1024, 16 * MB, timeout=110)     # frames counted one way
        _tso_frames(dev, before, 16 * MB)
        st = stack.stats()
        assert st["tcp_rst_rx"] == 0 and st["tcp_rst_tx"] == 0


def test_bytes_leave_as_tso_frames_over_afpacket():
    with afpacket_stack() as (stack, ns):
        dev = stack.devices[0]
        assert dev.info()["offloads"] & lib.RUSTY_OFF_TSO
        linux_to_rusty(stack, ns, 64 * MB, 64 * MB, timeout=110)       # both ways, sha256
        before = dev.stats()["tx_frames"]
        linux_to_rusty(stack, ns, 64 * 1024, 16 * MB, timeout=110)     # frames counted one way
        _tso_frames(dev, before, 16 * MB)
        st = stack.stats()
        assert st["tcp_rst_rx"] == 0 and st["tcp_rst_tx"] == 0


def test_bytes_tso_frames_through_loss():
    # As the static-payload case above: every 25th packet Linux receives is
    # dropped, a whole TSO frame at a time; the ranges are sent again (from the
    # ring, gathered afresh) until Linux has every byte.
    with tap_stack() as (stack, ns):
        sh("nft", "-f", "-", ns=ns, input="table inet rustytsob {\n chain in {\n type filter hook input priority 0;\n"
                                          " meta l4proto tcp numgen inc mod 25 == 0 counter drop\n }\n}\n")
        dev = stack.devices[0]
        before = dev.stats()["tx_frames"]
        rusty_to_linux(stack, ns, 8 * MB, 64 * 1024, timeout=110)
        assert stack.stats()["tcp_retransmits"] > 0
        _tso_frames(dev, before, 8 * MB)


@pytest.mark.parametrize("faults", ["drop=2%,faults_dir=tx,seed=7", "reorder=10%,faults_dir=tx,seed=8",
                                    "delay=5ms,drop=1%,reorder=5%,faults_dir=tx,seed=9"],
                         ids=["drop2", "reorder10", "delay+drop+reorder"])
def test_bytes_tso_frames_through_fault_injector(faults):
    # The injector passes TSO frames whole when it only drops, reorders and delays.
    with tap_stack(faults=faults) as (stack, ns):
        dev = stack.devices[0]
        assert dev.info()["offloads"] & lib.RUSTY_OFF_TSO
        before = dev.stats()["tx_frames"]
        rusty_to_linux(stack, ns, 8 * MB, 64 * 1024, timeout=110)
        _tso_frames(dev, before, 8 * MB)
        st = stack.stats()
        if "drop" in faults:
            assert st["tcp_retransmits"] > 0

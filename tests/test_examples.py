"""Every program in examples/ run for real, as its header comment says to run it.

Without root the examples meet over shared-memory links the test names
uniquely (the server on one end, the example client or `aiorusty load` on
the other) or over an in-process loopback interface; as root they also run
over taps in network namespaces the test creates, reached by kernel clients
there, and the middlebox script builds and removes its own test-bed. Each
example is stopped by its --duration or by a signal, and every process and
namespace is gone when a test ends.
"""

import glob
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from _netns import need_tool, needs_root, netns, sh, unique

pytestmark = pytest.mark.timeout(120)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
ENV = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
NET = 200 + os.getpid() % 50            # 10.NET.x.0/24: subnets of this run's taps


def example(name, *args):
    return [sys.executable, os.path.join(EXAMPLES, name), *args]


@pytest.fixture
def shm_pair():
    """Specs of the two ends of a fresh shm link, (server side .1, client side .2, server address) in
    10.78.NET.0/24; afterwards the link's files in /dev/shm must be gone (both ends closed their loops)."""
    names = []

    def make(net):
        names.append(unique("ex"))
        return f"shm:{names[-1]},ip=10.78.{net}.1/24", f"shm:{names[-1]},ip=10.78.{net}.2/24", f"10.78.{net}.1"
    yield make
    left = [f for name in names for f in glob.glob(f"/dev/shm/aiorusty-{name}*")]
    for f in left:
        os.unlink(f)
    assert not left, f"an example did not close its loop, leaving its shm link behind: {left}"


class Running:
    """A started example: its output (stdout and stderr, merged) collected as it comes."""

    def __init__(self, argv, ns=None, env=None):
        argv = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in argv]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=dict(ENV, **(env or {})), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def wait_for(self, pattern, count=1, timeout=30):
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, self.output)) < count:
            if self.proc.poll() is not None:
                self.reader.join(5)
                if len(re.findall(pattern, self.output)) >= count:
                    return
                raise AssertionError(f"exited {self.proc.returncode} before {pattern!r}:\n{self.output}")
            assert time.monotonic() < deadline, f"no {pattern!r} within {timeout} s:\n{self.output}"
            time.sleep(0.05)

    def finish(self, sig=None, timeout=30):
        """Stop it (with `sig`, else let --duration end it); its exit status."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"did not stop within {timeout} s:\n{self.output}") from None
        finally:
            self.kill()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        self.proc.stdout.close()


def run(argv, ns=None, timeout=60):
    """Run a client to completion; its output. Fails on a non-zero exit."""
    argv = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in argv]
    r = subprocess.run(argv, cwd=ROOT, env=ENV, text=True, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert r.returncode == 0, f"{' '.join(argv)} exited {r.returncode}:\n{r.stdout}"
    return r.stdout


# ---- no root: shared-memory links and loopback


def test_echo_server_and_client_over_shm(shm_pair):
    server_spec, client_spec, ip = shm_pair(1)
    server = Running(example("echo_server.py", "--iface", server_spec))
    try:
        server.wait_for("echo server listening on")
        out = run(example("echo_client.py", "--iface", client_spec, "-c", 20, ip, "hello"))
        assert "20/20 echoed" in out and "connections opened on the stack: 20" in out, out
        assert server.finish(signal.SIGINT) == 0, server.output
    finally:
        server.kill()


def test_udp_echo_over_shm(shm_pair):
    server_spec, client_spec, ip = shm_pair(2)
    server = Running(example("udp_echo.py", "server", "--iface", server_spec, "--duration", 30))
    try:
        server.wait_for("udp echo on")
        out = run(example("udp_echo.py", "client", "--iface", client_spec, ip, "-n", 50))
        assert "50/50 echoed; datagrams in/out: 50/50" in out, out
        assert server.finish(signal.SIGINT) == 0, server.output
    finally:
        server.kill()


def test_uvicorn_app_switched_by_environment(shm_pair):
    pytest.importorskip("uvicorn")
    pytest.importorskip("aiohttp")
    server_spec, client_spec, ip = shm_pair(3)
    server = Running([sys.executable, "-m", "uvicorn", "asgi_app:app", "--app-dir", "examples", "--host", ip,
                      "--port", "8000", "--loop", "aiorusty:new_event_loop"], env={"AIORUSTY_IFACE": server_spec})
    try:
        server.wait_for("Uvicorn running on")
        out = run(example("http_client.py", "--iface", client_spec, f"http://{ip}:8000/", f"http://{ip}:8000/x"))
        assert out.count("-> 200: hello from RustyEventLoop") == 2, out
        assert "tcp_active_opens 0 -> 1" in out, out       # aiohttp's own socket, on the stack, kept alive
        # SIGINT: on SIGTERM uvicorn shuts down, then re-raises the signal from inside its still running
        # loop, so the process dies before the loop closes its interface (and the shm link's files stay).
        server.finish(signal.SIGINT)
        assert "Application shutdown complete" in server.output, server.output
    finally:
        server.kill()


def test_aiohttp_app_through_the_launcher(shm_pair):
    pytest.importorskip("aiohttp")
    server_spec, client_spec, ip = shm_pair(4)
    server = Running(example("launch.py", "-m", "aiohttp.web", "-H", ip, "-P", 8080, "aiohttp_app:init"),
                     env={"AIORUSTY_IFACE": server_spec})
    try:
        server.wait_for("Running on")
        out = run(example("http_client.py", "--iface", client_spec, f"http://{ip}:8080/"))
        assert "-> 200: hello from RustyEventLoop" in out, out
        server.finish(signal.SIGTERM)
        assert "Stopped" in server.output, server.output
    finally:
        server.kill()


def test_pytest_asyncio_example_suite():
    pytest.importorskip("pytest_asyncio")
    out = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/pytest_asyncio"])
    assert re.search(r"\b2 passed\b", out), out


# A request head cut into one-byte writes: its blank line arrives across four reads.
SPLIT_REQUESTS = """
import asyncio, sys, aiorusty
async def main(host):
    reader, writer = await asyncio.open_connection(host, 8080)
    for request in (b"GET /a HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", b"GET /b HTTP/1.1\\r\\n\\r\\n" * 2):
        for i in range(len(request)):
            writer.write(request[i:i + 1])
            await writer.drain()
            await asyncio.sleep(0.002)
    for _ in range(3):
        head = await reader.readuntil(b"\\r\\n\\r\\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\\r\\n")[0])
        await reader.readexactly(length)
    writer.close()
    print("3 responses")
aiorusty.run(main(sys.argv[2]), interfaces=[sys.argv[1]])
"""


def test_zero_copy_server(shm_pair):
    pytest.importorskip("aiohttp")
    server_spec, client_spec, ip = shm_pair(5)
    server = Running(example("zerocopy_server.py", "--iface", server_spec, "--size", 20000))
    try:
        server.wait_for("zero-copy HTTP on")
        out = run(example("http_client.py", "--iface", client_spec, f"http://{ip}:8080/", f"http://{ip}:8080/b"))
        assert out.count("-> 200: 20000 bytes") == 2, out
        assert "3 responses" in run([sys.executable, "-c", SPLIT_REQUESTS, client_spec, ip])
        server.finish(signal.SIGINT)
    finally:
        server.kill()


def test_workers_one_loop_per_core(shm_pair):
    server_spec, client_spec, ip = shm_pair(6)
    workers = Running(example("workers.py", "--iface", server_spec, "-w", 2, "--duration", 6))
    try:
        workers.wait_for(r"worker \d/2 .* queue \d of 2", count=2)
        run([sys.executable, "-m", "aiorusty", "load", "-q", "-w", "1", "-c", 16, "-d", 1,
             "--iface", client_spec + ",queues=2", f"http://{ip}:8080/"])
        assert workers.finish() == 0, workers.output
    finally:
        workers.kill()
    served = re.findall(r"worker (\d) \(queue (\d)\) served (\d+) connections, (\d+) requests", workers.output)
    assert [(w, q) for w, q, _, _ in served] == [("0", "0"), ("1", "1")], workers.output
    # 16 connections spread by a flow hash: each queue gets some (all on one: 2 in 65536)
    assert sum(int(c) for _, _, c, _ in served) == 16 and all(int(r) > 0 for *_, r in served), workers.output


# ---- root: taps in namespaces, reached by kernel clients there; the middlebox test-bed

ECHO_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    s.sendall(b"from the kernel")
    print(s.recv(100).decode())
"""


@needs_root
def test_echo_server_over_tap():
    stack_ip, host_ip = f"10.{NET}.31.2", f"10.{NET}.31.1"
    with netns() as ns:
        spec = f"tap:{unique('rxe')},ip={stack_ip}/24,host={host_ip}/24"
        server = Running(example("echo_server.py", "--iface", spec, "--duration", 30), ns=ns)
        try:
            server.wait_for("echo server listening on")
            assert run([sys.executable, "-c", ECHO_CLIENT, stack_ip, 7777], ns=ns).strip() == "from the kernel"
            server.finish(signal.SIGINT)
        finally:
            server.kill()


@needs_root
def test_http_client_to_a_kernel_server_over_tap():
    pytest.importorskip("aiohttp")
    stack_ip, host_ip = f"10.{NET}.32.2", f"10.{NET}.32.1"
    with netns() as ns:
        spec = f"tap:{unique('rxc')},ip={stack_ip}/24,host={host_ip}/24"
        # The wildcard: the tap, and with it the host address, exists only once the client's stack opens it.
        server = Running([sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "8000", "--directory", EXAMPLES],
                         ns=ns)
        try:
            server.wait_for("Serving HTTP")
            out = run(example("http_client.py", "--iface", spec, f"http://{host_ip}:8000/launch.py"), ns=ns)
            assert "-> 200: " in out and "tcp_active_opens 0 -> 1" in out, out
            server.finish(signal.SIGINT)
        finally:
            server.kill()


WORKER_CLIENT = """
import http.client, sys
for _ in range(16):
    c = http.client.HTTPConnection(sys.argv[1], 8080, timeout=10)
    c.request("GET", "/")
    assert c.getresponse().read() == b"hello\\n"
    c.close()
print("16 answered")
"""


@needs_root
def test_workers_over_a_multi_queue_tap():
    stack_ip, host_ip = f"10.{NET}.33.2", f"10.{NET}.33.1"
    with netns() as ns:
        spec = f"tap:{unique('rxw')},ip={stack_ip}/24,host={host_ip}/24"
        workers = Running(example("workers.py", "--iface", spec, "-w", 2, "--duration", 8), ns=ns)
        try:
            workers.wait_for(r"worker \d/2 .* queue \d of 2", count=2)
            assert "16 answered" in run([sys.executable, "-c", WORKER_CLIENT, stack_ip], ns=ns)
            assert workers.finish() == 0, workers.output
        finally:
            workers.kill()
    served = [int(c) for c in re.findall(r"worker \d \(queue \d\) served (\d+) connections", workers.output)]
    # steered by the tap's flow hash: each queue gets some (all on one: 2 in 65536)
    assert len(served) == 2 and sum(served) == 16 and min(served) > 0, workers.output


@needs_root
def test_middlebox_script():
    for tool in ("nft", "tc"):
        need_tool(tool)
    prefix = f"ex{os.getpid() % 10000}"
    try:
        out = run(example("middlebox.py", "--duration", 2, "--loss", 1, "--rate", "200mbit", "--prefix", prefix),
                  timeout=90)
    finally:
        sh(sys.executable, "-m", "aiorusty", "testbed", "down", "--prefix", prefix, check=False, env=ENV)
    assert re.search(r"generator: [\d,]+ responses .* req/s, goodput", out), out
    assert "errors: none" in out and re.search(r"middlebox: [\d,]+ packets dropped by the loss rule", out), out
    assert not {f"{prefix}-gen", f"{prefix}-mb", f"{prefix}-srv"} & set(sh("ip", "netns", "list").stdout.split())

"""Unmodified servers on aiorusty over a tap, clients from the Linux side (root only).

Each app (asyncio streams via aiorusty.run, aiohttp web.run_app, uvicorn with
--loop aiorusty.runner:new_event_loop) runs in a network namespace the test
creates, configured only by AIORUSTY_IFACE="tap:NAME,ip=STACK/24,host=HOST/24",
so the tap's kernel side (HOST) and every client live in that namespace. curl
and a 200-connection keep-alive client check exact bodies, a 5 MiB download and
upload by sha256, that the wildcard server is also on the kernel (127.0.0.1),
and that SIGTERM shuts the app down cleanly.
"""

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from _netns import need_tool, needs_root, netns, sh, unique

pytestmark = [needs_root, pytest.mark.timeout(240)]

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, APPS)
from common import BIG_SHA256, HELLO  # noqa: E402

NET = 150 + os.getpid() % 50
STACK_IP = f"10.{NET}.9.2"
HOST_IP = f"10.{NET}.9.1"
PORT = 8080

APP_ARGV = {
    "streams": [sys.executable, os.path.join(APPS, "streams_app.py"), str(PORT)],
    "aiohttp": [sys.executable, os.path.join(APPS, "aiohttp_app.py"), str(PORT)],
    "uvicorn": [sys.executable, "-m", "uvicorn", "asgi_app:app", "--app-dir", APPS, "--host", "0.0.0.0",
                "--port", str(PORT), "--loop", "aiorusty.runner:new_event_loop", "--no-access-log"],
}


def curl(ns, *args, timeout=60):
    r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", str(timeout - 5), *args],
                       capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"curl {' '.join(args)} failed ({r.returncode}): {r.stderr.decode()}")
    return r.stdout


@contextlib.contextmanager
def app_in_ns(kind, scheme="http", extra_env=None):
    pytest.importorskip(kind) if kind in ("aiohttp", "uvicorn") else None
    need_tool("curl")
    tap = unique("rlt")
    with netns() as ns:
        env = dict(os.environ, AIORUSTY_IFACE=f"tap:{tap},ip={STACK_IP}/24,host={HOST_IP}/24",
                   PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", **(extra_env or {}))
        proc = subprocess.Popen(["ip", "netns", "exec", ns] + APP_ARGV[kind], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    out, err = proc.communicate()
                    raise AssertionError(f"{kind} app exited {proc.returncode}: {out.decode()} {err.decode()}")
                r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sk", "--max-time", "1",
                                    f"{scheme}://{STACK_IP}:{PORT}/"], capture_output=True)
                if r.returncode == 0 and r.stdout == HELLO:
                    break
                assert time.monotonic() < deadline, f"{kind} app not reachable at {STACK_IP}:{PORT}"
                time.sleep(0.3)
            yield ns, proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()


HTTP_CLIENT = """
import hashlib, http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=30)
c.request("GET", "/")
print(c.getresponse().read().decode().strip())
c.request("GET", "/big")
print(hashlib.sha256(c.getresponse().read()).hexdigest())
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.parametrize("kind", ["streams", "aiohttp", "uvicorn"])
def test_unmodified_app_over_tap(kind, tmp_path):
    with app_in_ns(kind) as (ns, proc):
        url = f"http://{STACK_IP}:{PORT}"
        assert curl(ns, f"{url}/") == HELLO
        # the wildcard server also listens on the kernel (inside the namespace: its own lo)
        assert curl(ns, f"http://127.0.0.1:{PORT}/") == HELLO
        assert hashlib.sha256(curl(ns, f"{url}/big")).hexdigest() == BIG_SHA256
        up = tmp_path / "up.bin"
        data = os.urandom(5 * 2**20)
        up.write_bytes(data)
        got = curl(ns, "--data-binary", f"@{up}", "-H", "Content-Type: application/octet-stream",
                   "-H", "Expect:", f"{url}/upload")
        assert got.strip().decode() == hashlib.sha256(data).hexdigest()
        # Python's http.client as another real client
        r = sh(sys.executable, "-c", HTTP_CLIENT, STACK_IP, PORT, ns=ns, timeout=60)
        assert r.stdout.splitlines() == [HELLO.decode().strip(), BIG_SHA256], r.stdout + r.stderr
        # pipelining-free keep-alive: 200 concurrent connections, 3 requests each
        r = sh(sys.executable, os.path.join(APPS, "client.py"), STACK_IP, PORT, 200, 3, ns=ns, timeout=90)
        assert r.stdout.split() == ["ok", "600"], r.stdout + r.stderr
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{kind} app ignored SIGTERM")
        out, err = proc.communicate()
        # uvicorn (>= 0.29) finishes its graceful shutdown, then re-raises the signal it caught.
        expected = (0, -signal.SIGTERM) if kind == "uvicorn" else (0,)
        assert proc.returncode in expected, (proc.returncode, out.decode()[-2000:], err.decode()[-2000:])
        if kind == "uvicorn":
            assert b"Application shutdown complete" in err
        assert b"Segmentation fault" not in err


def test_streams_app_pipelining_and_clients_leaving():
    with app_in_ns("streams") as (ns, proc):
        r = sh(sys.executable, os.path.join(APPS, "client.py"), STACK_IP, PORT, 20, 5, "pipeline", ns=ns, timeout=60)
        assert r.stdout.split() == ["ok", "100"], r.stdout + r.stderr
        # clients that give up mid-download (curl exits 28 on --max-time) must not hurt the server
        for _ in range(3):
            r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "--limit-rate", "300k",
                                "--max-time", "1", f"http://{STACK_IP}:{PORT}/big"], capture_output=True, timeout=30)
            assert r.returncode == 28, r
        assert curl(ns, f"http://{STACK_IP}:{PORT}/") == HELLO
        assert hashlib.sha256(curl(ns, f"http://{STACK_IP}:{PORT}/big")).hexdigest() == BIG_SHA256
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        assert proc.returncode == 0, proc.communicate()


def test_slow_reader_backpressure_reaches_app():
    # The app writes 25 MiB chunk by chunk with drain(); a client reading at 1 MB/s for 2 s
    # must hold it back: the server's memory stays flat instead of buffering the rest.
    with app_in_ns("streams") as (ns, proc):
        before = rss_kib(proc.pid)
        slow = subprocess.Popen(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "--limit-rate", "1M",
                                 "--max-time", "2", f"http://{STACK_IP}:{PORT}/stream"])
        peak = before
        while slow.poll() is None:
            peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.05)
        assert slow.returncode == 28                     # gave up mid-body, as asked
        print(f"server RSS {before} KiB -> peak {peak} KiB while a slow client read /stream")
        assert peak - before < 12 * 1024, (before, peak)
        assert curl(ns, f"http://{STACK_IP}:{PORT}/") == HELLO


def test_streams_app_https(tmp_path):
    need_tool("openssl")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=aiorusty.test",
       "-keyout", key, "-out", crt)
    with app_in_ns("streams", "https", {"APP_TLS_CERT": str(crt), "APP_TLS_KEY": str(key)}) as (ns, proc):
        assert curl(ns, "-k", f"https://{STACK_IP}:{PORT}/") == HELLO
        assert hashlib.sha256(curl(ns, "-k", f"https://{STACK_IP}:{PORT}/big")).hexdigest() == BIG_SHA256
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert proc.returncode == 0, proc.communicate()


HOLD_OPEN = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
s.recv(4096)
print("connected", flush=True)
time.sleep(30)
"""


@pytest.mark.parametrize("kind", ["uvicorn", "aiohttp"])
def test_graceful_shutdown_with_idle_connection_open(kind):
    with app_in_ns(kind) as (ns, proc):
        holder = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HOLD_OPEN, STACK_IP, str(PORT)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert holder.stdout.readline().strip() == b"connected"
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{kind} did not shut down with a keep-alive connection open")
            out, err = proc.communicate()
            assert proc.returncode in (0, -signal.SIGTERM), (proc.returncode, err.decode()[-2000:])
            print(f"{kind}: SIGTERM to exit with an idle connection open: {time.monotonic() - t0:.2f}s")
        finally:
            holder.kill()
            holder.wait()
            holder.stdout.close()
            holder.stderr.close()

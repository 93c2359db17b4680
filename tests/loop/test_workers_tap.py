"""Several worker processes on one tap, started by a process manager (root only).

uvicorn --workers 2 and gunicorn -w 2 (uvicorn's worker class, put on aiorusty's
loop by -c python:aiorusty.gunicorn_conf) bind one kernel socket in the parent
and hand it to each worker; two independent processes each serve the same port
with create_server(reuse_port=True). Each aiorusty loop opens the tap from the
same AIORUSTY_IFACE with queues=2,queue=auto, so it claims its own queue, and
the kernel socket's port also listens on that worker's stack. A client in the
test's namespace opens 200 connections, one request each, to the stack's
address (reachable only through the tap: the kernel holds only the host side's
address): every request succeeds, both workers serve some, and each answer
comes from a stack on its own queue that counted the connection.
"""

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
from _netns import need_tool, needs_root, netns, sh, unique

pytestmark = [needs_root, pytest.mark.timeout(180)]

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")
ROOT = os.path.dirname(os.path.dirname(HERE))

NET = 100 + os.getpid() % 50
STACK_IP = f"10.{NET}.19.2"
HOST_IP = f"10.{NET}.19.1"
PORT = 8080
CONNECTIONS = 200

MANAGERS = {
    "uvicorn": [sys.executable, "-m", "uvicorn", "asgi_app:app", "--app-dir", APPS, "--host", "0.0.0.0",
                "--port", str(PORT), "--workers", "2", "--loop", "aiorusty:new_event_loop", "--no-access-log"],
    "gunicorn": [sys.executable, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", "2",
                 "-b", f"0.0.0.0:{PORT}", "-c", "python:aiorusty.gunicorn_conf", "--chdir", APPS,
                 "--graceful-timeout", "5", "asgi_app:app"],
    # Two independent processes, each create_server(STACK_IP, PORT, reuse_port=True).
    "reuse_port": ["sh", "-c", 'for i in 1 2; do "$0" "$1" "$2" "$3" & done; wait',
                   sys.executable, os.path.join(APPS, "reuseport_app.py"), STACK_IP, str(PORT)],
}

# One request per connection ("Connection: close"), 20 at a time; prints one /worker line per answer.
CLIENT = """
import asyncio, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gate = asyncio.Semaphore(20)
async def one():
    async with gate:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        w.write(b"GET /worker HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        data = await asyncio.wait_for(r.read(), 10)
        w.close()
        head, _, body = data.partition(b"\\r\\n\\r\\n")
        assert head.startswith(b"HTTP/1.1 200"), data
        return body.decode().strip()
async def main():
    for line in await asyncio.gather(*[one() for _ in range(n)]):
        print(line)
asyncio.run(main())
"""


@contextlib.contextmanager
def manager_in_ns(kind):
    pytest.importorskip("uvicorn")
    if kind == "gunicorn":
        pytest.importorskip("gunicorn")
    need_tool("curl")
    tap = unique("rwk")
    with netns() as ns:
        ino = os.stat(f"/run/netns/{ns}").st_ino
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1",
                   AIORUSTY_IFACE=f"tap:{tap},ip={STACK_IP}/24,host={HOST_IP}/24,queues=2,queue=auto")
        # Its own session: the manager and its workers are one process group, ended by its id.
        proc = subprocess.Popen(["ip", "netns", "exec", ns] + MANAGERS[kind], env=env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_reachable(kind, ns, proc)
            yield ns, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)     # workers a dead manager left behind
            proc.wait()
            proc.stdout.close()
            claims = f"/dev/shm/aiorusty.tap.{tap}.{ino}.claims"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(claims)


def wait_reachable(kind, ns, proc):
    """Until both workers answer on the stack's address (each claimed a queue and listens)."""
    deadline = time.monotonic() + 40
    pids = set()
    while len(pids) < 2:
        if proc.poll() is not None:
            raise AssertionError(f"{kind} exited {proc.returncode}: {proc.stdout.read().decode()[-3000:]}")
        r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "--max-time", "1",
                            f"http://{STACK_IP}:{PORT}/worker"], capture_output=True)
        if r.returncode == 0 and r.stdout.split():
            pids.add(r.stdout.split()[0])
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGTERM)
            out = proc.communicate(timeout=20)[0].decode()
            raise AssertionError(f"{kind}: workers {sorted(pids)} answered at {STACK_IP}:{PORT} within 40 s, "
                                 f"expected 2: {out[-3000:]}")
        time.sleep(0.2)


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn", "reuse_port"])
def test_each_worker_serves_on_its_own_queue_of_the_tap(kind):
    with manager_in_ns(kind) as (ns, proc):
        r = sh(sys.executable, "-c", CLIENT, STACK_IP, PORT, CONNECTIONS, ns=ns, timeout=90)
        lines = [line.split() for line in r.stdout.splitlines()]
        assert len(lines) == CONNECTIONS, r.stdout + r.stderr
        served = collections.Counter(pid for pid, _, _ in lines)
        queue_of = {pid: queue for pid, queue, _ in lines}
        opens = collections.defaultdict(int)
        for pid, _, n in lines:
            opens[pid] = max(opens[pid], int(n))
        print(f"{kind}: connections per worker {dict(served)}, queue per worker {queue_of}")
        assert len(served) == 2, served                     # both workers served some
        assert sorted(queue_of.values()) == ["0", "1"], queue_of     # each on its own queue
        for pid in served:                                  # through its own stack
            assert opens[pid] >= served[pid], (pid, opens[pid], served[pid])
        assert sh("ip", "-d", "link", "show", ns=ns).stdout.count("numqueues 2") == 1

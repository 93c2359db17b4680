"""Loop basics that must stay stock asyncio on aiorusty: callbacks, timers, executors,
subprocesses, signals, thread wake-ups, kernel sockets."""

import asyncio
import os
import random
import signal
import socket
import sys
import threading
import time

from ._base import AsyncioBase, RustyBase, RustyFakeBase, RustyNoIfaceBase


class _TestBasics:
    def test_call_soon_order(self):
        out = []
        for i in range(20):
            self.loop.call_soon(out.append, i)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(out, list(range(20)))

    def test_call_later_order_and_never_early(self):
        loop = self.loop
        rng = random.Random(4)
        fired = []
        delays = [rng.uniform(0.0, 0.05) for _ in range(30)]
        start = loop.time()
        handles = []
        for i, d in enumerate(delays):
            handles.append(loop.call_at(start + d, lambda i=i: fired.append((i, loop.time(), time.monotonic()))))
        loop.call_at(start + 0.08, loop.stop)
        loop.run_forever()
        self.assertEqual(sorted(i for i, _, _ in fired), list(range(30)))
        whens = [handles[i].when() for i, _, _ in fired]
        self.assertEqual(whens, sorted(whens))
        res = time.get_clock_info("monotonic").resolution
        for i, t_loop, t_mono in fired:
            self.assertGreaterEqual(t_loop + res, handles[i].when(), f"timer {i} fired early")
            self.assertGreaterEqual(t_mono + res, handles[i].when())

    def test_time_resolution(self):
        self.assertLess(time.get_clock_info("monotonic").resolution, 1e-3)
        a = self.loop.time()
        b = self.loop.time()
        self.assertLessEqual(a, b)

    def test_run_in_executor(self):
        async def main():
            return await self.loop.run_in_executor(None, lambda: threading.get_ident())
        self.assertNotEqual(self.run_loop(main()), threading.get_ident())

    def test_subprocess(self):
        async def main():
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import sys; print(sys.stdin.read().upper())",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate(b"rusty")
            return proc.returncode, out
        self.assertEqual(self.run_loop(main()), (0, b"RUSTY\n"))

    def test_signal_handler(self):
        got = []

        async def main():
            fut = self.loop.create_future()
            self.loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append(1), fut.set_result(None)))
            try:
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1)).start()
                await asyncio.wait_for(fut, 5)
            finally:
                self.assertTrue(self.loop.remove_signal_handler(signal.SIGUSR1))
        self.run_loop(main())
        self.assertEqual(got, [1])

    def test_call_soon_threadsafe_wakes_sleeping_loop(self):
        # The loop sleeps (no timer before the 5 s guard); only the self-pipe can wake it.
        async def main():
            fut = self.loop.create_future()
            sent = []

            def other_thread():
                time.sleep(0.05)
                sent.append(time.monotonic())
                self.loop.call_soon_threadsafe(fut.set_result, None)
            t = threading.Thread(target=other_thread)
            t.start()
            await asyncio.wait_for(fut, 5)
            t.join()
            return time.monotonic() - sent[0]
        latency = self.run_loop(main())
        print(f"\n{type(self).__name__}: call_soon_threadsafe wake-up latency {latency * 1e6:.0f} us")
        self.assertLess(latency, 2.0)

    def test_kernel_stream_sockets(self):
        # A kernel address (127.0.0.1) stays on the kernel on every loop.
        async def handle(reader, writer):
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            self.assertIsInstance(server.sockets[0].fileno(), int)
            self.assertGreaterEqual(server.sockets[0].fileno(), 0)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello kernel\n")
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return line
        self.assertEqual(self.run_loop(main()), b"HELLO KERNEL\n")

    def test_kernel_sock_calls(self):
        async def main():
            a, b = socket.socketpair()
            with a, b:
                a.setblocking(False)
                b.setblocking(False)
                await self.loop.sock_sendall(a, b"x" * 1000)
                got = b""
                while len(got) < 1000:
                    got += await self.loop.sock_recv(b, 4096)
                return got
        self.assertEqual(self.run_loop(main()), b"x" * 1000)

    def test_kernel_udp_loopback(self):
        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, tr):
                self.tr = tr

            def datagram_received(self, data, addr):
                self.tr.sendto(data[::-1], addr)

        class Client(asyncio.DatagramProtocol):
            def __init__(self, fut):
                self.fut = fut

            def datagram_received(self, data, addr):
                self.fut.set_result(data)

        async def main():
            srv, _ = await self.loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
            fut = self.loop.create_future()
            cli, _ = await self.loop.create_datagram_endpoint(
                lambda: Client(fut), remote_addr=srv.get_extra_info("sockname"))
            self.assertGreaterEqual(cli.get_extra_info("socket").fileno(), 0)   # a real kernel socket
            cli.sendto(b"abc")
            data = await asyncio.wait_for(fut, 5)
            cli.close()
            srv.close()
            await asyncio.sleep(0)
            return data
        self.assertEqual(self.run_loop(main()), b"cba")


class TestBasics_AIO(_TestBasics, AsyncioBase):
    pass


class TestBasics_RustyNoIface(_TestBasics, RustyNoIfaceBase):
    pass


class TestBasics_RustyFake(_TestBasics, RustyFakeBase):
    pass


class TestBasics_Rusty(_TestBasics, RustyBase):
    pass

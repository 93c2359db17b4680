"""Helpers of the test-bed tests: loops for both bodies, CLI runs, date masking."""

import asyncio
import os
import re
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATE = re.compile(rb"Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n")


def mask_date(data):
    """The response bytes with each Date header replaced by 'Date: X' (after checking its form)."""
    return DATE.sub(b"Date: X\r\n", data)


def cli(*args, timeout=60, **kw):
    """Run `python -m aiorusty ARGS` from the checkout; CompletedProcess with text output."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "aiorusty", *args], cwd=ROOT, env=env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def popen(*args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "aiorusty", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


class LoopCase(unittest.TestCase):
    """One test body on two loops: stock asyncio over the kernel loopback, and aiorusty
    with two stacks joined by an in-process cable (server 10.79.0.1, client 10.79.0.2)."""

    KIND = None
    HOST = None

    def setUp(self):
        self.handler_calls = []
        if self.KIND == "asyncio":
            self.loop = asyncio.SelectorEventLoop()
            self.HOST = "127.0.0.1"
            self.stacks = []
        else:
            from aiorusty.loop import RustyEventLoop
            from aiorusty.nic import open_pair
            from aiorusty.tcp import Stack
            self.devices = open_pair()
            self.stacks = [Stack(seed=1, tcp_msl_us=2000), Stack(seed=2, tcp_msl_us=2000)]
            self.stacks[0].add_interface(self.devices[0], ip="10.79.0.1/24")
            self.stacks[1].add_interface(self.devices[1], ip="10.79.0.2/24")
            self.loop = RustyEventLoop(interfaces=(), stack=self.stacks)
            self.HOST = "10.79.0.1"
        self.loop.set_exception_handler(lambda loop, ctx: self.handler_calls.append(ctx))

    def run_loop(self, coro, timeout=10):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def tearDown(self):
        try:
            self.loop.run_until_complete(asyncio.sleep(0.01))
            self.loop.close()
        finally:
            for st in self.stacks:
                st.close()
            for d in getattr(self, "devices", ()):
                d.close()
        self.assertEqual(self.handler_calls, [])

"""Run a pytest-asyncio suite on aiorusty: copy this conftest.py next to your tests.

Shows: the one hook (pytest-asyncio >= 1.3) or fixture (older versions) that
makes every async test's loop aiorusty's; the loop reads its interfaces from
AIORUSTY_IFACE, so the same suite runs on the stack or, unset, on the kernel.

    AIORUSTY_IFACE="loopback,ip=10.79.1.1/24" python -m pytest examples/pytest_asyncio -q
    python -m pytest examples/pytest_asyncio -q      # this example falls back to that interface

(a loopback interface needs no root: frames come straight back, so servers and
clients on its address meet inside the process.)
"""

import os
import re
from importlib.metadata import version

import pytest

import aiorusty

# Only for this example: a suite of your own takes AIORUSTY_IFACE as it is.
os.environ.setdefault("AIORUSTY_IFACE", "loopback,ip=10.79.1.1/24")

PYTEST_ASYNCIO = tuple(int(n) for n in re.findall(r"\d+", version("pytest-asyncio"))[:2])


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(config, item):      # pytest-asyncio >= 1.3 calls this
    return {"aiorusty": aiorusty.new_event_loop}


if PYTEST_ASYNCIO < (1, 3):
    @pytest.fixture(scope="session")
    def event_loop_policy():                           # older pytest-asyncio (deprecated from 1.3)
        return aiorusty.EventLoopPolicy()

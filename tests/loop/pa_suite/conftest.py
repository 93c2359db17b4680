"""How a user runs an existing pytest-asyncio suite on aiorusty (this directory is such a suite).

pytest-asyncio >= 1.3 (hook):

    @pytest.hookimpl(optionalhook=True)
    def pytest_asyncio_loop_factories(config, item):
        return {"aiorusty": aiorusty.new_event_loop}

older pytest-asyncio (policy fixture):

    @pytest.fixture(scope="session")
    def event_loop_policy():
        return aiorusty.EventLoopPolicy()

Both read AIORUSTY_IFACE unless given interfaces; here the loop gets a
loopback interface so stack endpoints exist.
"""

import pytest
import pytest_asyncio.plugin

from aiorusty.policy import EventLoopPolicy
from aiorusty.runner import new_event_loop

IFACE = "loopback,ip=10.79.0.1/24"
HAS_HOOK = hasattr(getattr(pytest_asyncio.plugin, "PytestAsyncioSpecs", None), "pytest_asyncio_loop_factories")


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(config, item):
    return {"aiorusty": lambda: new_event_loop(interfaces=[IFACE])}


if not HAS_HOOK:
    @pytest.fixture(scope="session")
    def event_loop_policy():
        return EventLoopPolicy(interfaces=[IFACE])

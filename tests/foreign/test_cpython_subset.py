"""CPython's own asyncio tests on aiorusty: a fast subset, compared with stock asyncio.

Runs test_streams, test_events, test_base_events, test_buffered_proto and
test_protocols from the interpreter's test.test_asyncio on stock asyncio and on
an aiorusty loop that owns 127.0.0.0/8 (run_cpython.py), and fails on any test
that passes on stock and fails on aiorusty without a reason in
known_differences.py. The modules whose kernel-peer tests hang until killed
(test_server, test_ssl, test_sslproto) and those that stay on kernel sockets
(test_sock_lowlevel, test_sendfile) are left to the command:
`python tests/foreign/run_cpython.py`.
"""

import importlib.util

import pytest

from . import run_cpython

SUBSET = ["test_streams", "test_events", "test_base_events", "test_buffered_proto", "test_protocols"]


@pytest.mark.skipif(importlib.util.find_spec("test.test_asyncio") is None,
                    reason="this Python has no test.test_asyncio (the stdlib test package is not installed)")
def test_cpython_asyncio_subset_matches_stock():
    record = run_cpython.compare(SUBSET, stall=30.0)
    for module, entry in record["modules"].items():
        assert entry["stock"]["run"] > 0, f"{module}: no test ran on stock asyncio"
        assert not entry.get("aiorusty_crashes"), f"{module}: the aiorusty child crashed: {entry['aiorusty_crashes']}"
    details = {w["id"]: w["detail"][-800:] for e in record["modules"].values()
               for w in e["aiorusty_fails_where_stock_passes"] if w["class"] == "unexplained"}
    assert not details, "pass on stock asyncio, fail on aiorusty, no reason in known_differences.py:\n" + \
        "\n".join(f"{tid}\n{detail}" for tid, detail in details.items())

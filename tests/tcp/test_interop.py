"""aiorusty TCP against the Linux TCP stack over a tap in a namespace the test
creates: sha256-verified transfers in both directions, clean and impaired."""

import pytest

from _interop import linux_to_rusty, rusty_to_linux, tap_stack
from _netns import need_tool, needs_root

pytestmark = [needs_root, pytest.mark.timeout(120)]

MB = 1 << 20


def test_linux_client_to_rusty_server():
    with tap_stack() as (stack, ns):
        info = linux_to_rusty(stack, ns, 4 * MB, 4 * MB)
        assert info["timestamps"] == 1 and info["snd_wscale"] > 0 and info["mss"] == 1448
        st = stack.stats()
        assert st["tcp_bad_checksum"] == 0 and st["tcp_malformed"] == 0


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
        assert stack.stats()["tcp_retransmits"] > 0


@pytest.mark.parametrize("faults", [
    "delay=25ms,drop=1%,seed=1",
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

"""The cores' copy probe that the bench records beside each run (nic/_core/probe.c)."""

import os

import pytest

from aiorusty._rusty import lib
from aiorusty.testbed.bench import xcore_gbps

CORES = sorted(os.sched_getaffinity(0))
EINVAL = 22


@pytest.mark.skipif(len(CORES) < 2, reason="the probe needs two cores this process may use")
def test_the_probe_moves_frames_between_two_cores():
    gbps = xcore_gbps(CORES[0], CORES[1], seconds=0.05)
    assert gbps is not None and gbps > 0.1


def test_the_probe_refuses_what_it_cannot_measure():
    assert xcore_gbps(CORES[0], CORES[0]) is None      # one core: nothing crosses
    assert lib.rusty_probe_xcore_gbps(CORES[0], os.cpu_count() + 64, 1500, 1000) == -EINVAL
    assert lib.rusty_probe_xcore_gbps(-1, CORES[0], 1500, 1000) == -EINVAL
    assert lib.rusty_probe_xcore_gbps(CORES[0], CORES[-1], 4096, 1000) == -EINVAL   # larger than a slot
    assert lib.rusty_probe_xcore_gbps(CORES[0], CORES[-1], 0, 1000) == -EINVAL

"""The bench's summary marks a ratio whose two sides ran at copy ceilings far apart (xcore Gbps)."""

from aiorusty.testbed import bench


def _run(loop, rps, xcore, rnd=0):
    return {"loop": loop, "scenario": "small", "workers": 1, "client": "aiorusty-load", "rps": rps,
            "server_cpu_us_per_req": 1e6 / rps, "client_core_us_per_req": None, "goodput_gbps": 0.1,
            "wire_gbps": 0.1, "p50_us": 50, "p99_us": 90, "errors": {}, "round": rnd, "xcore_gbps": xcore}


def _ratio_cells(runs):
    lines = bench.table(bench.summarize(runs))
    head = lines[0]
    row = next(r for r in lines[1:] if r[1] == "aiorusty")
    return row[head.index("vs uvloop")], row[head.index("cpu vs uvloop")]


def test_ratios_at_one_ceiling_are_plain():
    assert _ratio_cells([_run("uvloop", 100_000, 250), _run("aiorusty", 250_000, 260)]) == ("2.50", "0.40")


def test_ratios_across_ceilings_are_marked():
    runs = [_run("uvloop", 100_000, 250), _run("aiorusty", 200_000, 31)]
    assert _ratio_cells(runs) == ("2.00*", "0.50*")
    assert "copy ceilings" in bench.MIXED_NOTE

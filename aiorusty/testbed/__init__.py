"""aiorusty.testbed: the test-bed - HTTP server, load generator, benchmark, workers, topology.

Owns: `aiorusty serve` (http.py), `aiorusty load` (load.py, hist.py),
`aiorusty bench` (bench.py, report.py), one process per pinned core
(workers.py, steer.py) and the namespace topology (topology.py). Not: the loop
(aiorusty.loop), the stack (aiorusty.tcp), the CLI parser (aiorusty.cli).
"""

"""The side-by-side benchmark (asyncio, uvloop, aiorusty): `aiorusty bench` as a script.

    python bench/testbed_bench.py --quick
    python bench/testbed_bench.py --rounds 3 --duration 3 --scenarios small,pipeline,newconn,bulk --workers 1,2
    sudo python bench/testbed_bench.py --quick --nic afpacket      # + wrk in a namespace

Prints the table and writes bench.json, REPORT.md and PNG charts under --out
(default ./results/bench-DATE/). Figures are reports, never test assertions.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiorusty.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

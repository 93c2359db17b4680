"""Run a Python module or script on aiorusty's loop without editing it.

Shows: aiorusty.install() (asyncio's event-loop policy API) for programs that
make their loop with asyncio.new_event_loop() or asyncio.get_event_loop(), as
aiohttp's web.run_app() does; AIORUSTY_IFACE gives the loop its interface.
Programs that take a loop factory (asyncio.run(main(), loop_factory=...),
uvicorn --loop) need no launcher: see asgi_app.py.

    AIORUSTY_IFACE="shm:web,ip=10.78.2.1/24" python examples/launch.py -m aiohttp.web \\
        -H 10.78.2.1 -P 8080 aiohttp_app:init
    AIORUSTY_IFACE="..." python examples/launch.py your_script.py ARGS...

The first is `python -m aiohttp.web ...` with the loop switched (examples/
aiohttp_app.py has the app and the commands to reach it).
"""

import os
import runpy
import sys

import aiorusty

if __name__ == "__main__":
    if len(sys.argv) < 2 or (sys.argv[1] == "-m" and len(sys.argv) < 3):
        sys.exit("usage: launch.py -m MODULE [ARGS...] | launch.py SCRIPT [ARGS...]")
    aiorusty.install()
    if sys.argv[1] == "-m":
        sys.argv = [sys.argv[2]] + sys.argv[3:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))   # as `python SCRIPT` would have it
        runpy.run_path(sys.argv[0], run_name="__main__")

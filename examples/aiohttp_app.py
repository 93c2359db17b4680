"""An aiohttp.web app, put on aiorusty by the command line alone.

Shows: `python -m aiohttp.web` (which makes its loop with
asyncio.new_event_loop()) started through examples/launch.py, which calls
aiorusty.install() first; AIORUSTY_IFACE gives the loop its interface. The app
knows nothing of aiorusty. GET / answers which loop served it.

No root (a shared-memory link; examples/http_client.py is the other end):

    AIORUSTY_IFACE="shm:web,ip=10.78.2.1/24" python examples/launch.py -m aiohttp.web \\
        -H 10.78.2.1 -P 8080 aiohttp_app:init
    python examples/http_client.py --iface "shm:web,ip=10.78.2.2/24" http://10.78.2.1:8080/

Over a tap (root), reached by curl from the host (10.0.0.1):

    sudo AIORUSTY_IFACE="tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24" python examples/launch.py -m aiohttp.web \\
        -H 0.0.0.0 -P 8080 aiohttp_app:init
    curl http://10.0.0.2:8080/

The same command without `examples/launch.py` (python -m aiohttp.web ...)
runs the app on stock asyncio. A program that calls web.run_app() itself
can instead pass it the loop: web.run_app(app, loop=aiorusty.new_event_loop()).
"""

import asyncio

from aiohttp import web


async def hello(request):
    return web.Response(text=f"hello from {type(asyncio.get_running_loop()).__name__}\n")


def init(argv):
    """The entry function `python -m aiohttp.web module:function` calls with its extra arguments."""
    app = web.Application()
    app.add_routes([web.get("/", hello)])
    return app

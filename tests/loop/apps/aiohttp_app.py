"""An unmodified aiohttp.web app started with web.run_app on an aiorusty loop.

    AIORUSTY_IFACE=... python aiohttp_app.py PORT
"""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIG, HELLO  # noqa: E402

from aiohttp import web  # noqa: E402

from aiorusty.runner import new_event_loop  # noqa: E402


async def hello(request):
    return web.Response(body=HELLO)


async def big(request):
    return web.Response(body=BIG, content_type="application/octet-stream")


async def upload(request):
    digest = hashlib.sha256()
    async for chunk in request.content.iter_chunked(65536):
        digest.update(chunk)
    return web.Response(body=digest.hexdigest().encode() + b"\n")


app = web.Application(client_max_size=64 * 2**20)
app.add_routes([web.get("/", hello), web.get("/big", big), web.post("/upload", upload)])

if __name__ == "__main__":
    web.run_app(app, host="0.0.0.0", port=int(sys.argv[1]), loop=new_event_loop(), print=lambda *a: print(*a, flush=True))

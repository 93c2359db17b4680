"""An aiohttp.web app (one route, no access log) served by AppRunner + TCPSite.

    python aiohttp_app.py LOOP HOST PORT
"""

from aiohttp import web

from _serve import BODY, serve


async def hello(request):
    return web.Response(body=BODY, content_type="text/plain")


async def start(loop, host, port):
    app = web.Application()
    app.add_routes([web.get("/", hello)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    return runner.cleanup


if __name__ == "__main__":
    serve(start)

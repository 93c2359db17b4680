"""A plain ASGI app for uvicorn, put on aiorusty by the command line alone.

Shows: an application that knows nothing of aiorusty; uvicorn's --loop picks
aiorusty's loop, and AIORUSTY_IFACE gives that loop its interface, so the
server listens on the user-space stack. GET / answers which loop served it.

No root (a shared-memory link; examples/http_client.py is the other end):

    AIORUSTY_IFACE="shm:web,ip=10.78.2.1/24" uvicorn asgi_app:app --app-dir examples \\
        --host 10.78.2.1 --port 8000 --loop aiorusty:new_event_loop
    python examples/http_client.py --iface "shm:web,ip=10.78.2.2/24" http://10.78.2.1:8000/

Over a tap (root), reached by curl from the host (10.0.0.1):

    sudo AIORUSTY_IFACE="tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24" uvicorn asgi_app:app --app-dir examples \\
        --host 0.0.0.0 --port 8000 --loop aiorusty:new_event_loop
    curl http://10.0.0.2:8000/

(--host 0.0.0.0 listens on the stack and on the kernel, so 127.0.0.1 works
too.) A FastAPI or Starlette app runs the same way: only the command changes.
"""

import asyncio


async def app(scope, receive, send):
    if scope["type"] != "http":           # lifespan: nothing to set up
        return
    body = f"hello from {type(asyncio.get_running_loop()).__name__}\n".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

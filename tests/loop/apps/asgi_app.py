"""A plain ASGI app for uvicorn:  uvicorn asgi_app:app --loop aiorusty:new_event_loop

GET /worker answers which process served it and what its loop's stack has seen:
"PID QUEUE PASSIVE_OPENS" (QUEUE and PASSIVE_OPENS are - on a loop without a stack).
"""

import asyncio
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIG, HELLO  # noqa: E402


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if scope["method"] == "POST":
        digest = hashlib.sha256()
        more = True
        while more:
            msg = await receive()
            digest.update(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = digest.hexdigest().encode() + b"\n"
    elif path == "/worker":
        body = worker_line().encode() + b"\n"
    else:
        body = BIG if path == "/big" else HELLO
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def worker_line():
    stack = getattr(asyncio.get_running_loop(), "stack", None)
    if stack is None:
        return f"{os.getpid()} - -"
    return f"{os.getpid()} {stack.interfaces[0].queue} {stack.stats()['tcp_passive_opens']}"

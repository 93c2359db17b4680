"""HTTP client on the user-space stack: aiohttp's ClientSession with the socket switch on.

Shows: a library that makes its own sockets (aiohttp opens each connection's
socket itself and hands it to the loop) brought onto the stack by
aiorusty.use_stack_sockets(), and the stack's counters before and after, which
prove the requests crossed it. Without the switch the same code would connect
through the kernel.

No root (a shared-memory link; serve the other end with examples/asgi_app.py,
examples/aiohttp_app.py or `aiorusty serve --iface shm:web,ip=10.78.2.1/24 -w 1`):

    python examples/http_client.py --iface "shm:web,ip=10.78.2.2/24" http://10.78.2.1:8000/

Over a tap (root), to a server on the host side (10.0.0.1):

    sudo python examples/http_client.py --iface "tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24" http://10.0.0.1:8000/

Without --iface the interface comes from AIORUSTY_IFACE; AIORUSTY_SOCKETS=1 in
the environment turns the switch on as use_stack_sockets() does, for programs
you do not edit.
"""

import argparse
import asyncio
import sys

import aiohttp

import aiorusty

COUNTERS = ("tcp_active_opens", "eth_tx_frames", "eth_rx_frames", "eth_rx_bytes")


async def main(urls):
    stack = asyncio.get_running_loop().stack
    if stack is None:
        raise SystemExit("http_client: no interface; give --iface SPEC or set AIORUSTY_IFACE")
    before = stack.stats()
    ok = True
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for url in urls:
            async with session.get(url) as response:
                body = await response.read()
            ok = ok and response.status == 200
            shown = body.decode(errors="replace").strip() if len(body) <= 200 else f"{len(body)} bytes"
            print(f"GET {url} -> {response.status}: {shown}")
    after = stack.stats()
    print("stack counters, before -> after: "
          + ", ".join(f"{name} {before[name]} -> {after[name]}" for name in COUNTERS))
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urls", nargs="+", help="URLs to GET, one after another on one session")
    parser.add_argument("--iface", help="interface spec (default: AIORUSTY_IFACE)")
    args = parser.parse_args()
    aiorusty.use_stack_sockets()        # sockets aiohttp makes now bind/connect on the stack when routed there
    ok = aiorusty.run(main(args.urls), interfaces=[args.iface] if args.iface else None)
    sys.exit(0 if ok else 1)

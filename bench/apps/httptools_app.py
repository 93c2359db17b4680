"""A raw asyncio.Protocol HTTP/1.1 server parsing with httptools (keep-alive, pipelining).

    python httptools_app.py LOOP HOST PORT
"""

import asyncio

import httptools

from _serve import RESPONSE, serve


class HttpProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self):
        self.transport.write(RESPONSE)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def start(loop, host, port):
    server = await loop.create_server(HttpProtocol, host, port, backlog=1024)

    async def stop():
        server.close()
        await server.wait_closed()
    return stop


if __name__ == "__main__":
    serve(start)

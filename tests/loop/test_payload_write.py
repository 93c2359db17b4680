"""transport.write(StaticPayload) on the stack: same ordered queue as bytes (lead's change, proven by tcp2)."""
import hashlib
import os

from aiorusty._payload import StaticPayload

from ._base import RustyBase
from .test_tcp import Views, _TCPHelpers


class TestPayloadWrite_Rusty(_TCPHelpers, RustyBase):
    def test_static_payload_interleaved_with_bytes(self):
        async def main():
            server, sp, ct, cp = await self._pair(server_proto=lambda: Views(self.loop))
            body = os.urandom(5 * 2**20 + 3)
            page = StaticPayload(body)
            expect = b""
            for i in range(3):
                hdr = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nX: {i}\r\n\r\n".encode()
                ct.write(hdr)
                ct.write(page)
                expect += hdr + body
            ct.writelines([b"tail", page, b"!"])
            expect += b"tail" + body + b"!"
            ct.write_eof()
            await sp.lost
            self.assertEqual(hashlib.sha256(bytes(sp.data)).hexdigest(), hashlib.sha256(expect).hexdigest())
            await self._finish(server, cp)
        self.run_loop(main(), timeout=60)

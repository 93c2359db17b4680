"""StaticPayload: bytes sent many times, with precomputed checksums (DESIGN 2 and 4).

Owns: the Python face of a C static payload (aiorusty/tcp/_core/payload.c):
one copy of the bytes in C memory plus a prefix table of ones'-complement
partial sums, so the stack checksums a segment of it without reading its
bytes, and sends it without copying it into a socket's send buffer.
Not: sending (Stack.tcp_send_payload, transports' write()).

Lifetime: the object owns one reference to the C payload (released by
ffi.gc); every send queue holding a range of it owns another, so dropping
the object while its bytes are still queued or unacknowledged is safe.

    page = aiorusty.StaticPayload(open("index.html", "rb").read())
    transport.write(page)           # any number of times, on any connection
"""

import os

from ._errors import check
from ._rusty import ffi, lib


class StaticPayload:
    """Immutable bytes with precomputed checksums: bytes(), len(), memoryview() work."""

    __slots__ = ("_ptr", "_len", "__weakref__")

    def __init__(self, data):
        """data: bytes, bytearray, memoryview (any C-contiguous buffer) or a binary file
        object (read to its end)."""
        if hasattr(data, "read"):
            data = data.read()
        if isinstance(data, str):
            raise TypeError("StaticPayload needs bytes, not str (encode it, or use StaticPayload.from_file)")
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        n = view.nbytes
        out = ffi.new("struct rusty_payload **")
        check(lib.rusty_payload_new(ffi.from_buffer(view), n, out), "static payload")
        self._ptr = ffi.gc(out[0], lib.rusty_payload_free, size=n)
        self._len = n

    @classmethod
    def from_file(cls, path):
        """The contents of a file."""
        with open(os.fspath(path), "rb") as f:
            return cls(f.read())

    def __len__(self):
        return self._len

    def __bytes__(self):
        return bytes(self._buffer())

    def __buffer__(self, flags):        # Python 3.12+: memoryview(payload), bytes(payload)
        return memoryview(self._buffer()).toreadonly()

    def _buffer(self):
        return ffi.buffer(lib.rusty_payload_data(self._ptr), self._len)

    def memoryview(self):
        """A read-only view of the payload's bytes (no copy); valid while self lives."""
        return memoryview(self._buffer()).toreadonly()

    def __eq__(self, other):
        if isinstance(other, StaticPayload):
            return other is self or bytes(self) == bytes(other)
        if isinstance(other, (bytes, bytearray, memoryview)):
            return bytes(self) == bytes(other)
        return NotImplemented

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<StaticPayload {self._len} bytes>"

"""Precomputed payload checksums: any range's sum read from the prefix table
equals the RFC 1071 sum computed over the bytes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from aiorusty._rusty import ffi, lib


def rfc1071_sum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def payload(data):
    out = ffi.new("struct rusty_payload **")
    assert lib.rusty_payload_new(data, len(data), out) == 0
    return ffi.gc(out[0], lib.rusty_payload_free)


def same_sum(a, b):
    # 0x0000 and 0xffff are both zero in ones' complement
    return a == b or {a, b} == {0, 0xFFFF}


def test_known_vector():
    # RFC 1071 section 3's example bytes: 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2
    p = payload(bytes.fromhex("0001f203f4f5f6f7"))
    assert lib.rusty_payload_sum(p, 0, 8) == 0xDDF2


def test_out_of_range_is_zero_not_a_crash():
    p = payload(b"abc")
    assert lib.rusty_payload_sum(p, 2, 5) == 0
    assert lib.rusty_payload_sum(p, 4, 0) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.data())
def test_any_range_matches_direct_sum(data, draw):
    p = payload(data)
    off = draw.draw(st.integers(0, len(data)))
    length = draw.draw(st.integers(0, len(data) - off))
    assert same_sum(lib.rusty_payload_sum(p, off, length), rfc1071_sum(data[off:off + length]))
    assert bytes(ffi.buffer(lib.rusty_payload_data(p), len(data))) == data

"""Property tests of the interface spec parser (aiorusty/nic/_spec.py): any string either
parses or raises InterfaceSpecError - never another exception - and what parses fits the C
config it becomes (struct rusty_dev_config, struct rusty_faults_config), so opening the
device cannot fail on a value the parser let through."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiorusty.nic import Interface, InterfaceSpecError
from aiorusty.nic._spec import DRIVERS, FAULT_KEYS

U16, U32, U64 = 2**16 - 1, 2**32 - 1, 2**64 - 1
KEYS = ("ip", "gw", "gateway", "host", "mtu", "mac", "queues", "queue", "pool", "ring", "offload", "pcap",
        "trace") + FAULT_KEYS

numbers = st.one_of(
    st.integers(-5, 70000).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["9" * 400, "1e999", "nan", "inf", "-0", "0.5", "1_0", "0x10", "", " "]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
units = st.sampled_from(["", "%", "us", "ms", "s", "bit", "kbit", "mbit", "gbit", "bps", "gbps", "x"])
addresses = st.one_of(
    st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: ".".join(map(str, t))),
    st.sampled_from(["10.0.0.2", "10.0.0.255", "10.0.0.0", "::1", "1.2.3", "10.0.0.2%x"]),
)
ip_values = st.builds(
    lambda parts, seps, prefix: "".join(a + s for a, s in zip(parts, seps)).rstrip("+-") + prefix,
    st.lists(addresses, min_size=1, max_size=4),
    st.lists(st.sampled_from(["+", "-", ""]), min_size=4, max_size=4),
    st.sampled_from(["", "/24", "/32", "/31", "/0", "/33", "/x", "/255.255.255.0", "/"]),
)
values = st.one_of(st.builds(lambda n, u: n + u, numbers, units), ip_values,
                   st.sampled_from(["02:52:00:00:00:01", "02:52:00:00:00", "rx", "tx", "both", "yes", "off"]),
                   st.text(max_size=12))
pairs = st.builds(lambda k, eq, v: k + eq + v, st.one_of(st.sampled_from(KEYS), st.text(max_size=6)),
                  st.sampled_from(["=", "", "=="]), values)
specs = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=":,=+-/.%0123456789abcdefghijklmnopqrstuvwxyz ", max_size=60),
    st.builds(lambda d, t, ps: d + t + "".join("," + p for p in ps),
              st.sampled_from(DRIVERS + ("TAP", "", "x")),
              st.one_of(st.just(""), st.builds(lambda n: ":" + n, st.text(max_size=17))),
              st.lists(pairs, max_size=5)),
)


def fits_the_c_config(iface):
    assert 0 <= iface.pool <= U32 and 0 <= iface.ring <= U32
    assert 0 <= iface.mtu <= U16 and 1 <= iface.queues <= U16
    assert iface.queue is None or 0 <= iface.queue <= U16
    f = iface.faults
    if f is not None:
        assert 0 <= f.seed <= U64 and 0 <= f.rate_bps <= U64
        assert 0 <= f.delay_us <= U32 and 0 <= f.jitter_us <= U32
        for p in (f.drop, f.duplicate, f.reorder, f.corrupt):
            assert 0 <= p <= 1


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_any_string_parses_or_raises_interface_spec_error(spec):
    try:
        iface = Interface.parse(spec)
    except InterfaceSpecError as e:
        assert str(e)
        return
    fits_the_c_config(iface)
    assert Interface.parse(str(iface)) == iface     # what parses prints back as a spec that means the same


@pytest.mark.parametrize("spec, words", [
    ("loopback,delay=" + "9" * 400, "delay="),
    ("loopback,rate=" + "9" * 400, "rate="),
    ("loopback,seed=-1", "seed="),
    ("loopback,seed=18446744073709551616", "seed="),
    ("loopback,pool=4294967296", "pool="),
    ("loopback,ring=4294967296", "ring="),
    ("loopback,delay=5000000s", "delay="),
])
def test_values_past_what_the_device_takes_are_refused_when_parsed(spec, words):
    with pytest.raises(InterfaceSpecError, match=words):
        Interface.parse(spec)

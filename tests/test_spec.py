"""Interface spec parsing: good specs round-trip, bad ones name the problem."""

import dataclasses
import ipaddress
import re

import pytest

from aiorusty import Interface, InterfaceSpecError
from aiorusty.nic import Faults


def test_full_tap_spec():
    iface = Interface.parse("tap:rusty0,ip=10.0.0.2/24,gw=10.0.0.1,host=10.0.0.1/24,mtu=1400,queues=2")
    assert iface.driver == "tap" and iface.target == "rusty0"
    assert iface.ip == ipaddress.IPv4Interface("10.0.0.2/24")
    assert iface.gateway == ipaddress.IPv4Address("10.0.0.1")
    assert iface.host == ipaddress.IPv4Interface("10.0.0.1/24")
    assert (iface.mtu, iface.queues) == (1400, 2)


def test_round_trip():
    spec = "shm:demo,ip=10.9.0.2/24,mac=02:52:00:00:00:01,pcap=/tmp/x.pcap,trace=1,drop=0.01,delay=25000us,seed=7"
    assert str(Interface.parse(spec)) == spec
    assert Interface.parse(str(Interface.parse(spec))) == Interface.parse(spec)


def test_faults_units():
    f = Interface.parse("loopback,drop=5%,delay=25ms,jitter=500us,rate=100mbit,seed=3").faults
    assert f.drop == pytest.approx(0.05)
    assert (f.delay_us, f.jitter_us, f.rate_bps, f.seed) == (25000, 500, 100_000_000, 3)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("", "empty"),
        ("eth0", "unknown driver 'eth0'"),
        ("tap", "needs a target"),
        ("tap:rusty0,ip=10.0.0.2", "needs a prefix length"),
        ("tap:rusty0,ip=300.0.0.1/24", "'300.0.0.1' is not an IPv4 address"),
        ("tap:rusty0,colour=blue", "unknown key 'colour'"),
        ("tap:rusty0,mtu=9000", "mtu=9000 out of range"),
        ("tap:rusty0,mac=zz", "not a MAC"),
        ("tap:rusty0,ip", "should be key=value"),
        ("shm:x,host=10.0.0.1/24", "host= only applies to tap"),
        ("loopback:x", "loopback takes no target"),
        ("tap:this-name-is-far-too-long", "bad tap name"),
        ("tap:t,drop=2", "probability"),
        ("tap:t,delay=soon", "duration"),
        ("tap:t,rate=fast", "rate like"),
        ("tap:t,ip=10.0.0.1/24,host=10.0.0.1/24", "must differ"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, words):
    with pytest.raises(InterfaceSpecError) as e:
        Interface.parse(spec)
    assert words in str(e.value)
    assert isinstance(e.value, ValueError)


def test_address_range_and_list():
    r = Interface.parse("shm:a,ip=10.77.0.2-10.77.0.9/24")
    assert r.ip == ipaddress.IPv4Interface("10.77.0.2/24")
    assert r.addresses == tuple(ipaddress.IPv4Address(f"10.77.0.{i}") for i in range(3, 10))
    assert len(r.ips()) == 8 and r.ips()[0] == r.ip.ip
    lst = Interface.parse("shm:a,ip=10.77.0.2+10.77.0.7+10.77.0.5/24")
    assert [str(a) for a in lst.ips()] == ["10.77.0.2", "10.77.0.7", "10.77.0.5"]
    mixed = Interface.parse("loopback,ip=10.0.0.5-10.0.0.6+10.0.0.1/24,mtu=1400")
    assert [str(a) for a in mixed.ips()] == ["10.0.0.5", "10.0.0.6", "10.0.0.1"]
    assert Interface.parse("shm:a,ip=10.77.0.2-10.77.0.2/24").addresses == ()
    assert Interface.parse("shm:a,ip=10.77.0.1-10.77.1.0/23").ips()[-1] == ipaddress.IPv4Address("10.77.1.0")
    # /31 has no network or broadcast address (RFC 3021)
    assert len(Interface.parse("shm:a,ip=10.0.0.0-10.0.0.1/31").ips()) == 2


@pytest.mark.parametrize("spec", [
    "shm:a,ip=10.77.0.2-10.77.0.9/24",
    "shm:a,ip=10.77.0.2+10.77.0.7/24",
    "loopback,ip=10.0.0.5-10.0.0.6+10.0.0.1+10.0.0.3-10.0.0.4/24,mtu=1400",
])
def test_address_forms_round_trip(spec):
    assert str(Interface.parse(spec)) == spec
    assert Interface.parse(str(Interface.parse(spec))) == Interface.parse(spec)


@pytest.mark.parametrize("value, words", [
    ("10.77.0.2-10.77.0.9", "needs a prefix length"),
    ("10.77.0.9-10.77.0.2/24", "range '10.77.0.9-10.77.0.2' runs backwards"),
    ("10.77.0.2-x/24", "'x' is not an IPv4 address"),
    ("10.77.0.2+/24", "'' is not an IPv4 address"),
    ("10.77.0.2,10.77.0.3/24", "join the addresses of ip= with '+'"),     # a comma starts the next key
    ("10.77.0.2+10.78.0.3/24", "10.78.0.3 is outside 10.77.0.0/24"),
    ("10.77.0.2+10.77.0.255/24", "10.77.0.255 is the broadcast address of 10.77.0.0/24"),
    ("10.77.0.2+10.77.0.0/24", "10.77.0.0 is the network address"),
    ("10.77.0.2+10.77.0.3+10.77.0.2/24", "10.77.0.2 is given twice"),
    ("10.77.0.1-10.77.1.1/16", "more than 256 addresses"),
    ("10.77.0.2-10.77.0.3/40", "bad prefix length '40'"),
])
def test_bad_address_forms_name_the_value(value, words):
    with pytest.raises(InterfaceSpecError) as e:
        Interface.parse(f"shm:a,ip={value}")
    msg = str(e.value)
    assert words in msg and f"ip={value.split(',')[0]}" in msg


def test_host_may_not_be_a_secondary_address():
    with pytest.raises(InterfaceSpecError, match="must differ"):
        Interface.parse("tap:t,ip=10.0.0.2-10.0.0.5/24,host=10.0.0.4/24")


def _unknown(key):
    try:
        Interface.parse(f"loopback,{key}=1")
    except InterfaceSpecError as e:
        return "unknown key" in str(e)
    return False


def test_unknown_key_error_lists_every_key_the_parser_accepts():
    with pytest.raises(InterfaceSpecError) as e:
        Interface.parse("loopback,colour=blue")
    listed = re.search(r"known keys: ([^)]*)\)", str(e.value)).group(1).split(", ")
    assert len(listed) == len(set(listed))
    assert not [k for k in listed if _unknown(k)]          # every listed key is one
    # Every key the parser takes: the fields of Interface and Faults as spelled in specs
    # (probed, not read from the parser's table), aliases and unit-named fault keys too.
    candidates = {f.name for f in dataclasses.fields(Interface)} | {f.name for f in dataclasses.fields(Faults)}
    candidates |= {"gw", "gateway", "delay", "jitter", "rate", "faults_dir", "dir", "direction"}
    accepted = {k for k in candidates if not _unknown(k)}
    assert accepted <= set(listed), accepted - set(listed)
    assert {"gateway", "faults_dir"} <= set(listed)          # left out by the hand-written list

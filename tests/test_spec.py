"""Interface spec parsing: good specs round-trip, bad ones name the problem."""

import ipaddress

import pytest

from aiorusty import Interface, InterfaceSpecError


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
        ("tap:rusty0,ip=300.0.0.1/24", "bad value for ip"),
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

"""Interface specs: the one string that names a device and how the stack uses it.

    DRIVER:TARGET[,key=value...]      tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24
    loopback[,key=value...]           loopback,ip=10.9.0.1/24

ip= gives the interface one address, or several in one subnet: a range
FIRST-LAST or a list joined by '+' (commas already separate keys), the
two mixed, then the prefix once:

    ip=10.77.0.2/24                   one address
    ip=10.77.0.2-10.77.0.9/24         eight: 10.77.0.2 ... 10.77.0.9
    ip=10.77.0.2+10.77.0.7/24         two
    ip=10.77.0.2-10.77.0.5+10.77.0.9/24

The first address is the interface's own (`ip`: the source of what it
sends by default); the others are secondary addresses (`addresses`), each
answering ARP and accepting connections as the first does, at most
MAX_ADDRESSES in all (a load generator's source addresses: one address
reaches one server port from at most the ephemeral port range).

queues=N,queue=K opens queue K of a multi-queue interface (one worker per
queue); queues=N,queue=auto lets the process claim the lowest queue no other
live process holds (aiorusty.nic._claim), for process managers that start
identical workers (uvicorn --workers, gunicorn).

Owns: parsing and validating the spec, with errors that name the bad piece
and the expected form. Not: opening the device (aiorusty.nic._device).
"""

import dataclasses
import ipaddress
import re

DRIVERS = ("tap", "afpacket", "shm", "loopback")
NEEDS_TARGET = ("tap", "afpacket", "shm")
QUEUE_AUTO = "auto"                     # queue=auto: claim the lowest free queue at open
FAULT_KEYS = ("drop", "duplicate", "reorder", "corrupt", "delay", "jitter", "rate", "seed", "faults_dir")

_FORM = "DRIVER:TARGET[,key=value...] with DRIVER one of tap, afpacket, shm, loopback"
_IP_FORM = "ip=ADDR/PREFIX, a range ip=FIRST-LAST/PREFIX or a list ip=ADDR+ADDR/PREFIX"
MAX_ADDRESSES = 256                     # per interface, the first included (RUSTY_IFACE_MAX_ADDRS)
_MAC = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")
_TIME_UNITS = {"us": 1, "ms": 1000, "s": 1000000}
_U16, _U32, _U64 = 2**16 - 1, 2**32 - 1, 2**64 - 1   # the C config fields these values land in
_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "bps": 1, "kbps": 10**3, "mbps": 10**6, "gbps": 10**9}


class InterfaceSpecError(ValueError):
    """A malformed interface spec; the message says what is wrong and the expected form."""


@dataclasses.dataclass(frozen=True)
class Faults:
    """Seeded fault injection on a device: probabilities in [0, 1], times in microseconds."""

    seed: int = 1
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    delay_us: int = 0
    jitter_us: int = 0
    rate_bps: int = 0
    direction: int = 3  # 1 rx, 2 tx, 3 both

    @property
    def active(self):
        return any((self.drop, self.duplicate, self.reorder, self.corrupt, self.delay_us, self.jitter_us, self.rate_bps))


@dataclasses.dataclass(frozen=True)
class Interface:
    """One network interface of the user-space stack, parsed from a spec string."""

    driver: str
    target: str = ""
    ip: ipaddress.IPv4Interface | None = None
    addresses: tuple = ()               # secondary IPv4Addresses, in the spec's order
    gateway: ipaddress.IPv4Address | None = None
    host: ipaddress.IPv4Interface | None = None
    mtu: int = 0
    mac: str | None = None
    queues: int = 1
    queue: int | str | None = None      # an index, QUEUE_AUTO, or None: every queue
    pool: int = 0
    ring: int = 0
    offload: bool = True
    pcap: str | None = None
    trace: bool = False
    faults: Faults | None = None

    @classmethod
    def parse(cls, spec):
        if isinstance(spec, Interface):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise InterfaceSpecError(f"empty interface spec: expected {_FORM}")
        head, *pairs = [p.strip() for p in spec.strip().split(",")]
        driver, sep, target = head.partition(":")
        driver = driver.strip().lower()
        if driver not in DRIVERS:
            raise InterfaceSpecError(f"interface spec {spec!r}: unknown driver {driver!r}; expected {_FORM}")
        if driver in NEEDS_TARGET and not target:
            raise InterfaceSpecError(f"interface spec {spec!r}: {driver} needs a target, as in '{driver}:NAME'")
        if driver == "loopback" and target:
            raise InterfaceSpecError(f"interface spec {spec!r}: loopback takes no target; write 'loopback,ip=...'")
        if target and not _NAME.match(target):
            raise InterfaceSpecError(
                f"interface spec {spec!r}: bad {driver} name {target!r} (1-15 letters, digits, '.', '-', '_')")
        fields = {"driver": driver, "target": target}
        faults = {}
        for pair in pairs:
            if pair and "=" not in pair and pair[0].isdigit():
                raise InterfaceSpecError(
                    f"interface spec {spec!r}: {pair!r} is not key=value; commas separate keys, so join the "
                    f"addresses of ip= with '+' (expected {_IP_FORM})")
        for pair in pairs:
            if not pair:
                continue
            key, eq, value = pair.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not eq or not value:
                raise InterfaceSpecError(f"interface spec {spec!r}: {pair!r} should be key=value")
            try:
                if key in FAULT_KEYS:
                    faults[key] = value
                else:
                    _set_key(fields, key, value)
            except InterfaceSpecError as e:
                raise InterfaceSpecError(f"interface spec {spec!r}: {e}") from None
            except ValueError as e:
                raise InterfaceSpecError(f"interface spec {spec!r}: bad value for {key}: {e}") from None
        if faults:
            try:
                fields["faults"] = _parse_faults(faults)
            except ValueError as e:
                raise InterfaceSpecError(f"interface spec {spec!r}: {e}") from None
        iface = cls(**fields)
        iface._check(spec)
        return iface

    def _check(self, spec):
        if self.host is not None and self.driver != "tap":
            raise InterfaceSpecError(f"interface spec {spec!r}: host= only applies to tap devices")
        if self.host is not None and self.ip is not None and self.host.ip in self.ips():
            raise InterfaceSpecError(f"interface spec {spec!r}: host= and ip= must differ (kernel side vs stack side)")
        if self.queue == QUEUE_AUTO:
            if self.driver not in NEEDS_TARGET:
                raise InterfaceSpecError(f"interface spec {spec!r}: queue=auto needs a multi-queue driver "
                                         "(tap, afpacket or shm)")
            if self.queues < 2:
                raise InterfaceSpecError(f"interface spec {spec!r}: queue=auto needs queues=N with N > 1 "
                                         "(the number of worker processes)")
        elif self.queue is not None and self.queue >= self.queues:
            raise InterfaceSpecError(f"interface spec {spec!r}: queue={self.queue} but only {self.queues} queues")

    def __str__(self):
        parts = [f"{self.driver}:{self.target}" if self.target else self.driver]
        if self.ip is not None:
            parts.append(f"ip={_format_ips(self.ips())}/{self.ip.network.prefixlen}")
        if self.gateway is not None:
            parts.append(f"gw={self.gateway}")
        if self.host is not None:
            parts.append(f"host={self.host.with_prefixlen}")
        for key, default in (("mtu", 0), ("mac", None), ("queues", 1), ("queue", None), ("pool", 0), ("ring", 0)):
            value = getattr(self, key)
            if value != default:
                parts.append(f"{key}={value}")
        if not self.offload:
            parts.append("offload=0")
        if self.pcap:
            parts.append(f"pcap={self.pcap}")
        if self.trace:
            parts.append("trace=1")
        if self.faults is not None:
            f = self.faults
            for key, value in (("drop", f.drop), ("duplicate", f.duplicate), ("reorder", f.reorder), ("corrupt", f.corrupt)):
                if value:
                    parts.append(f"{key}={value:g}")
            if f.delay_us:
                parts.append(f"delay={f.delay_us}us")
            if f.jitter_us:
                parts.append(f"jitter={f.jitter_us}us")
            if f.rate_bps:
                parts.append(f"rate={f.rate_bps}bit")
            if f.direction != 3:
                parts.append("faults_dir=" + {1: "rx", 2: "tx"}[f.direction])
            parts.append(f"seed={f.seed}")
        return ",".join(parts)

    def ips(self):
        """Every address of the interface, the first one first (IPv4Address)."""
        return (self.ip.ip,) + self.addresses if self.ip is not None else ()

    def with_queue(self, queue):
        """The same interface opened on one queue (one worker of several)."""
        return dataclasses.replace(self, queue=queue)


def _set_ip(fields, key, value):
    fields["ip"], fields["addresses"] = parse_ips(value)


def _set_gateway(fields, key, value):
    fields["gateway"] = ipaddress.IPv4Address(value)


def _set_host(fields, key, value):
    if "/" not in value:
        raise InterfaceSpecError(f"host={value} needs a prefix length, as in host=10.0.0.1/24")
    fields["host"] = ipaddress.IPv4Interface(value)


def _set_mtu(fields, key, value):
    mtu = int(value)
    if not 68 <= mtu <= 1500:
        raise InterfaceSpecError(f"mtu={value} out of range (68..1500; frame buffers are 2 KiB)")
    fields["mtu"] = mtu


def _set_mac(fields, key, value):
    if not _MAC.match(value):
        raise InterfaceSpecError(f"mac={value} is not a MAC address like 02:52:00:00:00:01")
    fields["mac"] = value.lower()


def _set_count(fields, key, value):
    if key == "queue" and value.lower() == QUEUE_AUTO:
        fields["queue"] = QUEUE_AUTO
        return
    if key == "queue" and not value.isdigit():
        raise InterfaceSpecError(f"queue={value} should be a queue index K (0..N-1, with queues=N) or auto")
    n = int(value)
    low = 1 if key == "queues" else 0
    high = {"queues": 16, "queue": _U16}.get(key, _U32)       # what the C config holds
    if not low <= n <= high:
        raise InterfaceSpecError(f"{key}={value} out of range ({low}..{high})")
    fields[key] = n


def _set_flag(fields, key, value):
    fields[key] = _bool(key, value)


def _set_pcap(fields, key, value):
    fields["pcap"] = value


# Every key a spec may carry besides the fault keys, and what sets it. The unknown-key
# error lists this table and FAULT_KEYS, so a new key is listed as soon as it is parsed.
_SETTERS = {
    "ip": _set_ip, "gw": _set_gateway, "gateway": _set_gateway, "host": _set_host, "mtu": _set_mtu,
    "mac": _set_mac, "queues": _set_count, "queue": _set_count, "pool": _set_count, "ring": _set_count,
    "offload": _set_flag, "pcap": _set_pcap, "trace": _set_flag,
}
KEYS = tuple(_SETTERS) + FAULT_KEYS


def _set_key(fields, key, value):
    setter = _SETTERS.get(key)
    if setter is None:
        raise InterfaceSpecError(f"unknown key {key!r} (known keys: {', '.join(KEYS)})")
    setter(fields, key, value)


def parse_ips(value):
    """(first address as IPv4Interface, tuple of the other IPv4Addresses) of an ip= value:
    ADDR/PREFIX, FIRST-LAST/PREFIX, ADDR+ADDR/PREFIX or a mix (see the module docstring)."""
    addrs, sep, prefix = value.rpartition("/")
    if not sep or not addrs:
        raise InterfaceSpecError(f"ip={value} needs a prefix length, as in ip=10.0.0.2/24 (expected {_IP_FORM})")
    head = _address(value, addrs.split("+")[0].split("-")[0])
    try:
        first = ipaddress.IPv4Interface(f"{head}/{prefix}")
    except ValueError:
        raise InterfaceSpecError(f"ip={value}: bad prefix length {prefix!r} (0..32; expected {_IP_FORM})") from None
    out = []
    for item in addrs.split("+"):
        lo, dash, hi = item.partition("-")
        start = _address(value, lo)
        end = _address(value, hi) if dash else start
        if end < start:
            raise InterfaceSpecError(f"ip={value}: range {item!r} runs backwards (expected FIRST-LAST, FIRST <= LAST)")
        if int(end) - int(start) + 1 + len(out) > MAX_ADDRESSES:
            raise InterfaceSpecError(f"ip={value}: more than {MAX_ADDRESSES} addresses on one interface")
        out.extend(ipaddress.IPv4Address(a) for a in range(int(start), int(end) + 1))
    if len(out) == 1:
        return first, ()
    net = first.network
    seen = set()
    for a in out:
        if a not in net:
            raise InterfaceSpecError(f"ip={value}: {a} is outside {net}, the subnet of the first address "
                                     "(every address of an interface shares its subnet)")
        if net.prefixlen < 31 and a in (net.network_address, net.broadcast_address):
            raise InterfaceSpecError(f"ip={value}: {a} is the {'network' if a == net.network_address else 'broadcast'}"
                                     f" address of {net}, not a host address")
        if a in seen:
            raise InterfaceSpecError(f"ip={value}: {a} is given twice")
        seen.add(a)
    return first, tuple(out[1:])


def _address(value, text):
    try:
        return ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise InterfaceSpecError(f"ip={value}: {text.strip()!r} is not an IPv4 address (expected {_IP_FORM})") from None


def _format_ips(ips):
    """The ip= address part for ips: consecutive runs as FIRST-LAST, joined by '+'."""
    runs = []
    for a in ips:
        if runs and int(a) == int(runs[-1][1]) + 1:
            runs[-1][1] = a
        else:
            runs.append([a, a])
    return "+".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in runs)


def _bool(key, value):
    v = value.lower()
    if v in ("1", "yes", "true", "on"):
        return True
    if v in ("0", "no", "false", "off"):
        return False
    raise InterfaceSpecError(f"{key}={value} should be 0 or 1")


def _probability(key, value):
    v = value.strip()
    p = float(v[:-1]) / 100 if v.endswith("%") else float(v)
    if not 0 <= p <= 1:
        raise ValueError(f"{key}={value} should be a probability in [0, 1] or a percentage like 1%")
    return p


def _duration_us(key, value):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(us|ms|s)?", value.strip())
    us = float(m.group(1)) * _TIME_UNITS[m.group(2) or "ms"] if m else None
    if us is None or not us <= _U32:     # also inf, from hundreds of digits
        raise ValueError(f"{key}={value} should be a duration like 25ms, 500us or 1s, at most {_U32 // 10**6} s")
    return int(us)


def _rate_bps(key, value):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)", value.strip())
    unit = m.group(2).lower() if m else ""
    bps = float(m.group(1)) * _RATE_UNITS[unit or "bit"] if m and (not unit or unit in _RATE_UNITS) else None
    if bps is None or not bps <= _U64:   # also inf, from hundreds of digits
        raise ValueError(f"{key}={value} should be a rate like 100mbit, 1gbit or 500kbit")
    return int(bps)


def _parse_faults(raw):
    kw = {}
    for key, value in raw.items():
        if key in ("drop", "duplicate", "reorder", "corrupt"):
            kw[key] = _probability(key, value)
        elif key in ("delay", "jitter"):
            kw[f"{key}_us"] = _duration_us(key, value)
        elif key == "rate":
            kw["rate_bps"] = _rate_bps(key, value)
        elif key == "seed":
            kw["seed"] = int(value)
            if not 0 <= kw["seed"] <= _U64:
                raise ValueError(f"seed={value} out of range (0..{_U64})")
        elif key == "faults_dir":
            kw["direction"] = {"rx": 1, "tx": 2, "both": 3}[value] if value in ("rx", "tx", "both") else _bad_dir(value)
    return Faults(**kw)


def _bad_dir(value):
    raise ValueError(f"faults_dir={value} should be rx, tx or both")

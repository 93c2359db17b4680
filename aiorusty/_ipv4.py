"""IPv4 address conversions on the per-connection path, memoised.

Owns: text <-> host-order integer conversion of IPv4 addresses for the loop,
the transports and the stack wrapper. ipaddress.IPv4Address parses and formats
in Python (microseconds each) and a new connection needs several; a program
talks to few distinct addresses, so each conversion is cached (bounded LRU).
Not: networks and interfaces (ipaddress does those, once, at configuration).
"""

import functools
import ipaddress

__all__ = ["literal", "to_int", "to_str"]


@functools.lru_cache(maxsize=4096)
def _literal(host):
    try:
        return str(ipaddress.IPv4Address(host))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        return None


def literal(host):
    """host as a normalised dotted-quad string, or None when it is not an IPv4 literal."""
    try:
        return _literal(host)
    except TypeError:                   # unhashable: certainly not an address
        return None


@functools.lru_cache(maxsize=4096)
def _to_int(ip):
    return int(ipaddress.IPv4Address(str(ip)))


def to_int(ip):
    """Host-order integer of an IPv4 address given as str, int or ipaddress object (0 for '' or None)."""
    if isinstance(ip, int):
        return ip
    if not ip:
        return 0
    return _to_int(ip)


@functools.lru_cache(maxsize=4096)
def to_str(n):
    """Dotted-quad text of a host-order integer."""
    return str(ipaddress.IPv4Address(n))

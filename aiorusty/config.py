"""Loop configuration: which interfaces the user-space stack gets, and how the loop polls it.

Owns: turning the arguments of aiorusty.new_event_loop()/run() - or, for
unmodified applications, the environment - into one immutable LoopConfig.
Not: parsing one interface spec (aiorusty.nic._spec.Interface.parse) or opening
devices (aiorusty.nic / aiorusty.tcp.Stack).

Environment (each read only when the corresponding argument is not given;
the full list, with defaults, is the "Options" table in README.md):

    AIORUSTY_IFACE         one interface spec, or several separated by ';'
                           ("tap:rusty0,ip=10.0.0.2/24;shm:demo,ip=10.9.0.2/24").
                           Empty or unset: no interface, a plain asyncio loop.
    AIORUSTY_BUSY_POLL_US  the most microseconds the loop keeps polling (epoll
                           timeout 0) after the last stack activity before it
                           sleeps in epoll; the window adapts to the gaps between
                           activities below this (default 100; 0 never spins).
    AIORUSTY_<OPTION>      every stack option (a field of struct rusty_stack_config:
                           AIORUSTY_TCP_SNDBUF=4M, AIORUSTY_MAX_TCP_CONNS=200000,
                           AIORUSTY_SEED=1); value forms in aiorusty._options.

An empty variable counts as unset. Other AIORUSTY_* variables (build and test
switches such as AIORUSTY_SANITIZE) are ignored, unless the name is a near-miss
of one above: then it is taken for a typo and refused.
"""

import dataclasses
import os

from . import _options
from .nic import Interface, InterfaceSpecError

__all__ = ["LoopConfig", "load", "stack_options_from", "parse_interfaces", "ENV_IFACE", "ENV_BUSY_POLL_US", "DEFAULT_BUSY_POLL_US"]

ENV_IFACE = "AIORUSTY_IFACE"
ENV_BUSY_POLL_US = "AIORUSTY_BUSY_POLL_US"
# Long enough to catch the reply to what we just sent on a local link (tens of
# microseconds), short enough that an idle loop costs nothing measurable.
DEFAULT_BUSY_POLL_US = 100
MAX_BUSY_POLL_US = 1_000_000


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Everything a RustyEventLoop needs to build its stack and its selector."""

    interfaces: tuple = ()
    busy_poll_us: int = DEFAULT_BUSY_POLL_US
    stack_options: dict = dataclasses.field(default_factory=dict)

    @property
    def enabled(self):
        """True when the user-space stack is in use (at least one interface)."""
        return bool(self.interfaces)


def parse_interfaces(value):
    """Interfaces from an argument: None, a spec string ('a;b' allowed), an Interface or an iterable of those."""
    if value is None:
        return ()
    if isinstance(value, (str, Interface)):
        value = [value]
    out = []
    for item in value:
        if isinstance(item, str):
            out.extend(Interface.parse(s) for s in item.split(";") if s.strip())
        elif isinstance(item, Interface):
            out.append(item)
        else:
            raise InterfaceSpecError(f"interface {item!r}: expected a spec string or an aiorusty.Interface")
    return tuple(out)


def _busy_poll_from(value, source):
    if isinstance(value, str):
        us = _options.parse_duration_us(value, source)
    else:
        try:
            us = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{source}={value!r}: expected whole microseconds, e.g. {DEFAULT_BUSY_POLL_US}") from None
    if not 0 <= us <= MAX_BUSY_POLL_US:
        raise ValueError(f"{source}={value!r}: out of range (0..{MAX_BUSY_POLL_US} microseconds)")
    return us


def load(interfaces=None, *, busy_poll_us=None, environ=None, **stack_options):
    """The LoopConfig for these arguments, completed from the environment.

    Arguments win over the environment: interfaces=() means "no interface"
    even when AIORUSTY_IFACE is set; None means "ask the environment".
    Other keyword arguments are stack options (seed=, max_tcp_conns=, ...),
    passed to aiorusty.tcp.Stack over the AIORUSTY_<OPTION> variables; an
    option given as None is read from the environment too.
    """
    env = os.environ if environ is None else environ
    options = stack_options_from(env, stack_options)
    if interfaces is None:
        spec = env.get(ENV_IFACE, "")
        try:
            ifaces = parse_interfaces(spec) if spec.strip() else ()
        except InterfaceSpecError as e:
            raise InterfaceSpecError(f"{ENV_IFACE}: {e}") from None
    else:
        ifaces = parse_interfaces(interfaces)
    if busy_poll_us is None:
        raw = env.get(ENV_BUSY_POLL_US, "")
        busy = _busy_poll_from(raw, ENV_BUSY_POLL_US) if raw.strip() else DEFAULT_BUSY_POLL_US
    else:
        busy = _busy_poll_from(busy_poll_us, "busy_poll_us")
    return LoopConfig(interfaces=ifaces, busy_poll_us=busy, stack_options=options)


def stack_options_from(environ, arguments):
    """Stack options: `arguments` (None values dropped) over the AIORUSTY_<OPTION> variables of `environ`.

    Checks every AIORUSTY_* variable (a bad value or a mistyped name raises
    ValueError), so a wrong setting fails at start-up even on a loop that ends
    up with no interface.
    """
    unknown = sorted(set(arguments) - set(_options.OPTIONS))
    if unknown:
        raise TypeError(f"unknown stack option(s) {', '.join(unknown)} "
                        f"(known: busy_poll_us, interfaces, {', '.join(_options.OPTIONS)})")
    options = _options.from_environ(environ, also=(ENV_IFACE, ENV_BUSY_POLL_US))
    options.update((k, v) for k, v in arguments.items() if v is not None)
    return options

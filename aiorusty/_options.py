"""Stack options by name: the fields of struct rusty_stack_config, their value forms, the environment.

Owns: the list of stack options (read from the cffi struct, so a field added to
aiorusty/include/rusty.h is an option here, with its AIORUSTY_<NAME> variable,
without a change to this file), parsing an option's value from text, and
telling a mistyped AIORUSTY_* variable from one aiorusty does not read.
Not: the loop's own settings (aiorusty.config), creating the stack (aiorusty.tcp.Stack).

Value forms, chosen by the field's name:

    bytes      (a name with "buf" or "mem")  4194304, 4096K, 4M, 2G, 1T; K/M/G/T and
               KiB/MiB/GiB/TiB are both powers of 1024 (4M = 4MiB = 4194304)
    duration   (a name ending in "_us")      30s, 250ms, 500us; a bare number is microseconds
    count      (every other field)           a whole number: 200000

Only whole numbers: "1.5G" is refused rather than rounded, so the value the
stack gets is the value written.
"""

import difflib
import re

from ._rusty import ffi

__all__ = ["OPTIONS", "ENV_PREFIX", "env_name", "kind", "parse", "parse_duration_us", "from_environ"]

ENV_PREFIX = "AIORUSTY_"
# Field name -> its C type, in the header's order.
OPTIONS = {name: field.type for name, field in ffi.typeof("struct rusty_stack_config").fields}

# form -> (pattern: a whole number and an optional unit, {unit: multiplier}, what to write, unit in errors)
_FORMS = {
    "bytes": (re.compile(r"(\d+)\s*(?:([kmgt])(?:ib)?)?", re.IGNORECASE),
              {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40},
              "bytes, e.g. 2G or 2147483648 (K, M, G, T and KiB, MiB, GiB, TiB are powers of 1024)", " bytes"),
    "duration": (re.compile(r"(\d+)\s*(us|ms|s)?", re.IGNORECASE),
                 {"": 1, "us": 1, "ms": 1000, "s": 1_000_000},
                 "a duration, e.g. 30s, 250ms or 500us (a bare number is microseconds)", " us"),
    "count": (re.compile(r"(\d+)()"), {"": 1}, "a whole number, e.g. 200000", ""),
}

# An unknown AIORUSTY_* name this close to an option's (difflib ratio, names
# without the prefix) is taken for a typo of it. 0.8 catches a letter added,
# dropped or swapped (TCP_SNDBUFF, MAX_TCP_CONN, TCP_MEMORY) and leaves the
# build and test variables (SANITIZE, DEBUG, SLOW) alone.
_TYPO_CUTOFF = 0.8


def env_name(option):
    """AIORUSTY_<OPTION> for a stack option (or busy_poll_us, iface)."""
    return ENV_PREFIX + option.upper()


def kind(option):
    """'bytes', 'duration' or 'count': the form an option's value is written in."""
    if option.endswith("_us"):
        return "duration"
    if "buf" in option or "mem" in option:
        return "bytes"
    return "count"


def _value(form, text, source):
    pattern, units, expected, _ = _FORMS[form]
    m = pattern.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{source}={text!r}: expected {expected}")
    return int(m.group(1)) * units[(m.group(2) or "").lower()]


def parse(option, text, source=None):
    """The integer value of stack option `option` written as `text` (from `source`, named in errors)."""
    source = source or env_name(option)
    form = kind(option)
    value = _value(form, text, source)
    top = (1 << (8 * ffi.sizeof(OPTIONS[option]))) - 1
    if value > top:
        unit = _FORMS[form][3]
        raise ValueError(f"{source}={text!r}: {value}{unit} is out of range (at most {top}{unit})")
    return value


def parse_duration_us(text, source):
    """Microseconds written as `text` in the duration form (for settings that are not stack fields)."""
    return _value("duration", text, source)


def from_environ(environ, also=()):
    """{option: value} from the AIORUSTY_<OPTION> variables set (non-empty) in `environ`.

    Raises ValueError for a bad value, and for an AIORUSTY_* variable that is
    not read but is a near-miss of an option's name or of one in `also` (the
    loop's own variables); any other AIORUSTY_* variable is left alone.
    """
    known = {env_name(o): o for o in OPTIONS}
    out = {}
    for var, text in environ.items():
        if not var.upper().startswith(ENV_PREFIX):
            continue
        if var in known:
            if text.strip():
                out[known[var]] = parse(known[var], text, var)
        elif var not in also:
            _check_typo(var, list(known) + list(also))
    return out


def _check_typo(var, names):
    stem = var[len(ENV_PREFIX):].upper()
    stems = {n[len(ENV_PREFIX):]: n for n in names}
    close = difflib.get_close_matches(stem, stems, n=1, cutoff=_TYPO_CUTOFF)
    if close:
        raise ValueError(f"{var} is not an aiorusty setting: did you mean {stems[close[0]]}? "
                         f"(every setting is listed under \"Options\" in aiorusty's README)")

"""The kernel side of a tap device: `host=ADDR/PREFIX` brings it up with that address.

Owns: the `ip` commands that configure the Linux end of a tap the stack holds
(address, MTU, link up), optionally after moving that end into a network
namespace. Not: the tap itself (aiorusty/nic/_core/tap.c).

A tap can be moved into another namespace after the stack opened it (`ip link
set TAP netns NS`): the stack's fd stays valid, so the stack keeps running in
the root namespace while its Linux peer lives in the namespace. The move
drops the kernel side's addresses and sets it down, which is why the move and
the configuration are one call here.

IPv6 is switched off on the kernel side: the stack speaks IPv4 only, and the
kernel's IPv6 chatter (router solicitations, MLD reports, DAD) would be frames
the stack parses and drops on every link-up.
"""

import subprocess


def _run(cmd, name, what):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        msg = r.stderr.strip() or f"exit status {r.returncode}"
        raise PermissionError(
            f"tap device {name}: `{' '.join(cmd)}` failed: {msg} "
            f"({what} configures the kernel side and needs root or CAP_NET_ADMIN; "
            "without it, configure the tap yourself and leave host= out)")


def _ip(netns):
    return ["ip", "-n", netns] if netns else ["ip"]


def configure_host_side(dev, iface=None, *, host=None, mtu=None, netns=None, ipv6=False):
    """Configure the kernel end of tap `dev`: address `host` (default iface.host), MTU, up.

    With `netns`, first move the kernel end into that (existing) namespace; the
    device keeps working from the caller's namespace.
    """
    name = dev.info()["name"]
    host = host if host is not None else (iface.host if iface is not None else None)
    mtu = mtu if mtu is not None else (iface.mtu if iface is not None else 0)
    ip = _ip(netns)
    what = "host=" if iface is not None and iface.host is not None else "configure_host_side"
    if netns:
        _run(["ip", "link", "set", name, "netns", netns], name, what)
    if not ipv6:
        # Best effort: the sysctl is missing when the kernel has no IPv6. The
        # slash form keeps a '.' in the device name from splitting the key.
        sysctl = ["sysctl", "-qw", f"net/ipv6/conf/{name}/disable_ipv6=1"]
        subprocess.run((["ip", "netns", "exec", netns] if netns else []) + sysctl, capture_output=True)
    if mtu:
        _run(ip + ["link", "set", name, "mtu", str(mtu)], name, what)
    if host is not None:
        _run(ip + ["addr", "replace", host.with_prefixlen if hasattr(host, "with_prefixlen") else str(host),
                   "dev", name], name, what)
    _run(ip + ["link", "set", name, "up"], name, what)

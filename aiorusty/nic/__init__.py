"""aiorusty.nic - user-space NIC drivers behind one device contract.

Drivers (C, in _core/): tap, afpacket, shm, loopback, and the in-process
pair used by tests; wrappers that are devices themselves: pcap, faults, trace.
This package parses interface specs and opens devices; the stack
(aiorusty.tcp) polls them.
"""

from ._device import Device, open_device, open_pair
from ._spec import Faults, Interface, InterfaceSpecError

__all__ = ["Device", "Faults", "Interface", "InterfaceSpecError", "open_device", "open_pair"]

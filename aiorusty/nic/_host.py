"""The kernel side of a tap device: `host=ADDR/PREFIX` brings it up with that address."""

import subprocess


def configure_host_side(dev, iface):
    name = dev.info()["name"]
    cmds = [
        ["ip", "addr", "replace", iface.host.with_prefixlen, "dev", name],
        ["ip", "link", "set", name, "up"],
    ]
    if iface.mtu:
        cmds.insert(0, ["ip", "link", "set", name, "mtu", str(iface.mtu)])
    for cmd in cmds:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            msg = r.stderr.strip() or f"exit status {r.returncode}"
            raise PermissionError(
                f"tap device {name}: `{' '.join(cmd)}` failed: {msg} "
                "(host= configures the kernel side and needs root or CAP_NET_ADMIN; "
                "without it, configure the tap yourself and leave host= out)")

"""Two stacks in this process joined by one shm link, polled by one RustyEventLoop.

The benchmarks that put a client and a server in one loop over shm (no kernel in
the path) build it here: shm_pair(ips, client_spec) returns (loop, stacks, cleanup);
client_spec adds keys to the second end's spec (e.g. a delay line and a rate limit).
"""

import os


def shm_pair(ips, client_spec=""):
    from aiorusty.loop import RustyEventLoop
    from aiorusty.nic import open_device
    from aiorusty.tcp import Stack

    name = f"rpair{os.getpid()}"
    extra = f",{client_spec}" if client_spec else ""
    devs = [open_device(f"shm:{name}"), open_device(f"shm:{name}{extra}")]
    stacks = [Stack(seed=1), Stack(seed=2)]
    for st, dev, ip in zip(stacks, devs, ips):
        st.add_interface(dev, ip=f"{ip}/24")
    loop = RustyEventLoop(interfaces=(), stack=stacks)

    def cleanup():
        loop.close()
        for st in stacks:
            st.close()
        for dev in devs:
            dev.close()
    return loop, stacks, cleanup

"""Two stacks in this process, as the benchmarks that put both ends in one process use them.

shm_pair(ips, client_spec): joined by one shm link and polled by one RustyEventLoop
(no kernel in the path); returns (loop, stacks, cleanup); client_spec adds keys to the
second end's spec (e.g. a delay line and a rate limit).
pair_stacks(ips, pool=, ring=, **options): joined by the in-process pair, driven by the
caller on its own clock (virtual time); returns (stack_a, stack_b, close).
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


def pair_stacks(ips, pool=8192, ring=None, **options):
    from aiorusty.nic import open_pair
    from aiorusty.tcp import Stack

    a, b = open_pair(pool=pool, **({"ring": ring} if ring else {}))
    sa, sb = Stack(seed=1, **options), Stack(seed=2, **options)
    sa.add_interface(a, 0, ip=f"{ips[0]}/24")
    sb.add_interface(b, 0, ip=f"{ips[1]}/24")

    def close():
        for x in (sa, sb, a, b):        # the stacks before the devices they use
            x.close()
    return sa, sb, close

"""`aiorusty testbed up|down|status`: generator - middlebox - server in network namespaces.

Owns: building and removing the seed's layout with ip(8), sysctl, nft(8) and
tc(8) (root needed), idempotently:

    ns PREFIX-gen              ns PREFIX-mb                       ns PREFIX-srv
    PREFIX-g  <-- veth -->  PREFIX-mg 10.91.1.1/24
                            PREFIX-ms 10.91.2.1/24  <-- veth -->  PREFIX-s

The middlebox is Linux forwarding between its two links, optionally impaired:
random loss with an nftables rule in the forward hook (`numgen random mod
10000 < N drop`: this kernel has no netem) and a tbf rate limit on each of
its links (so each direction is limited). The endpoint links carry no kernel
address: aiorusty stacks own them through AF_PACKET, each with its own IP on
the same link (a stack ignores frames for the others' addresses), so one
namespace can hold a server and a generator - the mode where every link
carries traffic both ways. Not: running the server or the generator (the
commands are printed).
"""

import dataclasses
import subprocess
import sys

NET_GEN, NET_SRV = "10.91.1", "10.91.2"


@dataclasses.dataclass
class Topology:
    prefix: str = "rt"

    @property
    def ns(self):
        return {"gen": f"{self.prefix}-gen", "mb": f"{self.prefix}-mb", "srv": f"{self.prefix}-srv"}

    @property
    def links(self):
        p = self.prefix
        return {"gen": f"{p}-g", "mb_gen": f"{p}-mg", "mb_srv": f"{p}-ms", "srv": f"{p}-s"}

    def specs(self):
        """Interface specs of the stacks: server and generator on each side."""
        g, s = self.links["gen"], self.links["srv"]
        return {
            "server": f"afpacket:{s},ip={NET_SRV}.10/24,gw={NET_SRV}.1",
            "generator": f"afpacket:{g},ip={NET_GEN}.10/24,gw={NET_GEN}.1",
            "server_gen_side": f"afpacket:{g},ip={NET_GEN}.20/24,gw={NET_GEN}.1",
            "generator_srv_side": f"afpacket:{s},ip={NET_SRV}.20/24,gw={NET_SRV}.1",
        }


def _sh(*cmd, ns=None, check=True):
    full = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
    res = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"`{' '.join(full)}` failed: {res.stderr.strip()}")
    return res


def _existing_ns():
    res = _sh("ip", "netns", "list", check=False)
    return {line.split()[0] for line in res.stdout.splitlines() if line.strip()}


def down(topo):
    """Remove the namespaces (their links go with them). Safe to repeat."""
    have = _existing_ns()
    removed = []
    for ns in topo.ns.values():
        if ns in have:
            _sh("ip", "netns", "del", ns)
            removed.append(ns)
    return removed


def up(topo, loss=0.0, rate=""):
    """Build (or rebuild) the topology; returns its description."""
    if not 0 <= loss <= 100:
        raise ValueError(f"--loss {loss}: a percentage between 0 and 100")
    down(topo)
    ns, ln = topo.ns, topo.links
    try:
        for n in ns.values():
            _sh("ip", "netns", "add", n)
            _sh("ip", "link", "set", "lo", "up", ns=n)
        _sh("ip", "link", "add", ln["gen"], "netns", ns["gen"], "type", "veth", "peer", "name", ln["mb_gen"],
            "netns", ns["mb"])
        _sh("ip", "link", "add", ln["srv"], "netns", ns["srv"], "type", "veth", "peer", "name", ln["mb_srv"],
            "netns", ns["mb"])
        for side in ("gen", "srv"):
            # The endpoint links belong to the stacks: no kernel address, no IPv6 chatter.
            _sh("sysctl", "-qw", f"net.ipv6.conf.{ln[side]}.disable_ipv6=1", ns=ns[side], check=False)
            _sh("sysctl", "-qw", "net.ipv4.conf.all.forwarding=0", ns=ns[side], check=False)
            _sh("ip", "link", "set", ln[side], "up", ns=ns[side])
        _sh("ip", "addr", "add", f"{NET_GEN}.1/24", "dev", ln["mb_gen"], ns=ns["mb"])
        _sh("ip", "addr", "add", f"{NET_SRV}.1/24", "dev", ln["mb_srv"], ns=ns["mb"])
        for k in ("mb_gen", "mb_srv"):
            _sh("sysctl", "-qw", f"net.ipv6.conf.{ln[k]}.disable_ipv6=1", ns=ns["mb"], check=False)
            # AF_PACKET stacks take frames up to the MTU: no GRO/GSO super-frames towards them.
            _sh("ethtool", "-K", ln[k], "tso", "off", "gso", "off", "gro", "off", ns=ns["mb"], check=False)
            _sh("ip", "link", "set", ln[k], "up", ns=ns["mb"])
        _sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=ns["mb"])
        if loss:
            table = f"{topo.prefix.replace('-', '_')}_impair"
            _sh("nft", "add", "table", "inet", table, ns=ns["mb"])
            _sh("nft", "add", "chain", "inet", table, "impair",
                "{ type filter hook forward priority 0; policy accept; }", ns=ns["mb"])
            _sh("nft", "add", "rule", "inet", table, "impair", "numgen", "random", "mod", "10000", "<",
                int(round(loss * 100)), "counter", "drop", ns=ns["mb"])
        if rate:
            for k in ("mb_gen", "mb_srv"):
                _sh("tc", "qdisc", "replace", "dev", ln[k], "root", "tbf", "rate", rate, "burst", "64kb",
                    "latency", "50ms", ns=ns["mb"])
    except BaseException:
        down(topo)
        raise
    return describe(topo, loss, rate)


def describe(topo, loss=0.0, rate=""):
    sp = topo.specs()
    ns = topo.ns
    a = sys.argv[0] if sys.argv and sys.argv[0].endswith("aiorusty") else "python -m aiorusty"
    lines = [
        f"namespaces: {ns['gen']} (generator) - {ns['mb']} (middlebox: forwarding"
        + (f", {loss:g}% random loss" if loss else "") + (f", tbf {rate} per direction" if rate else "")
        + f") - {ns['srv']} (server)",
        "run (each in its own terminal; --workers 1 keeps one stack per link):",
        f"  ip netns exec {ns['srv']} {a} serve -w 1 --iface {sp['server']}",
        f"  ip netns exec {ns['gen']} {a} load -w 1 --iface {sp['generator']} http://{NET_SRV}.10:8080/64",
        "both ways (each side also serves and loads the other):",
        f"  ip netns exec {ns['gen']} {a} serve -w 1 --iface {sp['server_gen_side']}",
        f"  ip netns exec {ns['srv']} {a} load -w 1 --iface {sp['generator_srv_side']} http://{NET_GEN}.20:8080/64",
    ]
    return "\n".join(lines)


def status(topo):
    have = _existing_ns()
    out = []
    for role, n in topo.ns.items():
        if n not in have:
            out.append(f"{n}: absent")
            continue
        res = _sh("ip", "-brief", "addr", ns=n, check=False)
        links = "; ".join(" ".join(line.split()) for line in res.stdout.splitlines() if not line.startswith("lo"))
        out.append(f"{n}: {links}")
    return "\n".join(out)


def main(args):
    import os
    if os.geteuid() != 0:
        print("aiorusty testbed: needs root (network namespaces, veth, nft, tc); run it with sudo",
              file=sys.stderr)
        return 2
    topo = Topology(args.prefix)
    try:
        if args.action == "up":
            print(up(topo, args.loss, args.rate))
        elif args.action == "down":
            gone = down(topo)
            print("removed: " + (", ".join(gone) if gone else "nothing (already down)"))
        else:
            print(status(topo))
            if args.both_ways:
                print(describe(topo))
    except (RuntimeError, ValueError) as e:
        print(f"aiorusty testbed: {e}", file=sys.stderr)
        return 1
    return 0

"""Driving two stacks in one process on a shared virtual clock (tests of both ends)."""


class Lockstep:
    """Two stacks, sa at 10.1.0.1 and sb at 10.1.0.2, polled together on a virtual clock,
    100 us a tick."""

    def __init__(self, sa, sb):
        self.sa, self.sb, self.now = sa, sb, 0

    def tick(self, until=None, n=20):
        """Up to n ticks, stopping once until() is true; n ticks when there is no until."""
        for _ in range(n):
            self.now += 100
            self.sa.poll(self.now)
            self.sb.poll(self.now)
            if until is not None and until():
                return

    def connect(self, lsock):
        """(client, server) sockets of a new connection from sb to sa's port 80; server is
        None when sa did not accept it."""
        cs = self.sb.tcp_connect(("10.1.0.1", 80), now_us=self.now)
        accepted = []

        def established():
            if not accepted:
                ss = self.sa.tcp_accept(lsock)
                if ss is not None:
                    accepted.append(ss)
            return bool(accepted) and self.sb.tcp_info(cs)["state"] == "ESTABLISHED"
        self.tick(established)
        return cs, (accepted[0] if accepted else None)

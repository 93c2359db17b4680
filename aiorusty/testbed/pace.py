"""Pacing of the load generator's connection opens (--connect-rate).

Owns: a token bucket that lets at most `rate` connection attempts a second
through, initial opens and reconnects alike, with one timer for all waiters
(a FIFO of futures) rather than a sleep per connection. Not: what is opened
(load.py).

The bucket holds at most BURST_S seconds of tokens, so an idle spell does not
let a burst of opens through: 100,000 connections at --connect-rate 20000 come
in steps of 200 every 10 ms, not all at once after the first stall.
"""

import collections
import time

BURST_S = 0.01


class TokenBucket:
    """await take() returns once a connection may be opened."""

    def __init__(self, loop, rate):
        if rate <= 0:
            raise ValueError(f"connect rate {rate}: expected a positive number of connections per second")
        self.loop = loop
        self.rate = float(rate)
        self.cap = max(1.0, self.rate * BURST_S)
        self.tokens = self.cap
        self.stamp = time.monotonic()
        self.waiters = collections.deque()
        self.timer = None

    def _refill(self):
        now = time.monotonic()
        self.tokens = min(self.cap, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self):
        if not self.waiters:
            self._refill()
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
        fut = self.loop.create_future()
        self.waiters.append(fut)
        self._arm()
        await fut

    def _arm(self):
        if self.timer is None and self.waiters:
            self.timer = self.loop.call_later(max(0.0, (1.0 - self.tokens) / self.rate), self._release)

    def _release(self):
        self.timer = None
        self._refill()
        while self.waiters and self.tokens >= 1.0:
            fut = self.waiters.popleft()
            if not fut.done():          # a cancelled waiter (the run ended) costs no token
                self.tokens -= 1.0
                fut.set_result(None)
        self._arm()

    def close(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

"""FakeStack: a stand-in for aiorusty.tcp.Stack that exercises the selector's scheduling only.

It carries no traffic: tests queue socket events with inject() (from any
thread; it makes the "device" eventfd readable, as a NIC with frames would),
choose what next_deadline() answers, and count polls and prepared sleeps. Transport tests never use
it; they run on the real stack.
"""

import os
import threading
import time


class FakeStack:
    interfaces = ()                     # owns no address: every socket goes to the kernel

    def __init__(self):
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._lock = threading.Lock()
        self._queued = []
        self.deadline_in_us = None      # next_deadline() = now + this, or None (never)
        self.polls = 0
        self.deadline_calls = 0
        self.arms = 0                   # prepare_sleep() calls: sleeps the selector prepared
        self.closed = False

    def now_us(self):
        return time.monotonic_ns() // 1000

    def fds(self):
        return [self.efd]

    def inject(self, *events):
        with self._lock:
            self._queued.extend(events)
        os.eventfd_write(self.efd, 1)

    def poll(self, now_us=None):
        self.polls += 1
        with self._lock:
            events, self._queued = self._queued, []
        try:
            os.eventfd_read(self.efd)
        except BlockingIOError:
            pass
        return events

    def next_deadline(self, now_us=None):
        self.deadline_calls += 1
        if self.deadline_in_us is None:
            return None
        return (now_us if now_us is not None else self.now_us()) + self.deadline_in_us

    def output(self, now_us):
        pass

    def prepare_sleep(self, now_us=None):
        self.arms += 1
        return self.next_deadline(now_us)

    def route(self, ip):
        return 0

    def stats(self):
        return {"sockets": 0}

    def close(self):
        if not self.closed:
            self.closed = True
            os.close(self.efd)

"""The RustySelector's scheduling, on a FakeStack (no traffic): dispatch order, contexts,
errors, deadline-bounded sleep, busy-poll window, device-fd wake-ups."""

import asyncio
import contextvars
import threading
import time

from ._base import RustyFakeBase

cv = contextvars.ContextVar("cv", default="unset")
EV = 19                 # an event for the scheduling tests (TCP_WRITABLE); READABLE has its own path
READABLE = 18


class FakeTransport:
    """Records the stack events dispatched to it and the context they ran in."""

    def __init__(self, log, name, fail_on=None):
        self.log = log
        self.name = name
        self.fail_on = fail_on
        self._context = contextvars.copy_context()

    def _stack_event(self, typ, flags, arg, arg2):
        self.log.append((self.name, typ, arg, cv.get()))
        if typ == self.fail_on:
            raise ZeroDivisionError("boom")

    @staticmethod
    def _reader(self):
        self.log.append((self.name, "read", None, cv.get()))


class TestSelectorScheduling(RustyFakeBase):
    def test_loop_has_selector_and_stack(self):
        self.assertIs(self.loop.stack, self.fake)
        self.assertEqual(type(self.loop._selector).__name__, "RustySelector")
        self.assertEqual(self.loop.route("10.0.0.1"), "kernel")

    def test_dispatch_in_order_after_call_soon_in_creation_context(self):
        log = []
        token = cv.set("A")
        a = FakeTransport(log, "a")
        cv.reset(token)
        token = cv.set("B")
        b = FakeTransport(log, "b")
        cv.reset(token)
        self.loop._stack_register(self.fake, 1, a)
        self.loop._stack_register(self.fake, 2, b)

        def before():
            log.append(("call_soon", 0, 0, cv.get()))
        self.loop.call_soon(before)
        # A READABLE goes straight to the transport's reader, in the same order and context.
        self.fake.inject((1, 16, 0, 10, 0), (2, EV, 0, 20, 0), (1, READABLE, 0, 30, 0), (99, EV, 0, 0, 0))
        self.loop.run_until_complete(asyncio.sleep(0.01))
        self.assertEqual(log, [("call_soon", 0, 0, "unset"), ("a", 16, 10, "A"), ("b", EV, 20, "B"), ("a", "read", None, "A")])

    def test_event_error_reported_and_batch_continues(self):
        log = []
        self.loop._stack_register(self.fake, 1, FakeTransport(log, "bad", fail_on=EV))
        self.loop._stack_register(self.fake, 2, FakeTransport(log, "good"))
        self.fake.inject((1, EV, 0, 0, 0), (2, EV, 0, 0, 0))
        self.loop.run_until_complete(asyncio.sleep(0.01))
        self.assertEqual([n for n, *_ in log], ["bad", "good"])
        self.expect_exceptions(1)
        self.assertIsInstance(self.handler_calls[0]["exception"], ZeroDivisionError)

    def test_injection_from_thread_wakes_sleeping_loop(self):
        log = []
        done = self.loop.create_future()

        class T(FakeTransport):
            def _stack_event(self, *ev):
                super()._stack_event(*ev)
                done.set_result(None)
        self.loop._stack_register(self.fake, 7, T(log, "t"))
        threading.Timer(0.05, self.fake.inject, ((7, EV, 0, 1, 0),)).start()
        self.run_loop(done, timeout=5)
        self.assertEqual([n for n, *_ in log], ["t"])

    def test_sleep_bounded_by_stack_deadline(self):
        # Idle loop, one timer 0.2 s away: the stack asks to be polled every 20 ms.
        self.fake.deadline_in_us = 20_000
        self.loop.run_until_complete(asyncio.sleep(0.01))
        polls = self.fake.polls
        self.loop.run_until_complete(asyncio.sleep(0.2))
        self.assertGreaterEqual(self.fake.polls - polls, 6)
        # With no deadline the same wait is a handful of polls, not a spin.
        self.fake.deadline_in_us = None
        polls = self.fake.polls
        self.loop.run_until_complete(asyncio.sleep(0.2))
        self.assertLessEqual(self.fake.polls - polls, 6)

    def test_deadline_does_not_make_loop_spin_when_later_than_timer(self):
        self.fake.deadline_in_us = 10_000_000
        polls = self.fake.polls
        self.loop.run_until_complete(asyncio.sleep(0.1))
        self.assertLessEqual(self.fake.polls - polls, 6)


class TestBusyPoll(RustyFakeBase):
    BUSY_POLL_US = 300_000

    def test_spins_after_activity_then_sleeps(self):
        self.loop._stack_register(self.fake, 1, FakeTransport([], "t"))
        self.loop.run_until_complete(asyncio.sleep(0.35))     # any start-up activity has aged out
        sel = self.loop._selector
        sleeps, polls, arms = sel.sleeps, self.fake.polls, self.fake.arms
        self.fake.inject((1, EV, 0, 0, 0))
        self.loop.run_until_complete(asyncio.sleep(0.1))
        self.assertGreater(self.fake.polls - polls, 50, "no busy-polling inside the window")
        self.assertLessEqual(sel.sleeps - sleeps, 2)
        # Wakeups are armed for sleeps only: a spinning tick arms nothing.
        self.assertLessEqual(self.fake.arms - arms, 2)
        self.loop.run_until_complete(asyncio.sleep(0.3))       # window over: back to sleeping
        polls, sleeps, arms = self.fake.polls, sel.sleeps, self.fake.arms
        t0 = time.monotonic()
        self.loop.run_until_complete(asyncio.sleep(0.1))
        self.assertLess(self.fake.polls - polls, 10, f"still spinning {time.monotonic() - t0:.3f}s later")
        self.assertGreaterEqual(self.fake.arms - arms, sel.sleeps - sleeps, "a sleep without armed wakeups")


    def test_busy_ticks_check_kernel_fds_at_a_bounded_rate(self):
        from aiorusty import _selector
        self.loop._stack_register(self.fake, 1, FakeTransport([], "t"))
        sel = self.loop._selector
        epolls = []
        inner_select = sel._inner.select

        def counting_select(timeout=None):
            epolls.append(timeout)
            return inner_select(timeout)
        sel._inner.select = counting_select
        self.fake.inject((1, EV, 0, 0, 0))
        t0 = time.monotonic()
        polls = self.fake.polls
        woken = self.loop.create_future()
        # A kernel fd (asyncio's self-pipe) made ready while the loop spins is still seen.
        threading.Timer(0.05, self.loop.call_soon_threadsafe, (woken.set_result, time.monotonic())).start()
        self.loop.run_until_complete(asyncio.sleep(0.1))
        elapsed_us = (time.monotonic() - t0) * 1e6
        self.assertTrue(woken.done())
        busy = [t for t in epolls if t == 0]
        self.assertGreater(self.fake.polls - polls, len(busy) + 10, "every busy tick ran epoll")
        self.assertLessEqual(len(busy), elapsed_us / _selector.KERNEL_FD_POLL_US + 2)


class TestAdaptiveWindow(RustyFakeBase):
    """The spin after activity follows the gaps between activities (see _selector.py)."""
    BUSY_POLL_US = 2_000            # gaps of 30 ms and 1.5 ms fall on either side of it

    def _events_every(self, gap_s, count):
        async def main():
            for _ in range(count):
                await asyncio.sleep(gap_s)
                self.fake.inject((1, EV, 0, 0, 0))
            await asyncio.sleep(0)
        self.loop.run_until_complete(main())

    def _polls_after_one_event(self):
        """Stack polls in the 10 ms after one more event, that gap first."""
        self.loop.run_until_complete(asyncio.sleep(0.001))
        polls = self.fake.polls
        self.fake.inject((1, EV, 0, 0, 0))
        self.loop.run_until_complete(asyncio.sleep(0.01))
        return self.fake.polls - polls

    def test_sparse_activity_stops_the_spin_and_dense_activity_brings_it_back(self):
        self.loop._stack_register(self.fake, 1, FakeTransport([], "t"))
        sel = self.loop._selector
        self.assertEqual(sel.window_us, self.BUSY_POLL_US)
        self._events_every(0.03, 14)        # every gap longer than any allowed spin
        self.assertEqual(sel.window_us, 0)
        self.assertGreaterEqual(sel.window_changes[1], 8)
        self.assertLess(self._polls_after_one_event(), 20, "still spinning after activity")
        self._events_every(0.0015, 30)      # gaps a spin within the limit would catch
        self.assertGreaterEqual(sel.window_us, 1000)
        self.assertLessEqual(sel.window_us, self.BUSY_POLL_US)
        self.assertGreater(self._polls_after_one_event(), 50, "no spin after activity")


class TestPreciseSleep(RustyFakeBase):
    """Sleeps shorter than epoll's millisecond end on the wake timer (wake_timer.c)."""
    BUSY_POLL_US = 0

    def test_sub_millisecond_timers_wake_the_loop_through_the_wake_timer(self):
        from aiorusty import _selector
        sel = self.loop._selector
        inner_select = sel._inner.select
        fired = []

        def watching_select(timeout=None):
            ready = inner_select(timeout)
            fired.extend(1 for key, _ in ready if key.data is _selector._WAKE_TIMER)
            return ready
        sel._inner.select = watching_select

        async def main():
            for _ in range(20):
                await asyncio.sleep(0.0003)
        self.loop.run_until_complete(main())    # asyncio would choke on a wake-timer key handed to it
        self.assertGreaterEqual(len(fired), 15)
        # Each fired timer was read: an idle loop sleeps again instead of finding it ready forever.
        polls = self.fake.polls
        self.loop.run_until_complete(asyncio.sleep(0.05))
        self.assertLess(self.fake.polls - polls, 10)

    def test_wake_timer_arms_rearms_and_disarms(self):
        import os
        import select
        from aiorusty._rusty import lib
        fd = lib.rusty_wake_timer_open()
        self.assertGreaterEqual(fd, 0)
        try:
            now = time.monotonic_ns() // 1000
            self.assertEqual(lib.rusty_wake_timer_arm(fd, now + 2_000), 0)
            self.assertEqual(select.select([fd], [], [], 0)[0], [], "ready before its deadline")
            self.assertEqual(select.select([fd], [], [], 1.0)[0], [fd])
            # Re-arming drops the expiration not read yet; 0 disarms.
            self.assertEqual(lib.rusty_wake_timer_arm(fd, now + 60_000_000), 0)
            self.assertEqual(select.select([fd], [], [], 0)[0], [])
            self.assertEqual(lib.rusty_wake_timer_arm(fd, time.monotonic_ns() // 1000 + 1_000), 0)
            self.assertEqual(lib.rusty_wake_timer_arm(fd, 0), 0)
            self.assertEqual(select.select([fd], [], [], 0.01)[0], [])
            self.assertLess(lib.rusty_wake_timer_arm(-1, 1), 0)
        finally:
            os.close(fd)


class TestNoBusyPoll(RustyFakeBase):
    BUSY_POLL_US = 0

    def test_no_spin_after_activity(self):
        self.loop._stack_register(self.fake, 1, FakeTransport([], "t"))
        polls = self.fake.polls
        self.fake.inject((1, EV, 0, 0, 0))
        self.loop.run_until_complete(asyncio.sleep(0.1))
        self.assertLess(self.fake.polls - polls, 10)


class TestFlush(RustyFakeBase):
    def test_callbacks_scheduled_by_flush_run_without_sleeping(self):
        loop = self.loop
        fut = loop.create_future()

        class T:
            _context = contextvars.copy_context()

            def _write_ready(self):
                loop.call_soon(fut.set_result, "flushed")

        sel = loop._selector
        inner_select = sel._inner.select
        timeouts = []

        def record(timeout=None):
            timeouts.append(timeout)
            return inner_select(timeout)
        sel._inner.select = record

        async def main():
            loop.call_later(0.05, lambda: None)          # gives the loop a reason to sleep
            timeouts.clear()
            sel.flush.append(T())
            return await fut
        self.assertEqual(loop.run_until_complete(main()), "flushed")
        # A busy tick may skip epoll altogether (KERNEL_FD_POLL_US); what must not happen
        # is a wait in it before the callback ran.
        self.assertEqual([t for t in timeouts if t != 0], [],
                         "epoll slept although the flush had scheduled a callback")


class TestTwoStacks(RustyFakeBase):
    def test_events_go_to_their_own_stacks_transports(self):
        from ._fakestack import FakeStack
        from aiorusty.loop import RustyEventLoop
        other = FakeStack()
        loop = RustyEventLoop(interfaces=(), stack=[self.fake, other])
        try:
            log = []
            loop._stack_register(self.fake, 5, FakeTransport(log, "first"))
            loop._stack_register(other, 5, FakeTransport(log, "second"))
            other.inject((5, EV, 0, 2, 0))
            self.fake.inject((5, EV, 0, 1, 0))
            loop.run_until_complete(asyncio.sleep(0.01))
            self.assertEqual(sorted((n, a) for n, _, a, _ in log), [("first", 1), ("second", 2)])
            self.assertEqual(loop.stacks, (self.fake, other))
        finally:
            loop.close()
            other.close()

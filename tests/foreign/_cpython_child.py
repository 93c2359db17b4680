"""One module of CPython's test.test_asyncio, run in this process on stock asyncio or on aiorusty.

    python tests/foreign/_cpython_child.py MODE MODULE OUT [--skip ID ...]

MODE is `stock` (asyncio untouched), `aiorusty` (every loop the tests make is an
aiorusty loop on its own in-process loopback stack that owns 127.0.0.0/8, so
their 127.0.0.1 servers, clients and datagram endpoints run on the user-space
stack), or `switch` (aiorusty, and then `aiorusty.use_stack_sockets()` so the
sockets the tests make themselves live on the stack too; refused while aiorusty
has no such function).

Owns: replacing the loop (the policy's new_event_loop and asyncio.SelectorEventLoop,
which test_events, test_server, test_sock_lowlevel, test_sendfile, ... name directly)
and streaming one JSON line per finished test to OUT, flushed, so the parent
(run_cpython.py) keeps every result when it has to kill a hung child. Not:
choosing modules, retrying after a hang, counting, comparing (run_cpython.py).
"""

import asyncio
import importlib
import json
import os
import sys
import traceback
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = "loopback,ip=127.0.0.1/8"


def install_aiorusty(spec=SPEC):
    """Make every event loop asyncio builds here an aiorusty loop owning `spec`'s address."""
    sys.path.insert(0, ROOT)
    import aiorusty

    class ForeignLoop(aiorusty.RustyEventLoop):
        # asyncio.SelectorEventLoop(selector=None): the tests pass a selector
        # positionally (EpollSelector, PollSelector, ...); it becomes the
        # kernel side of aiorusty's selector.
        def __init__(self, selector=None):
            super().__init__([spec], selector=selector)

    class ForeignPolicy(asyncio.DefaultEventLoopPolicy):
        _loop_factory = ForeignLoop

    _count_stack_sockets(aiorusty)
    asyncio.SelectorEventLoop = ForeignLoop
    # get_event_loop_policy() builds asyncio.DefaultEventLoopPolicy whenever none is set,
    # so the policy a module's tearDownModule resets to None comes back as ours.
    asyncio.DefaultEventLoopPolicy = ForeignPolicy
    asyncio.set_event_loop_policy(None)
    return aiorusty


STACK_SOCKETS = [0]        # stack transports and listeners made so far (see _count_stack_sockets)


def _count_stack_sockets(aiorusty):
    """Count every stack transport and listener made, so each result says whether its
    test ran on the stack at all (a test that passes sock= stays on the kernel)."""
    from aiorusty import server
    from aiorusty.transports import _base

    for cls in (_base._StackTransport, server.StackListenSocket):
        def counted(self, *a, __init=cls.__init__, **kw):
            STACK_SOCKETS[0] += 1
            __init(self, *a, **kw)
        cls.__init__ = counted


class StreamingResult(unittest.TextTestResult):
    """A result that writes {"id", "outcome", "detail", "stack"} per test to a line-buffered file."""

    def __init__(self, out, *a, **kw):
        super().__init__(*a, **kw)
        self._out = out
        self._stack_before = 0

    def _emit(self, test, outcome, detail=""):
        rec = {"id": test.id(), "outcome": outcome, "detail": detail[-4000:],
               "stack": STACK_SOCKETS[0] > self._stack_before}
        self._out.write(json.dumps(rec) + "\n")
        self._out.flush()

    def startTest(self, test):
        super().startTest(test)
        self._stack_before = STACK_SOCKETS[0]
        self._out.write(json.dumps({"start": test.id()}) + "\n")
        self._out.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self._emit(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._emit(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._emit(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._emit(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._emit(test, "skip", "expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._emit(test, "fail", "unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:             # a failing subtest fails its test: report it under the test's id
            kind = "fail" if issubclass(err[0], test.failureException) else "error"
            self._emit(test, kind, f"{subtest.id()}\n" + self._exc_info_to_string(err, test))


def _iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _iter_tests(t)
        else:
            yield t


def main(argv):
    mode, module, out_path, *rest = argv
    skip = set(rest[1:]) if rest[:1] == ["--skip"] else set()
    if mode in ("aiorusty", "switch"):
        aiorusty = install_aiorusty()
        if mode == "switch":
            use = getattr(aiorusty, "use_stack_sockets", None)
            if use is None:
                sys.exit("switch mode: this aiorusty has no use_stack_sockets(); run --mode aiorusty")
            use()
    elif mode != "stock":
        sys.exit(f"unknown mode {mode!r}: expected stock, aiorusty or switch")
    mod = importlib.import_module(f"test.test_asyncio.{module}")
    suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
    if skip:
        kept = unittest.TestSuite(t for t in _iter_tests(suite) if t.id() not in skip)
        # keep module fixtures (tearDownModule) by running the flat suite
        suite = kept
    with open(out_path, "a", buffering=1) as out:
        runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=0,
                                         resultclass=lambda *a, **kw: StreamingResult(out, *a, **kw))
        try:
            runner.run(suite)
        except BaseException:
            out.write(json.dumps({"crash": traceback.format_exc()[-4000:]}) + "\n")
            raise


if __name__ == "__main__":
    main(sys.argv[1:])

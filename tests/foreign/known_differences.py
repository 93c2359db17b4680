"""Why a CPython asyncio test that passes on stock asyncio fails on aiorusty, when the reason is known.

Classes:
  kernel_peer  the test mixes a kernel endpoint with the loop's 127.0.0.1, which the
               stack owns in this run: a thread serving on its own socket.socket(), a
               socket it binds/connects itself, or sock=. Fixed by the stack sockets
               (a socket object on the stack and the switch that makes socket.socket()
               use it); run_cpython.py --switch runs them that way.
  internals    the test inspects asyncio's own machinery (mocked selector methods,
               file descriptors, _selector specifics) that a stack transport does not have.

Owns: the table and classify(). Not: running or comparing (run_cpython.py).
"""

import fnmatch

# pattern (fnmatch over the test id) -> (class, reason)
KNOWN = {}


def classify(test_id):
    """(class, reason) for a differing test, ("unexplained", "") when nothing matches."""
    for pattern, (cls, why) in KNOWN.items():
        if fnmatch.fnmatchcase(test_id, pattern):
            return cls, why
    return "unexplained", ""

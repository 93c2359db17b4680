"""Negative errno values from the C core, turned into the OSError a kernel socket raises."""

import errno
import os


def check(ret, what, hint=None):
    """Return ret when it is >= 0; raise the matching OSError subclass otherwise.

    OSError(errno, msg) picks the subclass itself (ECONNREFUSED ->
    ConnectionRefusedError, EPERM -> PermissionError, ETIMEDOUT -> TimeoutError).
    """
    if ret >= 0:
        return ret
    code = -ret
    message = f"{what}: {os.strerror(code)}"
    if hint:
        message += f" ({hint})"
    raise OSError(code, message)


"""queue=auto: a process claims the lowest queue of an interface that no other live process holds.

Owns: the claim file of an interface, the lock that is a claim, and the
refusal of a claim file another user could tamper with. Not: opening the
queue once claimed (aiorusty.nic._device opens it exactly as queue=K).

Process managers (uvicorn --workers, gunicorn) start identical workers with
one environment, so no worker knows its index. Each one claims instead: the
claim on queue K is a write lock on byte K of the interface's claim file, an
open file description lock (F_OFD_SETLK, fcntl(2)): it conflicts with every
other open of the file, in this process or another, and the kernel drops it
when the file is closed, at the latest when the process exits, however it
exits. So a worker that dies frees its queue for the next one started. POSIX
record locks (lockf) would not do: they never conflict within one process,
and closing any descriptor of the file would drop them all.

The lock lives on the open file, so a child forked after the claim (fork
without exec; the descriptor is close-on-exec) shares it until it exits.

Where the file lives, scoped as the device's own name is:
  shm:NAME       /dev/shm/aiorusty-NAME.claims, beside the link's segment
  tap, afpacket  /dev/shm/aiorusty.DRIVER.NAME.NETNS.claims: a link name is
                 per network namespace, NETNS is the namespace's inode number
/dev/shm rather than /run because a user who owns a pre-made tap opens it
without root. The file stays empty (locks may lie past the end) and is left
in place: unlinking it while another process opens it would split the claims
over two files. Removing it when no process of the interface runs is safe.

Trust: /dev/shm is writable by every user, so a claim file could have been
made by another one, who could then hold or fake claims. A file not owned by
this process's user, writable by group or others, or not a regular file is
refused with an error saying so (as shm.c refuses another user's segment).
"""

import ctypes
import errno
import fcntl
import logging
import os
import stat

log = logging.getLogger("aiorusty.nic")

CLAIM_DIR = "/dev/shm"


class _Flock(ctypes.Structure):
    """struct flock (fcntl(2)) with a 64-bit off_t; ctypes lays it out as the platform's C compiler does."""

    _fields_ = [("l_type", ctypes.c_short), ("l_whence", ctypes.c_short),
                ("l_start", ctypes.c_int64), ("l_len", ctypes.c_int64), ("l_pid", ctypes.c_int)]


class QueueClaim:
    """Queue `queue` of an interface, held while this object's file stays open (release() or exit)."""

    def __init__(self, path, fd, queue):
        self.path = path
        self.queue = queue
        self._fd = fd

    @property
    def held(self):
        return self._fd is not None

    def release(self):
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)                # drops the lock

    def __del__(self):
        self.release()

    def __repr__(self):
        return f"<QueueClaim queue {self.queue} of {self.path}{'' if self.held else ' (released)'}>"


def claim_path(iface):
    """The claim file of an interface (see the module docstring for the naming)."""
    if iface.driver == "shm":
        return os.path.join(CLAIM_DIR, f"aiorusty-{iface.target}.claims")
    netns = os.stat("/proc/self/ns/net").st_ino
    return os.path.join(CLAIM_DIR, f"aiorusty.{iface.driver}.{iface.target}.{netns}.claims")


def _what(iface):
    return f"{iface.driver} device {iface.target}"


def _open_claim_file(iface, path):
    """A descriptor of the claim file, created if missing, refused if another user could write it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{_what(iface)}: queue=auto keeps its claims in {CLAIM_DIR}, "
                                "which is missing (mount a tmpfs there, or name the queue: queue=K)") from None
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.ELOOP):
            raise
        # EACCES: someone else's file (fs.protected_regular also refuses root an O_CREAT open of
        # another user's file in a sticky directory); ELOOP: a symlink put in our way.
        raise PermissionError(e.errno, f"{_what(iface)}: queue=auto cannot use its claim file {path} "
                              f"({e.strerror}): it is another user's file or a symlink, and another user "
                              f"could fake or hold claims; remove it (`rm {path}`) and start again") from None
    try:
        st = os.fstat(fd)
        me = os.geteuid()
        if not stat.S_ISREG(st.st_mode) or st.st_uid != me or st.st_mode & 0o022:
            why = ("is not a regular file" if not stat.S_ISREG(st.st_mode) else
                   f"belongs to uid {st.st_uid}, not to uid {me}" if st.st_uid != me else
                   f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})")
            raise PermissionError(errno.EACCES, f"{_what(iface)}: queue=auto refuses its claim file {path}: it "
                                  f"{why}, so another user could fake or hold claims; remove it "
                                  f"(`rm {path}`) and start again")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _try_lock(fd, index):
    """Write-lock byte `index`; False when another open file holds it."""
    lk = _Flock(l_type=fcntl.F_WRLCK, l_whence=os.SEEK_SET, l_start=index, l_len=1, l_pid=0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, bytes(lk))
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def claim_queue(iface):
    """Claim the lowest free queue of iface (queues=N): a QueueClaim, or OSError(EBUSY) when all N are held."""
    path = claim_path(iface)
    fd = _open_claim_file(iface, path)
    try:
        for k in range(iface.queues):
            if _try_lock(fd, k):
                log.debug("%s: queue=auto claimed queue %d of %d (%s)", _what(iface), k, iface.queues, path)
                return QueueClaim(path, fd, k)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    raise OSError(errno.EBUSY, f"{_what(iface)}: queue=auto found all {iface.queues} queues claimed by live "
                  f"processes (claims in {path}); start at most {iface.queues} workers, or raise queues=")

"""A lock between the processes of one machine: flock(2) on a file. The kernel drops it
when its holder dies, SIGKILL included, so a dead process never holds a user's sync."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

# How often a waiter tries again: short, since a sync usually holds the lock for a
# millisecond or two (a warm sync is one round trip).
FIRST_PAUSE = 0.001
LONGEST_PAUSE = 0.02


def keep_trying(attempt: Callable[[], bool], blocking: bool, timeout: float) -> bool:
    """``attempt()`` until it succeeds, with growing pauses, for at most ``timeout``
    seconds (negative: for ever), or once when not ``blocking``."""
    ends = None if timeout < 0 else time.monotonic() + timeout
    pause = FIRST_PAUSE
    while not attempt():
        left = None if ends is None else ends - time.monotonic()
        if not blocking or (left is not None and left <= 0):
            return False
        time.sleep(pause if left is None else min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE)
    return True


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._pid = 0

    def _file(self) -> int:
        # Opened in the process that locks: a descriptor inherited through fork shares
        # its lock with the parent.
        if self._fd < 0 or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        fd = self._file()
        if blocking and timeout < 0:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return True
        return keep_trying(self._try, blocking, timeout)

    def _try(self) -> bool:
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = -1

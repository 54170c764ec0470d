"""Work a request does on the event loop itself, and what keeps it short.

A warm request that only reads the cache costs about a millisecond of Python; handing it to
a worker thread and back costs as much again once many run at once (every thread that runs
Python competes for the one GIL). So ``Bridge.execute`` (bridge/core.py) runs such a request
inline, on the event loop, inside ``on_loop(budget)``. Inline work must never wait for
anything, since the loop serves every other user meanwhile. Whatever could wait checks here
first and raises ``NeedsWorker`` instead:

- the upstream: borrowing an IMAP connection, or a sync (bridge.mail.account);
- a lock another thread holds: the user's cache, the user list (``GuardedLock``);
- a write to the cache (``refuse`` in ``Cache.transaction``): inline work only reads, so
  starting it over elsewhere repeats nothing;
- time: past ``budget`` seconds the next cache call, or the SQLite statement running (its
  progress handler, ``sqlite_progress``), stops it.

The caller then starts the whole request over on a worker thread, where the same checks
pass through: nothing is active outside ``on_loop``. The context travels in a ContextVar,
set and reset with no await in between, so no other task and no worker thread sees it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType

# SQLite VM instructions between two looks at the clock while a statement runs: a few
# microseconds of work, so a statement overruns the budget by no more than that.
PROGRESS_STEPS = 20_000


class NeedsWorker(Exception):
    """Inline work came to something that may wait or take long: run it on a worker."""


_ends: ContextVar[float | None] = ContextVar("bridge_inline_ends", default=None)


@contextmanager
def on_loop(budget: float) -> Iterator[None]:
    """Work in this block is inline: it may take ``budget`` seconds and never wait."""
    token = _ends.set(time.monotonic() + budget)
    try:
        yield
    finally:
        _ends.reset(token)


def active() -> bool:
    return _ends.get() is not None


def refuse(what: str) -> None:
    """Raise NeedsWorker if inline: ``what`` may wait (the upstream) or writes."""
    if _ends.get() is not None:
        raise NeedsWorker(what)


def check_time() -> None:
    """Raise NeedsWorker if inline work has used up its budget."""
    ends = _ends.get()
    if ends is not None and time.monotonic() > ends:
        raise NeedsWorker("over the inline budget")


def sqlite_progress() -> int:
    """SQLite's progress handler: non-zero interrupts the statement (which then raises
    ``sqlite3.OperationalError``; ``interrupted`` tells it from other failures)."""
    ends = _ends.get()
    return int(ends is not None and time.monotonic() > ends)


def interrupted() -> bool:
    """Whether a statement that just failed was stopped by ``sqlite_progress``."""
    ends = _ends.get()
    return ends is not None and time.monotonic() > ends


class GuardedLock:
    """A re-entrant lock that inline work takes only if it is free at once: held by
    another thread (a sync's transaction, a cache being opened), it raises NeedsWorker."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> bool:
        if _ends.get() is None:
            return self._lock.acquire()
        check_time()
        if not self._lock.acquire(blocking=False):
            raise NeedsWorker("a lock held by another thread")
        return True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()

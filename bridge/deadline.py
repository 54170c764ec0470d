"""The deadline of the request a thread works for, and waits bounded by it.

A request's deadline is set once where it enters (``within``: http/app.py, bridge.core) and read
wherever the work waits: each upstream command's read and the connect (bridge.imap), a
pooled connection slot (bridge.imap.pool), the user's sync lock and the indexer
(bridge.mail.account), the calls not yet run (bridge.jmap.engine). It travels in a
ContextVar, which Starlette's thread pool copies into the worker thread; threads of
bridge's own (indexer, watchers, push) start without one and wait as long as they used to.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class Acquirable(Protocol):
    """A lock: threading's, or a user's lock across processes (bridge.coordination)."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...


class _Deadline:
    """One request's deadline, open while the request runs. Copies of the context outlive
    the request (asyncio copies it into every callback and task made meanwhile, and
    uvicorn reads the next request of a kept-alive connection in such a callback), so a
    deadline is closed at the request's end rather than only unset: else the next request
    on the connection would start with this one's, long past."""

    __slots__ = ("ends", "open")

    def __init__(self, ends: float) -> None:
        self.ends = ends
        self.open = True


_deadline: ContextVar[_Deadline | None] = ContextVar("bridge_request_deadline", default=None)


def _current() -> _Deadline | None:
    current = _deadline.get()
    return current if current is not None and current.open else None


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Work in this context ends ``seconds`` from now, or at an earlier deadline of the
    request already running."""
    ends = time.monotonic() + seconds
    outer = _current()
    mine = _Deadline(ends if outer is None else min(outer.ends, ends))
    token = _deadline.set(mine)
    try:
        yield
    finally:
        mine.open = False
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left (0 or less once past), or None outside a request."""
    current = _current()
    return None if current is None else current.ends - time.monotonic()


def expired() -> bool:
    left = remaining()
    return left is not None and left <= 0


def bounded(timeout: float) -> float:
    """``timeout``, cut to the time left (never below zero)."""
    left = remaining()
    return timeout if left is None else max(0.0, min(timeout, left))


def acquire(lock: Acquirable) -> bool:
    """Take ``lock``, waiting no longer than the time left; False if that was not enough."""
    left = remaining()
    if left is None:
        return lock.acquire()
    return lock.acquire(timeout=max(0.0, left))

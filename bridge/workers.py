"""The threads that run a JMAP request's blocking part (cache reads, the sync, IMAP).

A request that may wait crosses from the event loop to a worker thread once
(``Bridge.execute`` in bridge/core.py) and back once; a warm one that only reads the cache
runs on the loop itself (bridge/inline.py), or starts over here if it turns out to need
more. The workers are fewer (``request_threads``, default 8) than anyio's 40: a thread that
runs Python competes for the one GIL, and sixteen runnable request threads plus the event
loop hand it to each other across the CPUs (measured once on two quiet CPUs, sixteen
clients on sixteen users: 1.85x the CPU per warm request of one client; on the loaded
machine the figures spread too widely to rank 4, 8 and 40). They are not one either: a
request that waits on the upstream (its sync, a search, a body) holds its worker
meanwhile, and with four the requests of sixteen users without push queued behind each
other's IMAP round trips. Per-user order is kept elsewhere (one sync at a time per user,
and the pool lends a connection to one request at a time). Logins (``Authenticator``) run
on anyio's default threads, so a slow upstream login never holds a request's worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class RequestThreads:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("request_threads must be at least 1")
        self.size = size
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` on a worker thread, once one is free."""
        if self._limiter is None:
            # Made on first use: an anyio limiter belongs to the running event loop.
            self._limiter = anyio.CapacityLimiter(self.size)
        return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)

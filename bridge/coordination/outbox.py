"""Published states leave through a thread of their own: ``publish`` is called on the
event loop (after each request), which must never wait for the store's write lock or a
round trip to PostgreSQL."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from bridge.states import States

log = logging.getLogger("bridge.coordination")


class Outbox:
    def __init__(self, send: Callable[[str, States], None]) -> None:
        self._send = send
        self._queue: queue.SimpleQueue[tuple[str, States] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="coordination-publish",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def put(self, username: str, states: States) -> None:
        self._queue.put((username, states))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._send(*item)
            except Exception as exc:  # the store is down: listeners elsewhere miss this one
                log.warning("publishing states failed: %s", exc)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for at most ``timeout`` seconds), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

"""One background thread at a time for a user's work outside requests (indexing, flag
scans): started by a request, stopped once before the user's cache closes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class BackgroundThread:
    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._stopping = threading.Event()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _launch(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Start ``target(*args)`` in a thread unless one runs already or stop() was called.
        The arguments (a password among them) stay in memory until the thread ends."""
        with self._guard:
            if self._stopping.is_set() or self.running:
                return
            self._thread = threading.Thread(target=target, args=args, daemon=True, name=name)
            self._starting()
            self._thread.start()

    def _starting(self) -> None:
        """Called under the guard just before a thread starts."""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (at most ``timeout`` seconds); whether it did."""
        thread = self._thread
        if thread is not None:
            thread.join(None if timeout is None else max(0.0, timeout))
            return not thread.is_alive()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """No new thread from now on; the running one ends at its next check."""
        with self._guard:
            self._stopping.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

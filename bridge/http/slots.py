"""Per-user counts of requests in progress (uploads, downloads), each with its limit."""

from __future__ import annotations


class UserSlots:
    """Requests of one kind in progress per user. A count rather than a semaphore: a
    request over the limit is refused at once, never queued, and idle users leave no entry
    behind. Only touched on the event loop, so no lock."""

    def __init__(self) -> None:
        self._active: dict[str, int] = {}

    def acquire(self, username: str, limit: int) -> bool:
        active = self._active.get(username, 0)
        if active >= limit:
            return False
        self._active[username] = active + 1
        return True

    def active(self, username: str) -> int:
        return self._active.get(username, 0)

    def release(self, username: str) -> None:
        active = self._active.pop(username) - 1
        if active:
            self._active[username] = active

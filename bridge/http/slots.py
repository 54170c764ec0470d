"""Per-user counts of long requests in progress (uploads, downloads, event streams), for
limits that refuse rather than queue."""

from __future__ import annotations


class UserSlots:
    """Things in progress per user (uploads, event streams). A count rather than a
    semaphore: one over the limit is refused at once, never queued, and idle users leave
    no entry behind. Only touched on the event loop, so no lock."""

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

    def total(self) -> int:
        """Everyone's, summed: what bridge.metrics shows."""
        return sum(self._active.values())

    def release(self, username: str) -> None:
        active = self._active.pop(username) - 1
        if active:
            self._active[username] = active

"""Slows password guessing without handing anyone a way to lock a user out.

Failures count per (login, client address) and per client address: a guesser is held
back at the address they guess from, and nobody else is. Whoever presents the password
the upstream accepted lately is never held back (the caller checks that first), so a
flood of wrong guesses for a login, from any number of addresses, cannot stop its owner.

Several instances (README "Several instances") count in the coordinator instead, under a
digest of the key, so a guesser gains nothing by spreading over them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque

from bridge.coordination.base import SharedRecords

# Keys with no failure inside the window are dropped once this many keys are held: a
# guesser spraying logins or addresses leaves no lasting trace in memory.
SWEEP_AT = 10_000


class FailureThrottle:
    """After ``limit`` failures within ``window`` seconds, a key is refused until they age."""

    def __init__(
        self, limit: int, window: float, shared: SharedRecords | None = None, name: str = ""
    ) -> None:
        self.limit = limit
        self.window = window
        self._shared = shared
        self._name = name  # tells apart the throttles that count in the coordinator
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._sweep_at = SWEEP_AT

    def __len__(self) -> int:
        """Keys held (some may have aged out since the last sweep)."""
        with self._lock:
            return len(self._failures)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        if self._shared is not None:
            wall = time.time()
            failures = self._shared.failures(self._digest(key), wall - self.window)
            if len(failures) < self.limit:
                return 0.0
            return max(0.0, failures[-self.limit] + self.window - wall)
        now = time.monotonic()
        with self._lock:
            failures = self._recent(key, now)
            if len(failures) < self.limit:
                if not failures:
                    self._failures.pop(key, None)
                return 0.0
            return max(0.0, failures[0] + self.window - now)

    def fail(self, key: str) -> None:
        if self._shared is not None:
            self._shared.fail(self._digest(key))
            return
        now = time.monotonic()
        with self._lock:
            self._recent(key, now).append(now)
            if len(self._failures) >= self._sweep_at:
                self._sweep(now)

    def succeed(self, key: str) -> None:
        if self._shared is not None:
            self._shared.forgive(self._digest(key))
            return
        with self._lock:
            self._failures.pop(key, None)

    def _digest(self, key: str) -> bytes:
        return hashlib.sha256(f"{self._name}\0{key}".encode("utf-8", "surrogatepass")).digest()

    def _sweep(self, now: float) -> None:
        for key in list(self._failures):
            if not self._recent(key, now):
                del self._failures[key]
        self._sweep_at = max(SWEEP_AT, 2 * len(self._failures))

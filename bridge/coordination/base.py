"""The coordinator's contract, and the per-user lock built on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from bridge.states import States

# Lease names: per user, the work one process does for all.
WATCHER = "watcher"
INDEXER = "indexer"


class ProcessLock(Protocol):
    """A mutex between processes (not between the threads of one)."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...


class SharedRecords(Protocol):
    """What the processes keep in one place so that any of them can answer: issued
    tokens and failed logins."""

    def keep_token(
        self, key: bytes, owner: bytes, sealed: bytes, expires: float, per_owner: int
    ) -> None:
        """Keep an issued token by its digest ``key``: ``sealed`` holds what it stands
        for, encrypted under the token itself (bridge.http.token_store), ``owner`` a digest
        of its user, who keeps at most ``per_owner`` (the oldest go first)."""
        ...

    def token(self, key: bytes) -> tuple[bytes, float] | None:
        """What ``keep_token`` kept under ``key``, and its expiry; None once expired."""
        ...

    def drop_token(self, key: bytes) -> bool:
        """Forget the token; whether it was a live one."""
        ...

    def failures(self, key: bytes, since: float) -> list[float]:
        """When (time.time()) the failed logins counted under ``key`` happened, since
        ``since``, oldest first (bridge.http.throttle)."""
        ...

    def fail(self, key: bytes) -> None: ...

    def forgive(self, key: bytes) -> None: ...


class Coordinator(Protocol):
    """What the processes serving the same users share. Every method may be called from
    any thread."""

    # Seconds a lease outlives its holder's last renewal: the longest a dead process's
    # work stays undone.
    lease_time: float

    @property
    def shared(self) -> bool:
        """Whether other processes take part (False: the in-process case)."""
        ...

    def holds(self, username: str, name: str) -> bool:
        """Take the lease ``name`` of ``username``, or keep it: whether this process
        holds it now. A lease held is renewed in the background until ``release``; one
        whose holder died passes on ``lease_time`` after its last renewal."""
        ...

    def release(self, username: str, name: str) -> None: ...

    def user_lock(self, username: str) -> ProcessLock | None:
        """The lock a user's sync holds across processes (None: no other process)."""
        ...

    def vouch(self, username: str, level: bool) -> None:
        """The holder of the user's watcher lease says whether its watcher vouches for
        the cache (bridge.mail.freshness)."""
        ...

    def vouched(self, username: str) -> bool:
        """Whether the live holder of the user's watcher lease vouches for the cache."""
        ...

    def vouched_at_once(self, username: str) -> bool | None:
        """``vouched``, where the answer comes without waiting (a read of a local file
        nothing holds, fit for the event loop); None where it would wait: a round trip,
        or a lock another thread or process holds."""
        ...

    def claim(self, key: str) -> bool:
        """Whether this process is the first to claim ``key`` (of the last minute): the
        one of several processes that does a thing all of them would do."""
        ...

    def records(self) -> SharedRecords | None:
        """The tokens and failed logins the processes share; None when they stay in the
        process (bridge.http.token_store, bridge.http.throttle)."""
        ...

    def publish(self, username: str, states: States) -> None:
        """Tell the other processes that the user's states moved to these."""
        ...

    def subscribe(self, deliver: Callable[[str, States], None]) -> None:
        """Call ``deliver(username, states)`` (from a thread of the coordinator's) for
        every other process's ``publish``."""
        ...

    def close(self) -> None: ...


class UserLock:
    """A re-entrant lock one thread of one process holds at a time: a thread lock, and
    the coordinator's process lock taken by the outermost acquire."""

    def __init__(self, process_lock: ProcessLock | None = None) -> None:
        self._local = threading.RLock()
        self._process = process_lock
        self._depth = 0  # changed only by the thread holding _local

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        started = time.monotonic()
        if not self._local.acquire(blocking, timeout):
            return False
        if self._depth == 0 and self._process is not None:
            left = -1.0 if timeout < 0 else max(0.0, timeout - (time.monotonic() - started))
            if not self._process.acquire(blocking, left):
                self._local.release()
                return False
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._process is not None:
            self._process.release()
        self._local.release()

    def __enter__(self) -> UserLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Lease:
    """One user's lease of one name, as the work it guards holds it."""

    def __init__(self, coordinator: Coordinator, username: str, name: str) -> None:
        self.coordinator = coordinator
        self.username = username
        self.name = name

    def take(self) -> bool:
        """Take or keep it: whether this process holds it now."""
        return self.coordinator.holds(self.username, self.name)

    def release(self) -> None:
        self.coordinator.release(self.username, self.name)

    @property
    def wait_interval(self) -> float:
        """How often a process waiting for a held lease tries again: a tenth of the lease
        time, so a dead holder's work resumes at most that long after its lease ends."""
        return self.coordinator.lease_time / 10

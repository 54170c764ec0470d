"""The coordinator of a bridge that runs alone: every lease is this process's, nothing
is shared, and push stays in the process's own hub."""

from __future__ import annotations

from collections.abc import Callable

from bridge.coordination.base import ProcessLock
from bridge.states import States


class LocalCoordinator:
    def __init__(self, lease_time: float = 10.0) -> None:
        self.lease_time = lease_time

    @property
    def shared(self) -> bool:
        return False

    def holds(self, username: str, name: str) -> bool:
        return True

    def release(self, username: str, name: str) -> None:
        pass

    def user_lock(self, username: str) -> ProcessLock | None:
        return None

    def vouch(self, username: str, level: bool) -> None:
        pass  # the watcher's own Freshness is all there is

    def vouched(self, username: str) -> bool:
        return False

    def vouched_at_once(self, username: str) -> bool:
        return False

    def claim(self, key: str) -> bool:
        return True

    def records(self) -> None:
        return None  # tokens and failed logins stay in the process's TokenStore and throttle

    def publish(self, username: str, states: States) -> None:
        pass

    def subscribe(self, deliver: Callable[[str, States], None]) -> None:
        pass

    def close(self) -> None:
        pass

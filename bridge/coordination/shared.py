"""What the coordinators of several processes share: who this process is among them, the
thread renewing its leases, the threads that listen, and the outbox of published states."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

from bridge.coordination.base import SharedRecords
from bridge.coordination.outbox import Outbox
from bridge.states import States

log = logging.getLogger("bridge.coordination")

# Published states are kept this long: a process polls far more often.
EVENTS_KEPT = 60.0
# Failed logins count for a few minutes (bridge.http.auth: 300 s); older ones go.
FAILURES_KEPT = 3600.0


def holder_name() -> str:
    """This process among all that share the store (a pid alone could be reused)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


class SharedCoordinator(SharedRecords, ABC):
    """The base of a coordinator other processes take part in. A subclass opens its store
    before calling ``__init__`` (the threads start here) and gives ``_renew`` (each third
    of the lease time), ``_send`` (a published state, off the event loop) and the shared
    records (tokens and failed logins) kept in that store."""

    def __init__(self, lease_time: float) -> None:
        self.lease_time = lease_time
        self.holder = holder_name()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start(self._renew_forever, "coordination-renew")
        self._outbox = Outbox(self._send)

    @property
    def shared(self) -> bool:
        return True

    def _start(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.lease_time / 3):
            try:
                self._renew()
            except Exception as exc:  # the store is away: the leases may run out meanwhile
                log.warning("renewing leases failed: %s", exc)

    @abstractmethod
    def _renew(self) -> None: ...

    @abstractmethod
    def _send(self, username: str, states: States) -> None: ...

    def records(self) -> SharedRecords:
        return self  # each subclass keeps them in its store

    def publish(self, username: str, states: States) -> None:
        self._outbox.put(username, states)

    def _stop_threads(self) -> None:
        """Send what is queued, and stop every thread (for a few seconds at most)."""
        self._outbox.close()
        self._stop.set()
        for thread in self._threads:
            thread.join(5.0)

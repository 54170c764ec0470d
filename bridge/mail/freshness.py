"""When a request may trust the cache without asking the upstream what changed.

Every request normally starts with a sync: a NOOP on the pooled connection's INBOX and one
LIST-STATUS, a round trip that finds nothing new almost every time. While the user has a
watcher in NOTIFY mode (RFC 5465 with CONDSTORE: the server reports every change in every
folder, see bridge.mail.watcher), that question has been asked already, so a request skips
its sync when all of these hold:

- the watcher's session is in NOTIFY mode and healthy (no failure since it started
  listening; a session that fails, or stops with its last listener, clears this);
- the watcher has synced since it started listening;
- the watcher has heard nothing since that sync began: every return from IDLE counts as
  news (the watcher syncs on it), so a request arriving between the news and the end of
  the watcher's sync does its own sync as before; IDLE's keepalive (``* OK Still here``)
  alone is no news;
- the cache has not been rebuilt since (a damaged cache starts empty).

What may be stale: a change the server has made but not yet reported. Dovecot batches
NOTIFY news for about half a second (measured: push arrives about 0.5 s after a change), so
a request within that time of another client's change may not see it; the request after
the report does. Changes made through bridge are unaffected: a request that writes syncs
before its writes (they decide on what the cache holds) and after them, whatever this
says. In IDLE mode (no NOTIFY, or no CONDSTORE) the watcher polls once a second, which is
not as fresh: requests sync as before.

Several processes (README "Several instances"): one of them holds the user's watcher
lease and runs the watcher; it tells the coordinator whenever its word changes (``vouch``),
and a request in any other process skips its sync only while that live lease holder
vouches (``vouched``). Its word is one read away, and the same races hold as within one
process: a request that read "level" just before the news is served from the cache as it
was, as it would be had it come a moment earlier. Where that read cannot wait (workers of
one bridge sharing a data directory: a local SQLite file), it is made on the event loop,
so such a request runs inline (bridge.inline) in every worker, not only the watcher's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from bridge import inline


def _silent(level: bool) -> None:
    pass


def _never() -> bool:
    return False


def _not_at_once() -> bool | None:
    return None


class Freshness:
    """What one user's watcher knows of the upstream, for that user's requests."""

    def __init__(
        self,
        vouch: Callable[[bool], None] = _silent,
        vouched: Callable[[], bool] = _never,
        vouched_at_once: Callable[[], bool | None] = _not_at_once,
    ) -> None:
        self._lock = threading.Lock()
        self._heard = 0  # bumped at every sign of change, and when the watching ends
        self._notified = False  # a healthy NOTIFY session is listening
        self._level_at: int | None = None  # the _heard a finished sync started from
        # Our word to other processes, and theirs to us (bridge.coordination).
        self._vouch = vouch
        self._vouched = vouched
        self._vouched_at_once = vouched_at_once
        self._said = False

    def _tell(self) -> None:
        """Pass our word on when it changed (under the lock: in the order of changes)."""
        level = self._notified and self._level_at == self._heard
        if level != self._said:
            self._said = level
            self._vouch(level)

    def listening(self) -> None:
        """The watcher's session now has NOTIFY set: news of every folder will come."""
        with self._lock:
            self._heard += 1
            self._notified = True
            self._tell()

    def heard(self) -> None:
        """The server said something (or IDLE ended): the cache may lag until a sync."""
        with self._lock:
            self._heard += 1
            self._tell()

    def lost(self) -> None:
        """The watching ended or failed: nothing vouches for the cache any more."""
        with self._lock:
            self._heard += 1
            self._notified = False
            self._level_at = None
            self._tell()

    def sync_starts(self) -> int:
        """Before the watcher's sync: what to hand to ``synced`` when it ends."""
        with self._lock:
            return self._heard

    def synced(self, token: int) -> None:
        """The watcher's sync that began at ``token`` finished."""
        with self._lock:
            if self._notified:
                self._level_at = token
                self._tell()

    def level(self) -> bool:
        """Whether the cache holds everything the upstream has reported: a request may
        skip its own sync. Without a watcher of its own, the word of another process's."""
        with self._lock:
            if self._notified:
                return self._level_at == self._heard
        answer = self._vouched_at_once()
        if answer is not None:
            return answer
        # A read of the coordination store that may wait (PostgreSQL: a round trip) never
        # runs on the event loop.
        inline.refuse("asking the coordination store")
        return self._vouched()

    def level_at_once(self) -> bool:
        """``level``, where it is known without waiting: this process's own watcher's word,
        or another's read from a local store nothing holds; False where it would wait."""
        with self._lock:
            if self._notified:
                return self._level_at == self._heard
        return self._vouched_at_once() is True

"""The PostgreSQL store's connections: a small pool of its own, as cheap to borrow from as
the cache's statements are short.

A user's session borrows a connection for each statement outside a transaction, and for
the whole of a transaction (bridge.store.postgres): a warm page is some twenty borrows. A
general pool's checks on every return cost more than the statement itself, so this one
does only what the store needs: connections made on demand up to ``max_size``, the one
last used by the same user's schema lent first (its search_path needs no SET), a
connection returned broken or inside a transaction closed and forgotten, and a borrower
waits at most ``timeout`` seconds once every connection is out.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from bridge.store.health import StoreUnavailable

# Seconds to reach the server at all.
CONNECT_TIMEOUT = 5


class Connections:
    def __init__(self, dsn: str, max_size: int, timeout: float) -> None:
        self._dsn = dsn
        self._max_size = max(1, max_size)
        self._timeout = timeout
        self._idle: list[Any] = []
        self._count = 0
        self._closed = False
        self._changed = threading.Condition()
        # The schema each connection's search_path names now. Weak: a connection dropped
        # takes its entry along.
        self.schema_of: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def connect(self) -> Any:
        """A new connection of its own, outside the pool. Its statements number their
        parameters as PostgreSQL does (``$1``; bridge.store.dialect), and are sent as they
        are."""
        import psycopg

        return psycopg.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            cursor_factory=psycopg.RawCursor,
        )

    def get(self, schema: str | None = None) -> Any:
        deadline = time.monotonic() + self._timeout
        with self._changed:
            while True:
                if self._closed:
                    raise StoreUnavailable("the store is closed")
                if self._idle:
                    for index in range(len(self._idle) - 1, -1, -1):
                        if self.schema_of.get(self._idle[index]) == schema:
                            return self._idle.pop(index)
                    return self._idle.pop()
                if self._count < self._max_size:
                    self._count += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreUnavailable("every connection to the database is busy")
                self._changed.wait(left)
        try:
            return self.connect()
        except BaseException:
            self._forget()
            raise

    def put(self, conn: Any) -> None:
        from psycopg.pq import TransactionStatus

        if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            # Broken, or left in a transaction by an error on its way: never lent again.
            conn.close()
            self._forget()
            return
        with self._changed:
            if self._closed:
                conn.close()
                return
            self._idle.append(conn)
            self._changed.notify()

    def _forget(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for conn in idle:
            conn.close()

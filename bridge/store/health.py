"""Telling a damaged cache from a working one, and moving a damaged one out of the way.

The cache holds nothing the upstream does not (README: it can be deleted at any time), so
a file SQLite cannot read is not repaired: it is renamed aside for inspection and a new
cache is built from the upstream, with a new epoch, so clients holding old states are told
``cannotCalculateChanges`` rather than given a wrong delta.

Damage shows in three places. At open: a file that is not a database, a failed
``PRAGMA quick_check`` (it reads every page once: 35 ms for a 43 MB cache, once per user
per process), tables missing, or a write-ahead log lost after an unclean stop (see
``Cache.open``). At run time: any statement that meets a corrupt page (SQLITE_CORRUPT,
SQLITE_NOTADB); ``GuardedConnection`` raises those as ``CacheDamaged`` and remembers them,
so the next request rebuilds the cache before it starts.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bridge import inline

log = logging.getLogger("bridge.store")

# The primary result codes that mean "the bytes on disk are wrong", not "try again".
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_FULL_CODES = frozenset({sqlite3.SQLITE_FULL})
SIDE_FILES = ("-wal", "-shm", "-journal")
# Milliseconds a statement waits for another connection's lock before SQLITE_BUSY.
BUSY_TIMEOUT_MS = 5000


class CacheDamaged(sqlite3.DatabaseError):
    """The cache's file is damaged; it is rebuilt before the user's next request."""


class StoreUnavailable(Exception):
    """The store's database server cannot be reached (PostgreSQL down, or every pooled
    connection busy for too long): nothing was read or written."""


class StorageFull(OSError):
    """The data directory's disk is full (ENOSPC or SQLITE_FULL): nothing was written."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.ENOSPC, f"no space left on the device for {what}")


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_damage(exc: BaseException) -> bool:
    if isinstance(exc, CacheDamaged):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and _primary_code(exc) in _DAMAGE_CODES


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full, from SQLite or from the OS."""
    if isinstance(exc, sqlite3.DatabaseError):
        return _primary_code(exc) in _FULL_CODES
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _checked(exc: sqlite3.DatabaseError) -> sqlite3.DatabaseError:
    return CacheDamaged(f"cache damaged: {exc}") if is_damage(exc) else exc


class GuardedCursor(sqlite3.Cursor):
    """A cursor whose every step turns SQLITE_CORRUPT/NOTADB into CacheDamaged and marks
    its connection damaged (rows are read lazily, so fetches can meet a bad page too)."""

    connection: GuardedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> GuardedCursor:
        try:
            super().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            raise self.connection.noted(exc) from exc
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> GuardedCursor:
        try:
            super().executemany(sql, seq_of_parameters)
        except sqlite3.DatabaseError as exc:
            raise self.connection.noted(exc) from exc
        return self

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as exc:
            raise self.connection.noted(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as exc:
            raise self.connection.noted(exc) from exc

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.DatabaseError as exc:
            raise self.connection.noted(exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.DatabaseError as exc:
            raise self.connection.noted(exc) from exc


class GuardedConnection(sqlite3.Connection):
    """The cache's connection: remembers the first sign of damage in ``damage``."""

    damage: CacheDamaged | None = None

    def noted(self, exc: sqlite3.DatabaseError) -> Exception:
        if isinstance(exc, sqlite3.OperationalError) and inline.interrupted():
            return inline.NeedsWorker("a statement over the inline budget")
        checked = _checked(exc)
        if isinstance(checked, CacheDamaged) and self.damage is None:
            self.damage = checked
        return checked

    def execute(self, sql: str, parameters: Any = (), /) -> GuardedCursor:
        return self.cursor(GuardedCursor).execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> GuardedCursor:
        return self.cursor(GuardedCursor).executemany(sql, seq_of_parameters)

    def together(self) -> contextlib.AbstractContextManager[None]:
        """Reads that need not wait for each other (PostgresSession.together); here each
        runs as it is issued: a file has no round trips to save."""
        return contextlib.nullcontext()

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(sql_script)
        except sqlite3.DatabaseError as exc:
            raise self.noted(exc) from exc


def connect(path: Path | str) -> GuardedConnection:
    conn = sqlite3.connect(
        str(path),
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
        factory=GuardedConnection,
    )
    assert isinstance(conn, GuardedConnection)
    # Stops a statement that inline work runs past its budget (bridge.inline).
    conn.set_progress_handler(inline.sqlite_progress, inline.PROGRESS_STEPS)
    return conn


def check_integrity(conn: sqlite3.Connection, tables: Iterable[str]) -> None:
    """Raise CacheDamaged unless every page reads back and every table of the schema is
    there. (``PRAGMA quick_check`` skips only the index-versus-table cross checks of
    ``integrity_check``: O(pages), a third of its time.)"""
    verdict = [row[0] for row in conn.execute("PRAGMA quick_check(1)").fetchall()]
    if verdict != ["ok"]:
        raise CacheDamaged(f"cache fails its integrity check: {verdict[0] if verdict else '?'}")
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    missing = sorted(set(tables) - present)
    if missing:
        raise CacheDamaged(f"cache lacks tables {', '.join(missing)}")


def move_aside(path: Path) -> Path:
    """Rename a damaged cache (with its -wal/-shm) to ``<name>.broken-<UTC time>``, kept for
    inspection; returns the new name of the main file."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.broken-{stamp}")
    suffix = 0
    while target.exists():
        suffix += 1
        target = path.with_name(f"{path.name}.broken-{stamp}-{suffix}")
    for side in ("", *SIDE_FILES):
        source = path.with_name(path.name + side)
        if source.exists():
            os.replace(source, target.with_name(target.name + side))
    return target

"""Choosing the store from the ``store`` setting: SQLite files under the data directory
(the default), or one PostgreSQL database (``postgresql://...``)."""

from __future__ import annotations

from pathlib import Path

from bridge.store.base import Stores
from bridge.store.cache import Cache
from bridge.store.postgres import PostgresStores, is_postgres


class SqliteStores:
    """One SQLite file per user, ``<data_dir>/users/<key>/cache.sqlite3``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def open(self, key: str) -> Cache:
        return Cache.open(self.data_dir / "users" / key / "cache.sqlite3")

    def check(self) -> str | None:
        return None  # the data directory's own check covers the files (bridge.http.health)

    def close(self) -> None:
        """Each user's cache closes its own file."""


def stores_for(store: str | None, data_dir: Path, max_connections: int) -> Stores:
    if is_postgres(store):
        assert store is not None
        return PostgresStores(store, max_connections)
    return SqliteStores(data_dir)

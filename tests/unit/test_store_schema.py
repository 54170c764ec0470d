"""The cache's migrations: an older file moves up whole, a newer one is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bridge.store.cache import Cache
from bridge.store.schema import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew


def _at_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("BEGIN;" + "".join(MIGRATIONS[:version]) +
                       f"PRAGMA user_version={version}; COMMIT;")  # fmt: skip
    conn.execute("INSERT INTO meta(key, value) VALUES ('epoch', 'kept')")
    conn.close()


def test_an_older_cache_moves_up_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    _at_version(path, 2)
    cache = Cache.open(path)
    assert cache.epoch == "kept"
    cache.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_cache_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew):
        Cache.open(path)

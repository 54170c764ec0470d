"""The cache's migrations: an older file moves up whole, a newer one is refused; a new one
starts as the prebuilt empty file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bridge.store.cache import Cache
from bridge.store.schema import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew, create_empty


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


def _tables(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def test_a_new_cache_is_the_schema_in_wal_mode_for_its_owner_only(tmp_path: Path) -> None:
    built = tmp_path / "built.sqlite3"
    _at_version(built, SCHEMA_VERSION)
    path = tmp_path / "user" / "cache.sqlite3"
    cache = Cache.open(path)
    assert cache.epoch
    cache.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert _tables(path) == _tables(built)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_creating_never_replaces_a_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = Cache.open(path)
    epoch = cache.epoch
    cache.close()
    create_empty(path)
    cache = Cache.open(path)
    assert cache.epoch == epoch
    cache.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.sqlite3"]


def test_a_stale_write_ahead_log_does_not_come_back(tmp_path: Path) -> None:
    """A cache deleted after a crash can leave its -wal behind: the new cache must not
    take the old one's rows (or its epoch) from it."""
    path = tmp_path / "cache.sqlite3"
    cache = Cache.open(path)
    old_epoch = cache.epoch
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("INSERT INTO meta(key, value) VALUES ('left', 'over')")
    wal = path.with_name(path.name + "-wal")
    stale = wal.read_bytes()
    conn.close()
    cache.close()
    path.unlink()
    wal.write_bytes(stale)  # as a crash would leave it
    fresh = Cache.open(path)
    assert fresh.epoch != old_epoch
    fresh.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'left'").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_cache_from_before_the_query_indexes_gets_them(tmp_path: Path) -> None:
    """Migration 6 splits each Email's keywords into email_keywords, gives every Email an
    empty header index row and marks the cache for the indexer to fill those in."""
    path = tmp_path / "cache.sqlite3"
    _at_version(path, 5)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executemany(
        "INSERT INTO emails(id, thread_id, keywords) VALUES (?, ?, ?)",
        [("e1", "t1", "$seen work"), ("e2", "t1", ""), ("e3", "t2", "$flagged")],
    )
    conn.close()
    cache = Cache.open(path)
    assert cache.header_backfill_due()
    with cache.sql() as db:
        keywords = db.execute("SELECT keyword, email_id FROM email_keywords ORDER BY 1, 2")
        assert keywords.fetchall() == [("$flagged", "e3"), ("$seen", "e1"), ("work", "e1")]
        rows = db.execute("SELECT email_id, from_text, inexact FROM header_text ORDER BY 1")
        assert rows.fetchall() == [("e1", None, None), ("e2", None, None), ("e3", None, None)]
    cache.header_backfill_done()
    assert not cache.header_backfill_due()
    cache.close()


def test_an_empty_cache_needs_no_header_backfill(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    _at_version(path, 5)
    cache = Cache.open(path)
    assert not cache.header_backfill_due()
    cache.close()


def test_the_header_index_moves_under_the_full_text_index_with_its_rows(tmp_path: Path) -> None:
    """Migration 8 rebuilds header_text with an integer key and indexes every exact field
    of its rows in header_words; fields marked inexact and rows not yet known stay out, as
    do rows read with escapes for words (raw UTF-8 beside encoded-words), to be read again."""
    path = tmp_path / "cache.sqlite3"
    _at_version(path, 7)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executemany(
        "INSERT INTO header_text(email_id, from_text, to_text, subject_text, inexact) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            ("e1", "ALICE SMITH", "BOB", "BUDGET", 0),
            ("e2", "ALICE JONES", "CAROL", "", 1),
            ("e3", None, None, None, None),
            ("e4", "ZOE EX TEST", "U0418 U0432 U0430 U043D IVAN RU TEST", "", 0),
        ],
    )
    conn.close()
    cache = Cache.open(path)
    assert cache.header_backfill_due()  # e4's escapes are read again
    with cache.sql() as db:

        def hits(query: str) -> list[str]:
            return [row[0] for row in db.execute(
                "SELECT h.email_id FROM header_text h WHERE h.entry IN "
                "(SELECT rowid FROM header_words WHERE header_words MATCH ?) ORDER BY 1",
                (query,),
            )]  # fmt: skip

        assert hits('from_text : "LIC"') == ["e1"]  # e2's From is inexact
        assert hits('to_text : "CAROL"') == ["e2"]
        assert hits('"lic"') == []  # case-mapped text, matched case by case
        assert hits('from_text : "ZOE"') == []
        rows = db.execute("SELECT email_id, entry, inexact FROM header_text ORDER BY entry")
        assert rows.fetchall() == [("e1", 1, 0), ("e2", 2, 1), ("e3", 3, None), ("e4", 4, None)]
    cache.close()

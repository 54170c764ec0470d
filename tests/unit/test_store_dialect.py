"""The cache's SQL as PostgreSQL takes it (bridge.store.dialect): placeholders, named
parameters and literals, and the schema's types."""

from __future__ import annotations

import pytest

from bridge.mail.header_text import INEXACT_BIT
from bridge.store.dialect import header_words_like, postgres_ddl, postgres_sql, unnest_insert
from bridge.store.postgres import redacted


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        ("WHERE b = ? AND c IN (?,?)", "WHERE b = $1 AND c IN ($2,$3)"),
        # A literal keeps its question mark, colon and percent sign.
        ("SELECT '?:x%' || ?, a % 2 FROM t", "SELECT '?:x%' || $1, a % 2 FROM t"),
        ("SELECT x::text FROM t", "SELECT x::text FROM t"),
        ("BEGIN IMMEDIATE", "BEGIN"),
        ("WHERE role = 'trash'", "WHERE role = 'trash'"),
    ],
)  # fmt: skip
def test_statements(sqlite: str, postgres: str) -> None:
    assert postgres_sql(sqlite) == (postgres, ())


def test_named_parameters_are_numbered_by_first_use() -> None:
    statement = postgres_sql("UPDATE t SET x = :value WHERE id = :id OR x > :value")
    assert statement.text == "UPDATE t SET x = $1 WHERE id = $2 OR x > $1"
    assert statement.arguments({"id": 7, "value": "v"}) == ["v", 7]
    with pytest.raises(ValueError, match="not both"):
        postgres_sql("SELECT ? WHERE x = :x")


def test_a_multi_row_insert_takes_an_array_a_column() -> None:
    head = "INSERT INTO changelog(type, id, created, updated, props_updated, destroyed)"
    assert unnest_insert(head, "(?, ?, 0, ?, ?, NULL)") == (
        f"{head} SELECT u.c0, u.c1, 0, u.c2, u.c3, NULL FROM unnest(?::text[], ?::text[], "
        "?::bigint[], ?::bigint[]) AS u(c0, c1, c2, c3)"
    )
    assert "?::bytea[]" in unnest_insert(
        "INSERT INTO emails(id, summary)", "(?, ?)"
    )  # summary is a BLOB
    with pytest.raises(ValueError, match="2 values for 3 columns"):
        unnest_insert("INSERT INTO threads(id, base_subject, x)", "(?, ?)")
    with pytest.raises(ValueError, match="not a plain"):
        unnest_insert("INSERT INTO threads SELECT 1", "(?)")


def test_schema_types() -> None:
    ddl = postgres_ddl(
        "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL, b BLOB) WITHOUT ROWID;"
    )
    assert ddl == 'CREATE TABLE t (id TEXT COLLATE "C" PRIMARY KEY, n BIGINT NOT NULL, b BYTEA) ;'


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://bridge:s3cret@db:5432/mail", "postgresql://bridge@db:5432/mail"),
        ("postgresql://bridge:p@ss@db/mail?sslmode=require", "postgresql://bridge@db/mail"),
        ("postgres://db/mail", "postgres://db/mail"),
    ],
)
def test_a_store_url_without_its_password(dsn: str, shown: str) -> None:
    assert redacted(dsn) == shown


def test_the_store_setting_is_a_postgresql_url_or_unset() -> None:
    from bridge.config import ConfigError, Settings, load_settings

    assert load_settings(environ={}).store is None
    url = "postgresql://bridge:pw@db/bridge"
    assert load_settings(environ={"BRIDGE_STORE": url}).store == url
    assert load_settings({"store": url, "store_connections": 3}, environ={}).store_connections == 3
    with pytest.raises(ConfigError, match="PostgreSQL URL"):
        Settings(store="mysql://db/bridge").validate()
    with pytest.raises(ConfigError, match="store_connections"):
        Settings(store_connections=0).validate()


def test_the_postgresql_word_match_reads_each_fields_own_exactness_bit() -> None:
    """header_words_like leaves out a field the index marks inexact by the mail layer's
    bit for it, and takes the word's LIKE characters as they are."""
    for field, bit in INEXACT_BIT.items():
        match = header_words_like(field, ["AB", "WORD"])
        assert match is not None
        assert match.params == (bit, "%WORD%")
    assert header_words_like("to", ["AB"]) is None
    escaped = header_words_like("subject", ["100%_\\"])
    assert escaped is not None and escaped.params[1:] == ("%100\\%\\_\\\\%",)

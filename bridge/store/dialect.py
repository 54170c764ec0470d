"""The cache's SQL, written for SQLite, as PostgreSQL runs it.

The store's statements are kept portable where both databases agree (upserts with ON
CONFLICT, TRUE/FALSE, no bare columns beside aggregates, a LIMIT that is never negative).
What remains differs only in spelling, and is rewritten here, once per distinct text:

- Placeholders: ``?`` and ``:name`` outside quoted literals (``'...'``) become
  PostgreSQL's own ``$1``, ``$2``, ... (``PgStatement``), which psycopg's raw cursors send
  as they are. Its default cursors parse each statement for ``%s`` on every call once it is
  longer than 4 KiB or has more than 50 parameters: a page of new Emails, inserted 50 rows
  to a statement, spent more time there than in the database.
- ``BEGIN IMMEDIATE`` (SQLite's write lock at the start) is a plain ``BEGIN``: a
  PostgreSQL transaction takes its row locks as it writes.
- The schema (``postgres_ddl``): INTEGER is 64-bit (UIDs and mod-sequences exceed 2^31),
  BLOB is BYTEA, TEXT compares byte by byte as SQLite's BINARY collation does (``COLLATE
  "C"``: the same order for sorts on any server locale), and ``WITHOUT ROWID`` goes.

Two SQLite functions the statements call, ``instr`` and ``json_each`` over a JSON text,
are defined for PostgreSQL in its own schema by ``COMPAT_FUNCTIONS``.

One migration has no PostgreSQL spelling of SQLite's: 8, whose full-text index of the
header words is an FTS5 table kept by triggers. Its PostgreSQL form (``_OWN_FORMS``) is a
pg_trgm GIN index on header_text's columns, and ``header_words_like`` the query that index
serves, in place of bridge.store.email_query.header_words_match.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from bridge.store.email_query import HEADER_COLUMNS, TRIGRAM, Clause
from bridge.store.schema import EMAIL_QUERY_COLUMNS, MIGRATIONS, column_types

# A quoted literal (kept), a placeholder or a named parameter.
_TOKEN = re.compile(r"'[^']*'|\?|(?<![:\w]):([A-Za-z_]\w*)")


class PgStatement(NamedTuple):
    """A statement as PostgreSQL numbers its parameters; ``names``: the named parameters
    in that order, for statements that take a mapping (else empty)."""

    text: str
    names: tuple[str, ...] = ()

    def arguments(self, parameters: Sequence[Any] | Mapping[str, Any]) -> Sequence[Any]:
        if isinstance(parameters, Mapping):
            return [parameters[name] for name in self.names]
        return parameters


@functools.lru_cache(maxsize=4096)
def postgres_sql(statement: str) -> PgStatement:
    """``statement`` (SQLite's spelling) as PostgreSQL takes it."""
    if statement.strip().upper() == "BEGIN IMMEDIATE":
        return PgStatement("BEGIN")
    names: list[str] = []
    count = 0

    def rewrite(match: re.Match[str]) -> str:
        nonlocal count
        text = match.group(0)
        if text.startswith("'"):
            return text
        if text == "?":
            count += 1
            return f"${count}"
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _TOKEN.sub(rewrite, statement)
    if count and names:
        raise ValueError("a statement takes ? or :name parameters, not both")
    return PgStatement(text, tuple(names))


# A column's type as PostgreSQL takes an array of its values (the DDL below).
_ARRAY_TYPES = {"INTEGER": "bigint[]", "TEXT": "text[]", "BLOB": "bytea[]"}
_INSERT_HEAD = re.compile(r"INSERT INTO (\w+)\(([^)]*)\)", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def unnest_insert(head: str, row: str) -> str:
    """The multi-row INSERT ``head`` VALUES ``row``, ``row``, ... (bridge.store.journal's
    ``_insert_rows``) as one INSERT that takes a typed array per placeholder of ``row``
    and reads its rows from ``unnest``; a row's other items (NULL, 0) stay as they are.

    Fifty new Emails as VALUES are 600 parameters: PostgreSQL parsed and bound such a
    statement in longer than it took to run it, and psycopg dumped each parameter on its
    own. As arrays, a statement has a parameter a column, the same text for any number of
    rows (so it is prepared after a few uses), and its values go over in bulk."""
    match = _INSERT_HEAD.fullmatch(head.strip())
    if match is None:
        raise ValueError(f"not a plain multi-row INSERT: {head!r}")
    table, names = match.group(1), [n.strip() for n in match.group(2).split(",")]
    items = [item.strip() for item in row.strip().removeprefix("(").removesuffix(")").split(",")]
    if len(items) != len(names):
        raise ValueError(f"{len(items)} values for {len(names)} columns: {row!r}")
    types = column_types()[table]
    selected, arrays, aliases = [], [], []
    for name, item in zip(names, items, strict=True):
        if item != "?":
            selected.append(item)
            continue
        alias = f"c{len(aliases)}"
        aliases.append(alias)
        selected.append(f"u.{alias}")
        arrays.append(f"?::{_ARRAY_TYPES[types[name]]}")
    return (
        f"{head.strip()} SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) "
        f"AS u({', '.join(aliases)})"
    )


_DDL = (
    (re.compile(r"\bWITHOUT ROWID\b"), ""),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
)


def postgres_ddl(script: str) -> str:
    """A migration script (tables, indexes, data moves) in PostgreSQL's types."""
    for pattern, replacement in _DDL:
        script = pattern.sub(replacement, script)
    return script


# The migrations (by index in MIGRATIONS) that PostgreSQL runs in a form of its own.
_OWN_FORMS = {
    7: """
    -- Migration 8: header_text gets its integer key (entry) and the partial index of the
    -- Emails the upstream's SEARCH must decide, as in SQLite (a column added in place,
    -- numbered as SQLite's rebuild numbers it). Where SQLite keeps an FTS5 trigram index
    -- by triggers, one pg_trgm GIN index over the five fields serves the LIKE '%word%' of
    -- header_words_like; PostgreSQL keeps it itself. It holds inexact fields too (few):
    -- the query leaves them out by their bit.
    ALTER TABLE header_text ADD COLUMN entry INTEGER;
    UPDATE header_text SET entry = numbered.n
        FROM (SELECT email_id, ROW_NUMBER() OVER (ORDER BY email_id) AS n FROM header_text)
            AS numbered
        WHERE numbered.email_id = header_text.email_id;
    ALTER TABLE header_text ALTER COLUMN entry SET NOT NULL;
    ALTER TABLE header_text ADD CONSTRAINT header_text_entry UNIQUE (entry);
    CREATE INDEX header_text_uncertain ON header_text(inexact, email_id)
        WHERE inexact IS NULL OR inexact <> 0;
    CREATE INDEX header_words ON header_text USING gin (from_text gin_trgm_ops,
        to_text gin_trgm_ops, cc_text gin_trgm_ops, bcc_text gin_trgm_ops,
        subject_text gin_trgm_ops);
    -- Without statistics on "(inexact & bit) = 0", which nearly every row meets, the
    -- planner guesses 0.5% of the rows: a page of a header condition every Email meets
    -- then reads them all (40 ms against 0.4 ms at 10,000 Emails). Statistics on an
    -- expression need PostgreSQL 14.
    DO $$ BEGIN
        IF current_setting('server_version_num')::integer >= 140000 THEN
            CREATE STATISTICS header_text_exact ON (inexact & 1), (inexact & 2),
                (inexact & 4), (inexact & 8), (inexact & 16) FROM header_text;
        END IF;
    END $$;
    -- Fields kept with Python's backslash-u escapes for words: read them again.
    UPDATE header_text SET from_text = NULL, to_text = NULL, cc_text = NULL, bcc_text = NULL,
        subject_text = NULL, inexact = NULL
    WHERE ' ' || COALESCE(from_text, '') || ' ' || COALESCE(to_text, '') || ' ' ||
        COALESCE(cc_text, '') || ' ' || COALESCE(bcc_text, '') || ' ' ||
        COALESCE(subject_text, '') ~ ' U[0-9A-F]{4}';
    INSERT INTO meta(key, value) SELECT 'header_backfill', '1'
        WHERE EXISTS (SELECT 1 FROM header_text WHERE inexact IS NULL)
        ON CONFLICT (key) DO NOTHING;
    """
    + EMAIL_QUERY_COLUMNS,
    8: """
    -- Migration 9 is SQLite's alone: PostgreSQL's header_words_like reads the Emails'
    -- ids off the rows its GIN index finds, and its planner picks indexes by statistics.
    """,
}


def postgres_migrations(version: int, target: int) -> str:
    """The migrations from schema ``version`` to ``target`` as PostgreSQL runs them."""
    return "".join(
        postgres_ddl(_OWN_FORMS.get(index, MIGRATIONS[index])) for index in range(version, target)
    )


# Each header field's bit in header_text.inexact (bridge.mail.header_text.INEXACT_BIT, the
# bits migration 8's header_words_source reads in SQLite).
_INEXACT_BIT = {"from_text": 1, "to_text": 2, "cc_text": 4, "bcc_text": 8, "subject_text": 16}


def _like_escaped(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def header_words_like(field: str, words: Sequence[str]) -> Clause | None:
    """header_words_match (bridge.store.email_query) in PostgreSQL: the Emails whose
    ``field`` is exact and holds each word of three characters or more, as ``LIKE
    '%word%'`` terms, which the GIN index of migration 8 serves (pg_trgm finds the rows
    that have the word's trigrams, and the LIKE is checked on those alone). None when no
    word is that long, as in SQLite: the rows are read then."""
    column = HEADER_COLUMNS[field]
    found = [w for w in words if len(w) >= TRIGRAM]
    if not found:
        return None
    likes = "".join(f" AND {column} LIKE ?" for _ in found)
    return Clause(
        f"SELECT email_id FROM header_text WHERE (inexact & ?) = 0{likes}",
        (_INEXACT_BIT[column], *(f"%{_like_escaped(w)}%" for w in found)),
    )


# What the store's SQL calls that PostgreSQL lacks, in the schema ``bridge_sql`` that every
# user's search_path ends with, and pg_trgm (migration 8's index), trusted since PostgreSQL
# 13: a role with CREATE on the database may add it. json_each over a text (PostgreSQL's
# own takes json) yields SQLite's key and value: an array's index and element, an object's
# name and value.
COMPAT_SCHEMA = "bridge_sql"
COMPAT_FUNCTIONS = f"""
CREATE SCHEMA IF NOT EXISTS {COMPAT_SCHEMA};
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA {COMPAT_SCHEMA};
CREATE OR REPLACE FUNCTION {COMPAT_SCHEMA}.instr(haystack text, needle text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT strpos(haystack, needle)';
CREATE OR REPLACE FUNCTION {COMPAT_SCHEMA}.json_each(document text)
    RETURNS TABLE(key text, value text) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (n - 1)::text, v FROM json_array_elements_text(
        CASE WHEN json_typeof(document::json) = 'array' THEN document::json ELSE '[]' END
    ) WITH ORDINALITY AS a(v, n)
    UNION ALL
    SELECT k, v FROM json_each_text(
        CASE WHEN json_typeof(document::json) = 'object' THEN document::json ELSE '{{}}' END
    ) AS o(k, v)
$$;
"""

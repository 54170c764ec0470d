"""The cache's SQL, written for SQLite, as PostgreSQL runs it.

The store's statements are kept portable where both databases agree (upserts with ON
CONFLICT, TRUE/FALSE, no bare columns beside aggregates, a LIMIT that is never negative).
What remains differs only in spelling, and is rewritten here, once per distinct text:

- Placeholders: ``?`` becomes ``%s`` and ``:name`` becomes ``%(name)s`` outside quoted
  literals (``'...'``); every ``%`` is doubled.
- ``BEGIN IMMEDIATE`` (SQLite's write lock at the start) is a plain ``BEGIN``: a
  PostgreSQL transaction takes its row locks as it writes.
- The schema (``postgres_ddl``): INTEGER is 64-bit (UIDs and mod-sequences exceed 2^31),
  BLOB is BYTEA, TEXT compares byte by byte as SQLite's BINARY collation does (``COLLATE
  "C"``: the same order for sorts on any server locale), and ``WITHOUT ROWID`` goes.

Two SQLite functions the statements call, ``instr`` and ``json_each`` over a JSON text,
are defined for PostgreSQL in its own schema by ``COMPAT_FUNCTIONS``.
"""

from __future__ import annotations

import functools
import re

# A quoted literal (kept), a placeholder, a named parameter or a percent sign.
_TOKEN = re.compile(r"'[^']*'|\?|(?<![:\w]):([A-Za-z_]\w*)|%")


def _rewrite(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.startswith("'"):
        return text.replace("%", "%%")  # psycopg reads every % of the text
    if text == "?":
        return "%s"
    if text == "%":
        return "%%"
    return f"%({match.group(1)})s"


@functools.lru_cache(maxsize=4096)
def postgres_sql(statement: str) -> str:
    """``statement`` (SQLite's spelling) as psycopg takes it."""
    if statement.strip().upper() == "BEGIN IMMEDIATE":
        return "BEGIN"
    return _TOKEN.sub(_rewrite, statement)


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


# What the store's SQL calls that PostgreSQL lacks, in the schema ``bridge_sql`` that every
# user's search_path ends with. json_each over a text (PostgreSQL's own takes json) yields
# SQLite's key and value: an array's index and element, an object's name and value.
COMPAT_SCHEMA = "bridge_sql"
COMPAT_FUNCTIONS = f"""
CREATE SCHEMA IF NOT EXISTS {COMPAT_SCHEMA};
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

"""The cache in PostgreSQL: every user's tables in a schema of their own, the same SQL.

``PostgresStores`` is the process's way in: a small pool of psycopg connections
(bridge.store.pg_connections), and the schema ``bridge_sql`` with the SQLite functions
the statements call (bridge.store.dialect). Each
user's ``Cache`` runs over a ``PostgresSession``: a re-entrant lock which, while held,
holds one pooled connection whose search_path starts with the user's schema. So the
cache's own lock decides how long a connection is borrowed: a transaction keeps one from
BEGIN to COMMIT (the change log and the states are written with the data, as in SQLite);
a read outside one borrows a connection for that statement alone. A pool of a few
connections then serves any number of users.

A user's schema is ``u_`` and the first 32 hex digits of the SHA-256 of the login, the
same key as the SQLite file's directory: derived from the authenticated login, never from
anything a client sends, and never more than hex digits in SQL text.

Migrations are SQLite's (bridge.store.schema), in PostgreSQL's types (one in a form of its
own: bridge.store.dialect.postgres_migrations), with the version in each schema's
``schema_version`` table; a transaction-scoped advisory lock on the schema's name keeps
two processes from migrating one user at once.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

from bridge.store import cache as sqlite_cache
from bridge.store.dialect import (
    COMPAT_FUNCTIONS,
    COMPAT_SCHEMA,
    header_words_like,
    postgres_migrations,
    postgres_sql,
    unnest_insert,
)
from bridge.store.email_query import Clause
from bridge.store.health import StorageFull, StoreUnavailable
from bridge.store.ids import random_token
from bridge.store.pg_connections import Connections
from bridge.store.records import Committed, HeaderText, SortKeys
from bridge.store.schema import SCHEMA_VERSION, SchemaTooNew

log = logging.getLogger("bridge.store")

# Seconds a request waits for a pooled connection (all busy, or the server down).
CHECKOUT_TIMEOUT = 10.0
# Schemas made ahead for new users (``_claim_spare``): this prefix and 16 hex digits.
SPARE_PREFIX = "spare_"
# Seconds after a new user took the spare schema before the next one is made.
SPARE_DELAY = 1.0
# A multi-row INSERT of this many parameters or more goes as arrays (``PostgresCache.
# _bulk_inserts``): below it, VALUES cost the server as little (and psycopg less); at a
# cold page's 50 rows, 300-600 parameters, parsing and planning them cost more than the
# insert. At most UNNEST_ROWS rows a statement.
UNNEST_FROM = 200
UNNEST_ROWS = 1000
# random_page_cost in the store's write transactions (README "The store": 1.1, the usual
# figure for data in memory or on SSDs).
WRITE_PAGE_COST = 1.1
# Changes (the cache's counter) after which a new user's tables get statistics.
ANALYZE_AFTER = 500
ANALYZED_TABLES = ("locations", "emails", "email_keywords", "header_text", "changelog")


def is_postgres(setting: str | None) -> bool:
    return bool(setting) and str(setting).startswith(("postgresql://", "postgres://"))


def redacted(dsn: str) -> str:
    """``dsn`` without its password, for messages."""
    scheme, _, rest = dsn.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not at:
        return dsn.split("?", 1)[0]
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{location.split('?', 1)[0]}"


class Rows:
    """A statement's result, read whole before the connection goes back to the pool:
    what the cache uses of a sqlite3 cursor. A statement sent inside a transaction is
    read only when asked for (``pending``): see ``PostgresSession``."""

    __slots__ = ("_next", "_pending", "_rowcount", "_rows")

    def __init__(
        self,
        rows: list[Any],
        rowcount: int,
        pending: Callable[[], tuple[list[Any], int]] | None = None,
    ) -> None:
        self._rows = rows
        self._next = 0
        self._rowcount = rowcount
        self._pending = pending

    def _resolve(self) -> list[Any]:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._rows, self._rowcount = pending()
        return self._rows

    @property
    def rowcount(self) -> int:
        self._resolve()
        return self._rowcount

    def fetchone(self) -> Any:
        rows = self._resolve()
        if self._next >= len(rows):
            return None
        self._next += 1
        return rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rows = self._resolve()
        rest = rows[self._next :]
        self._next = len(rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


def _answer(cursor: Any) -> tuple[list[Any], int]:
    """A statement's rows (none unless it returns rows) and its row count. Not by
    ``cursor.description``, which builds a column object per field each time it is read
    (4% of a warm page's time)."""
    from psycopg.pq import ExecStatus

    result = cursor.pgresult
    returned = result is not None and result.status == ExecStatus.TUPLES_OK
    return (cursor.fetchall() if returned else []), cursor.rowcount


@contextmanager
def _translated_errors() -> Iterator[None]:
    """psycopg's failures as the store's: a full disk, or a database out of reach."""
    import psycopg
    from psycopg import errors

    try:
        yield
    except errors.DiskFull as exc:
        raise StorageFull("the database") from exc
    except psycopg.OperationalError as exc:
        # Never the DSN: libpq's messages name host and port, not the password.
        raise StoreUnavailable(f"the database is unavailable: {type(exc).__name__}") from exc


class PostgresSession:
    """One user's connection to the database, borrowed from the pool while held.

    A transaction (BEGIN IMMEDIATE .. COMMIT) runs in pipeline mode: each statement is sent
    without waiting for its answer, which is read only when the cache asks for it (a
    SELECT's rows, an UPDATE's row count) or at COMMIT. The cache's writes are then not one
    round trip each: a folder's new messages cost a round trip per read, not per row. An
    error in any statement fails the whole transaction, as it would have anyway in
    PostgreSQL: at the next read, or at COMMIT, which then rolls back and raises it."""

    def __init__(self, stores: PostgresStores, schema: str) -> None:
        self._stores = stores
        self.schema = schema
        self._lock = threading.RLock()
        self._depth = 0
        self._conn: Any = None
        self._cursor: Any = None
        self._pipeline: Any = None
        self._pipeline_mode: Any = None  # the context manager that entered ``_pipeline``

    def __enter__(self) -> Self:
        self._lock.acquire()
        if self._depth == 0:
            try:
                self._conn = self._stores.checkout(self.schema)
                self._cursor = self._conn.cursor()
            except BaseException:
                self._lock.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            if self._pipeline is not None:  # a transaction left open: its connection goes
                self._end_pipeline(quietly=True)
            conn, self._conn, self._cursor = self._conn, None, None
            self._stores.checkin(conn)
        self._lock.release()

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = (), /) -> Rows:
        with self, _translated_errors():
            if self._pipeline is not None:
                if sql in ("COMMIT", "ROLLBACK"):
                    self._finish(sql)
                    return Rows([], -1)
                statement = postgres_sql(sql)
                cursor = self._conn.cursor()
                cursor.execute(statement.text, statement.arguments(parameters))
                return Rows([], -1, lambda: self._result_of(cursor))
            if sql == "BEGIN IMMEDIATE":
                self._pipeline_mode = self._conn.pipeline()
                self._pipeline = self._pipeline_mode.__enter__()
                self._cursor.execute("BEGIN")
                # SQLite's IMMEDIATE: the user's writers take turns from the start, whichever
                # instance they run in, so the change counter read next is theirs alone. (The
                # two-key form: a key space apart from the one-key locks of migrations and
                # of bridge.coordination.)
                self._cursor.execute(
                    "SELECT pg_advisory_xact_lock(1, hashtext($1))", (self.schema,)
                )
                # The writes look rows up by key (UIDs, Message-IDs, threads) in tables
                # held in memory, where the default cost (4, for disks) has the planner read
                # a small user's tables whole, and a big one's for an IN-list of hundreds.
                # This transaction's alone: Email/query's reads keep the server's setting.
                self._cursor.execute(f"SET LOCAL random_page_cost = {WRITE_PAGE_COST}")
                return Rows([], -1)
            statement = postgres_sql(sql)
            cursor = self._cursor.execute(statement.text, statement.arguments(parameters))
            return Rows(*_answer(cursor))

    @contextmanager
    def together(self) -> Iterator[None]:
        """Reads issued inside are sent without waiting for each other's answers, all read
        at the first that is asked for: one round trip, not one each. (Inside a
        transaction everything is pipelined already.)"""
        with self:
            if self._pipeline is not None:
                yield
                return
            self._pipeline_mode = self._conn.pipeline()
            self._pipeline = self._pipeline_mode.__enter__()
            try:
                yield
            except BaseException:
                self._end_pipeline(quietly=True)
                raise
            with _translated_errors():
                self._end_pipeline(quietly=False)

    def _result_of(self, cursor: Any) -> tuple[list[Any], int]:
        """A pipelined statement's answer, waiting for it (and those sent before) if needed."""
        with self, _translated_errors():
            if cursor.pgresult is None:
                self._pipeline.sync()
            return _answer(cursor)

    def _finish(self, sql: str) -> None:
        """COMMIT or ROLLBACK a pipelined transaction and leave pipeline mode."""
        if sql == "ROLLBACK":
            self._end_pipeline(quietly=True)  # the error that led here is being raised
            self._cursor.execute("ROLLBACK")
            return
        try:
            self._cursor.execute("COMMIT")
            self._end_pipeline(quietly=False)
        except BaseException:
            self._end_pipeline(quietly=True)
            with contextlib.suppress(Exception):  # the connection may be gone: not lent again
                self._cursor.execute("ROLLBACK")
            raise

    def _end_pipeline(self, *, quietly: bool) -> None:
        mode, self._pipeline, self._pipeline_mode = self._pipeline_mode, None, None
        if mode is None:
            return
        try:
            mode.__exit__(None, None, None)
        except Exception:
            if not quietly:
                raise

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Rows:
        with self, _translated_errors():
            statement = postgres_sql(sql)
            self._cursor.executemany(
                statement.text, [statement.arguments(values) for values in seq_of_parameters]
            )
            return Rows([], -1 if self._pipeline is not None else self._cursor.rowcount)

    def run_script(self, script: str) -> None:
        """Statements without parameters, in one round trip."""
        with self, _translated_errors():
            self._conn.execute(script)

    def run_apart(self, script: str) -> None:
        """``run_script`` on a connection of its own, outside the session's lock."""
        with _translated_errors():
            conn = self._stores.checkout(self.schema)
            try:
                conn.execute(script)
            finally:
                self._stores.checkin(conn)

    def close(self) -> None:
        """Nothing to close: connections belong to the pool."""


class PostgresCache(sqlite_cache.Cache):
    """The cache over a ``PostgresSession``: the same statements, in the user's schema."""

    pipelines = True

    def __init__(self, session: PostgresSession) -> None:
        self._session = session
        # The counter when the tables were last analyzed (statistics persist on the server:
        # an existing user's tables have theirs).
        self._analyzed_at = 0
        self._analyzing = threading.Lock()
        # Rows written outside the change log since the store opened (the indexer's header
        # texts and summaries' sort keys): they change the statistics as much.
        self._unlogged_writes = 0
        # shared: other instances may write the same schema (README "Several instances").
        super().__init__(session, lock=session, shared=True)  # type: ignore[arg-type]
        self._analyzed_at = self._counter  # as just read at open

    @contextmanager
    def transaction(self) -> Iterator[Committed]:
        with super().transaction() as committed:
            yield committed
        if self._depth == 0:
            self._analyze_when_grown()

    def _analyze_when_grown(self) -> None:
        """PostgreSQL plans from table statistics, which a new user's tables lack until
        autovacuum's next round (a minute or more): a folder's first page then costs a
        scan of the whole folder (35 ms instead of 0.2 ms for 1,000 messages). So the
        tables are analyzed here once the change counter has grown by half since the last
        time (and by ANALYZE_AFTER at least): a few times while a cache fills. On a
        connection of its own, beside the user's requests (ANALYZE blocks no reads or
        writes), one at a time."""
        # The counter as this process last saw it (no read: a round trip per transaction).
        writes = self._counter + self._unlogged_writes
        grown = writes - self._analyzed_at
        if grown < max(ANALYZE_AFTER, self._analyzed_at // 2) or self._analyzing.locked():
            return
        self._analyzed_at = writes
        threading.Thread(target=self._analyze, name="store-analyze", daemon=True).start()

    def _analyze(self) -> None:
        with self._analyzing:
            try:
                self._session.run_apart(f"ANALYZE {', '.join(ANALYZED_TABLES)}")
            except Exception as exc:  # statistics are an optimization: never a failure
                log.debug("ANALYZE of %s failed: %s", self._session.schema, exc)

    def set_sort_keys(self, keys: dict[str, SortKeys]) -> None:
        # hasAttachment among them: until analyzed, the planner takes every Email's as
        # unknown (a hasAttachment page at 50,000 Emails: 215 ms against SQLite's 23).
        super().set_sort_keys(keys)
        self._unlogged_writes += len(keys)
        self._analyze_when_grown()

    def set_header_texts(self, mailbox_id: str, texts: dict[int, HeaderText]) -> None:
        super().set_header_texts(mailbox_id, texts)
        self._unlogged_writes += len(texts)
        self._analyze_when_grown()

    def header_words_match(self, field: str, words: Sequence[str]) -> Clause | None:
        return header_words_like(field, words)

    def _bulk_inserts(
        self, head: str, row: str, rows: Sequence[Sequence[Any]]
    ) -> Iterator[tuple[str, list[Any]]]:
        """Many rows as arrays, a column each (bridge.store.dialect.unnest_insert)."""
        if len(rows) * len(rows[0]) < UNNEST_FROM:
            yield from super()._bulk_inserts(head, row, rows)
            return
        statement = unnest_insert(head, row)
        for start in range(0, len(rows), UNNEST_ROWS):
            chunk = rows[start : start + UNNEST_ROWS]
            yield statement, [list(column) for column in zip(*chunk, strict=True)]

    def share(self, test: Clause) -> float:
        """Judged on the newest SHARE_SAMPLE Emails: PostgreSQL counts a column's matches
        and the table's rows by reading them (5-12 ms each at 50,000 Emails), where SQLite
        counts an index's entries (bridge.store.email_query.shaped)."""
        return self._sampled_share("SELECT * FROM emails ORDER BY received_at DESC", test)

    def _upgrade(self, conn: object) -> None:
        self.took_spare = migrate(self._session, claim_spare=True)

    @property
    def damaged(self) -> bool:
        return False  # the server keeps its pages whole; errors are raised, not remembered

    def rebuild(self) -> None:
        """Drop the user's schema and start an empty one (a new epoch)."""
        with self._lock:
            self._session.run_script(f'DROP SCHEMA IF EXISTS "{self._session.schema}" CASCADE')
            log.warning("store schema %s dropped, rebuilding", self._session.schema)
            self._attach(self._session)  # type: ignore[arg-type]

    def close(self) -> None:
        """Nothing to close: the pool is the process's (``PostgresStores.close``)."""

    @contextmanager
    def erasing(self) -> Iterator[Any]:
        # No free pages to overwrite from here: a deleted row's bytes stay in the table's
        # file until VACUUM reuses the space (autovacuum, on PostgreSQL's schedule).
        with self.sql() as conn:
            yield conn


def migrate(
    session: PostgresSession, *, claim_spare: bool = False, epoch: str | None = None
) -> bool:
    """Bring the session's schema to SCHEMA_VERSION, in one transaction; a new one is a
    spare renamed (``claim_spare``) when there is one. Whether a spare was taken. ``epoch``:
    the new cache's (a spare's, made ahead with it: its user then writes none at open).

    A new user's first request waits for this: the lock, the claim and the schema made
    if still missing go out as one script, and one statement after reads the version
    (ten statements before, a round trip each)."""
    schema = session.schema
    if not schema.replace("_", "").isalnum():  # written into the statements below
        raise ValueError(f"not a store schema name: {schema!r}")
    with session:
        try:
            session.run_script(
                f"BEGIN; SELECT pg_advisory_xact_lock(hashtext('{schema}'));"
                + (_CLAIM_SPARE.replace("SCHEMA_NAME", schema) if claim_spare else "")
                + f'CREATE SCHEMA IF NOT EXISTS "{schema}";'
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_version (version integer NOT NULL)'
            )
            version, claimed = session.execute(
                "SELECT (SELECT max(version) FROM schema_version), "
                "current_setting('bridge.took_spare', true) = 'yes'"
            ).fetchone()
            version = version or 0
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(f"store schema {version} is newer than this bridge")
            if version < SCHEMA_VERSION:
                session.run_script(postgres_migrations(version, SCHEMA_VERSION))
                session.execute("DELETE FROM schema_version")
                session.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            if epoch is not None:
                session.execute(
                    "INSERT INTO meta(key, value) VALUES ('epoch', ?) ON CONFLICT DO NOTHING",
                    (epoch,),
                )
        except BaseException:
            with contextlib.suppress(Exception):
                session.execute("ROLLBACK")
            raise
        session.execute("COMMIT")
    return bool(claimed)


# A spare schema (made ahead, empty) renamed to the new user's, if theirs does not exist
# yet: a new user then costs a rename, not the creation of every table (40 ms and more).
# Another process may rename the same spare first: that one is passed over (its ALTER
# fails once the other commits) for the next, or none. Says so in a setting of the
# transaction's, which migrate reads with the version.
_CLAIM_SPARE = f"""
DO $claim$
DECLARE
    spare name;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'SCHEMA_NAME') THEN
        RETURN;
    END IF;
    FOR spare IN
        SELECT nspname FROM pg_namespace WHERE left(nspname, {len(SPARE_PREFIX)}) = '{SPARE_PREFIX}'
    LOOP
        BEGIN
            EXECUTE format('ALTER SCHEMA %I RENAME TO %I', spare, 'SCHEMA_NAME');
            PERFORM set_config('bridge.took_spare', 'yes', true);
            RETURN;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
END $claim$;
"""


class PostgresStores:
    """Every user's store in one PostgreSQL database, through one connection pool."""

    def __init__(self, dsn: str, max_connections: int) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "the PostgreSQL store needs psycopg: pip install 'jmap-bridge[postgresql]'"
            ) from exc

        self._dsn = dsn
        self._pool = Connections(dsn, max_connections, CHECKOUT_TIMEOUT)
        self._ready = False
        self._ready_lock = threading.Lock()
        # What every search_path ends with: bridge_sql, and the schema of pg_trgm when the
        # database had it elsewhere already (its operator classes are named unqualified).
        self._search_tail = COMPAT_SCHEMA
        self._making_spare = threading.Lock()
        self._spare_timer: threading.Timer | None = None
        self._closed = False

    def _prepare(self) -> None:
        """Define the SQLite functions and make a spare schema, once: at start (warm-up),
        or at the first user's open when the database was down then (a database out of
        reach does not keep bridge from starting), on a connection of its own, so that a
        database out of reach fails the request at once rather than after the pool's
        wait."""
        with self._ready_lock:
            if self._ready:
                return
            with _translated_errors(), self._pool.connect() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", (COMPAT_SCHEMA,))
                conn.execute(COMPAT_FUNCTIONS)
                trigrams = conn.execute(
                    "SELECT extnamespace::regnamespace::text FROM pg_extension "
                    "WHERE extname = 'pg_trgm'"
                ).fetchone()[0]
            if trigrams != COMPAT_SCHEMA:
                self._search_tail = f"{COMPAT_SCHEMA}, {trigrams}"
            self._ready = True
        # The first new user's schema, made now: at start (warm-up) rather than beside
        # that user's first request.
        self._make_spare()

    def checkout(self, schema: str) -> Any:
        """A connection whose search_path starts with ``schema``."""
        self._prepare()
        with _translated_errors():
            conn = self._pool.get(schema)
            try:
                if self._pool.schema_of.get(conn) != schema:
                    self._pool.schema_of.pop(conn, None)
                    conn.execute(f'SET search_path TO "{schema}", {self._search_tail}')
                    self._pool.schema_of[conn] = schema
            except BaseException:
                self._pool.put(conn)
                raise
        return conn

    def checkin(self, conn: Any) -> None:
        self._pool.put(conn)

    def open(self, key: str) -> PostgresCache:
        """The store of the user whose key (hex digits) is ``key``."""
        if not key.isalnum():
            raise ValueError("a store key is letters and digits")
        cache = PostgresCache(PostgresSession(self, f"u_{key}"))
        if cache.took_spare:
            self._make_spare_later()
        return cache

    def _make_spare_later(self) -> None:
        """A new spare schema for the next new user, in the background, once the user who
        took the last one has had their first page: its CREATE TABLEs (40-60 ms of the
        database's time) would otherwise compete with that page."""
        if self._making_spare.locked() or (self._spare_timer and self._spare_timer.is_alive()):
            return
        self._spare_timer = threading.Timer(SPARE_DELAY, self._make_spare)
        self._spare_timer.name, self._spare_timer.daemon = "store-spare", True
        self._spare_timer.start()

    def _make_spare(self) -> None:
        with self._making_spare:
            if self._closed:
                return
            try:
                with _translated_errors(), self._pool.connect() as conn:
                    spare = conn.execute(
                        "SELECT 1 FROM pg_namespace WHERE left(nspname, $1) = $2",
                        (len(SPARE_PREFIX), SPARE_PREFIX),
                    ).fetchone()
                if spare is None:  # one is enough: new users come one request at a time
                    session = PostgresSession(self, SPARE_PREFIX + secrets.token_hex(8))
                    migrate(session, epoch=random_token(6))
            except Exception as exc:  # a spare only saves time: never a failure
                log.debug("no spare store schema made: %s", exc)

    def check(self) -> str | None:
        """None when the database answers; else why not (for /readyz)."""
        try:
            self._prepare()
            conn = self.checkout(COMPAT_SCHEMA)
            try:
                with _translated_errors():
                    conn.execute("SELECT 1")
            finally:
                self.checkin(conn)
        except StoreUnavailable as exc:
            return str(exc)
        return None

    def close(self) -> None:
        """Close the pool once no spare schema is being made (none is started after)."""
        with self._making_spare:
            self._closed = True
            self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStores({redacted(self._dsn)!r})"

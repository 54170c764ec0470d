"""The PostgreSQL store itself: its migrations, one schema per user behind a shared pool,
and what a client sees when the database is out of reach. (The rest of the suite runs on
it with BRIDGE_TEST_STORE=postgresql.)"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from bridge.store.dialect import postgres_migrations, postgres_sql
from bridge.store.health import StoreUnavailable
from bridge.store.postgres import WRITE_PAGE_COST, PostgresStores, redacted
from bridge.store.records import HeaderText, NewMessage
from bridge.store.schema import SCHEMA_VERSION, SchemaTooNew
from tests.integration.server import BridgeServer, free_port
from tests.integration.upstreams import Upstream
from tests.support import stores
from tests.support.stores import add_mailbox


@pytest.fixture(scope="module")
def database() -> str:
    return stores.cluster().create_database(f"store_{secrets.token_hex(4)}")


@pytest.fixture
def pg_stores(database: str) -> Iterator[PostgresStores]:
    # One connection: every user's statements share it, search_path switching each time.
    opened = PostgresStores(database, max_connections=1)
    yield opened
    opened.close()


FIRST = NewMessage(uid=1, email_key="k1", keywords=frozenset())


def _at_version(database: str, key: str, version: int) -> None:
    """A user's schema as a bridge of migration ``version`` left it, with an Email."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA u_{key}")
        conn.execute(f"SET search_path TO u_{key}, bridge_sql")
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        conn.execute(postgres_migrations(0, version))
        conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
        conn.execute("INSERT INTO meta(key, value) VALUES ('epoch', 'kept')")
        conn.execute("INSERT INTO emails(id, thread_id, keywords) VALUES ('e1', 't1', '$seen x')")


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_an_older_schema_moves_up_and_keeps_its_data(
    pg_stores: PostgresStores, database: str, version: int
) -> None:
    # The functions the migrations call exist once the pool has opened.
    assert pg_stores.check() is None
    key = secrets.token_hex(16)
    _at_version(database, key, version)
    cache = pg_stores.open(key)
    assert cache.epoch == "kept"
    assert [row[0] for row in cache.email_facts()] == ["e1"]
    with psycopg.connect(database) as conn:
        conn.execute(f"SET search_path TO u_{key}")
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        # Migration 7 split the keywords of the Emails already there.
        keywords = conn.execute("SELECT keyword FROM email_keywords ORDER BY keyword").fetchall()
        assert keywords == ([("$seen",), ("x",)] if version < 7 else [])


def test_a_schema_newer_than_the_code_is_refused(pg_stores: PostgresStores, database: str) -> None:
    key = secrets.token_hex(16)
    _at_version(database, key, SCHEMA_VERSION)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"UPDATE u_{key}.schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew):
        pg_stores.open(key)


def test_the_header_index_gets_its_key_and_a_trigram_index_that_serves_its_words(
    pg_stores: PostgresStores, database: str
) -> None:
    """Migration 8 in PostgreSQL's form: header_text keeps its rows and gets the entry key;
    pg_trgm's GIN index answers a word of an exact field (header_words_like) as FTS5 does
    in SQLite, leaving out inexact fields and rows read with escapes (read again)."""
    assert pg_stores.check() is None
    key = secrets.token_hex(16)
    _at_version(database, key, 7)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"SET search_path TO u_{key}")
        conn.cursor().executemany(
            "INSERT INTO header_text(email_id, from_text, to_text, subject_text, inexact) "
            "VALUES (%s, %s, %s, %s, %s)",
            [
                ("e1", "ALICE SMITH", "BOB", "BUDGET 100%", 0),
                ("e2", "ALICE JONES", "CAROL", "", 1),
                ("e3", None, None, None, None),
                ("e4", "ZOE EX TEST", "U0418 U0432 IVAN RU TEST", "", 0),
            ],
        )
    cache = pg_stores.open(key)
    assert cache.header_backfill_due()  # e3 unknown, e4's escapes read again

    def hits(field: str, *words: str) -> list[str]:
        match = cache.header_words_match(field, words)
        assert match is not None
        with cache.sql() as db:
            rows = db.execute(
                f"SELECT email_id FROM header_text WHERE email_id IN ({match.sql}) ORDER BY 1",
                match.params,
            )
            return [row[0] for row in rows]

    assert hits("from", "LIC") == ["e1"]  # e2's From is inexact
    assert hits("from", "ALICE", "SMI") == ["e1"]
    assert hits("to", "CAROL") == ["e2"]
    assert hits("from", "lic") == []  # case-mapped text, matched case by case
    assert hits("from", "ZOE") == []
    assert hits("subject", "100%") == ["e1"]  # LIKE's own characters match as they are
    assert hits("subject", "1_0") == []
    assert cache.header_words_match("from", ["AL"]) is None  # too short for trigrams
    with cache.sql() as db:
        rows = db.execute("SELECT email_id, entry, inexact FROM header_text ORDER BY entry")
        assert rows.fetchall() == [("e1", 1, 0), ("e2", 2, 1), ("e3", 3, None), ("e4", 4, None)]
        # The planner knows how many rows have each field exact (PostgreSQL 14 and later).
        stats = db.execute(
            "SELECT stxname FROM pg_statistic_ext WHERE stxrelid = 'header_text'::regclass"
        )
        assert stats.fetchall() == [("header_text_exact",)]
    # The trigram index can serve the word (on four rows the planner would rather scan).
    match = cache.header_words_match("subject", ["BUDGET"])
    assert match is not None
    with psycopg.connect(database, cursor_factory=psycopg.RawCursor) as conn:
        conn.execute(f"SET search_path TO u_{key}, bridge_sql")
        conn.execute("SET enable_seqscan = off")
        sql = postgres_sql(match.sql).text
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {sql}", match.params))
    assert "header_words" in plan


def test_a_role_that_only_may_create_in_its_database_runs_the_store() -> None:
    """No superuser: a role with CREATE on the database makes bridge's schemas and adds
    pg_trgm (a trusted extension), and a user's header words are found through it."""
    cluster = stores.cluster()
    name, password = f"owner_{secrets.token_hex(4)}", secrets.token_hex(12)
    database = cluster.create_database(f"store_{secrets.token_hex(4)}")
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        conn.execute(f"GRANT CREATE ON DATABASE {database.rsplit('/', 1)[1]} TO {name}")
    own = database.replace(cluster.dsn().split("@")[0], f"postgresql://{name}:{password}")
    assert own != database
    opened = PostgresStores(own, max_connections=2)
    try:
        cache = opened.open(secrets.token_hex(16))
        inbox = add_mailbox(cache, "INBOX")
        text = HeaderText("ALICE SMITH", "BOB", "", "", "BUDGET")
        added = msgspec.structs.replace(FIRST, header_text=text)
        with cache.transaction():
            cache.apply_folder_delta(inbox, added=[added])
        assert cache.header_common("from", ["SMITH"]) is True
        assert cache.header_common("from", ["JONES"]) is False
    finally:
        opened.close()


def test_pg_trgm_added_before_in_another_schema_serves_the_store() -> None:
    """A database whose pg_trgm lives elsewhere (public): bridge's search_path finds its
    operator classes there."""
    database = stores.cluster().create_database(f"store_{secrets.token_hex(4)}")
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_trgm SCHEMA public")
    opened = PostgresStores(database, max_connections=2)
    try:
        cache = opened.open(secrets.token_hex(16))
        inbox = add_mailbox(cache, "INBOX")
        added = msgspec.structs.replace(FIRST, header_text=HeaderText("ZOE", "", "", "", ""))
        with cache.transaction():
            cache.apply_folder_delta(inbox, added=[added])
        assert cache.header_common("from", ["ZOE"]) is True
    finally:
        opened.close()


def test_each_user_sees_only_their_own_schema_through_one_shared_connection(
    pg_stores: PostgresStores,
) -> None:
    alice, bob = pg_stores.open(secrets.token_hex(16)), pg_stores.open(secrets.token_hex(16))
    inbox = add_mailbox(alice, "Alice's")
    add_mailbox(bob, "Bob's")
    with alice.transaction():
        alice.apply_folder_delta(inbox, added=[FIRST])
    assert [m.name for m in alice.mailboxes()] == ["Alice's"]
    assert [m.name for m in bob.mailboxes()] == ["Bob's"]
    assert len(alice.email_facts()) == 1
    assert bob.email_facts() == []
    assert alice.epoch != bob.epoch
    # A state of one user means nothing to the other.
    assert bob.decode_state(alice.encode_state(alice.state("Email"))) is None


def test_a_failed_transaction_leaves_no_trace_and_the_connection_works(
    pg_stores: PostgresStores,
) -> None:
    cache = pg_stores.open(secrets.token_hex(16))
    inbox = add_mailbox(cache, "INBOX")
    state = cache.state("Email")
    with pytest.raises(RuntimeError), cache.transaction():
        cache.apply_folder_delta(inbox, added=[FIRST])
        raise RuntimeError("the sync failed half way")
    assert cache.email_facts() == []
    assert cache.state("Email") == state
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[FIRST])
    assert cache.state("Email") > state


def test_write_transactions_plan_for_data_in_memory_and_reads_keep_the_servers_costs(
    pg_stores: PostgresStores,
) -> None:
    # A write transaction looks rows up by key: index probes, not a small user's tables
    # read whole. Its setting ends with it: the pooled connection's next reader (an
    # Email/query) plans with the server's own.
    cache = pg_stores.open(secrets.token_hex(16))
    default = cache._conn.execute("SHOW random_page_cost").fetchone()[0]
    with cache.transaction():
        inside = cache._conn.execute("SHOW random_page_cost").fetchone()[0]
    assert (float(inside), cache._conn.execute("SHOW random_page_cost").fetchone()[0]) == (
        WRITE_PAGE_COST,
        default,
    )
    assert float(default) != WRITE_PAGE_COST


def test_a_reopened_store_keeps_its_data_and_epoch(database: str) -> None:
    key = secrets.token_hex(16)
    first = PostgresStores(database, max_connections=2)
    cache = first.open(key)
    add_mailbox(cache, "Kept")
    epoch, state = cache.epoch, cache.state("Mailbox")
    first.close()
    second = PostgresStores(database, max_connections=2)
    again = second.open(key)
    assert (again.epoch, again.state("Mailbox")) == (epoch, state)
    assert [m.name for m in again.mailboxes()] == ["Kept"]
    assert again.decode_state(again.encode_state(state)) == state
    second.close()


@pytest.mark.upstreams("full")  # about the store: one upstream is enough
def test_the_password_of_the_store_never_shows(
    upstream: Upstream,
    tmp_path: Path,
    account: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A database out of reach: requests answer 503 (or serverUnavailable), /readyz names
    the store; no message and no log line holds the URL's password."""
    password = "store-pw-" + secrets.token_hex(8)
    dsn = f"postgresql://bridge:{password}@127.0.0.1:{free_port()}/nothing"
    assert password not in redacted(dsn)
    caplog.set_level(logging.DEBUG)
    with BridgeServer(upstream.host, upstream.port, tmp_path, store=dsn) as server:
        jmap = server.client(*account)
        response = jmap.post(
            {"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
             "methodCalls": [["Mailbox/get", {"accountId": "x"}, "0"]]}
        )  # fmt: skip
        assert response.status_code == 503, response.text
        assert password not in response.text
        ready = jmap.http.get("/readyz")
        assert ready.status_code == 503
        assert "store" in ready.json()["failed"]
        assert password not in ready.text
        jmap.close()
    assert password not in caplog.text
    assert "store" in caplog.text  # the failure was logged, without the password


def _spares(database: str) -> list[str]:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'spare\\_%' ORDER BY 1"
        ).fetchall()
    return [row[0] for row in rows]


def _wait_for_spare(database: str, other_than: str = "") -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spares = [name for name in _spares(database) if name != other_than]
        if spares:
            return spares[0]
        time.sleep(0.05)
    raise AssertionError("no spare schema was made")


def test_a_new_user_takes_a_schema_made_ahead_and_another_is_made() -> None:
    database = stores.cluster().create_database(f"spares_{secrets.token_hex(4)}")
    opened = PostgresStores(database, max_connections=2)
    try:
        assert opened.check() is None  # the first spare is made once the store is reached
        spare = _wait_for_spare(database)
        first = opened.open(secrets.token_hex(16))
        assert first.took_spare
        assert spare not in _spares(database)
        assert first.mailboxes() == [] and first.epoch
        add_mailbox(first, "Mine")
        # The next spare is another schema: nothing of the first user's is in it.
        _wait_for_spare(database, other_than=spare)
        second = opened.open(secrets.token_hex(16))
        assert second.took_spare
        assert second.mailboxes() == [] and second.epoch != first.epoch
        assert [m.name for m in first.mailboxes()] == ["Mine"]
    finally:
        opened.close()


def test_a_spare_another_process_takes_first_leaves_the_user_a_schema_of_their_own() -> None:
    database = stores.cluster().create_database(f"race_{secrets.token_hex(4)}")
    opened = PostgresStores(database, max_connections=2)
    try:
        assert opened.check() is None
        spare = _wait_for_spare(database)
        with psycopg.connect(database) as rival:
            # Another process renames the spare and has not committed yet.
            rival.execute(f'ALTER SCHEMA "{spare}" RENAME TO u_{secrets.token_hex(16)}')
            result: list[Any] = []
            opening = threading.Thread(
                target=lambda: result.append(opened.open(secrets.token_hex(16)))
            )
            opening.start()
            opening.join(0.5)
            assert opening.is_alive()  # waiting for the rival's rename
            rival.commit()
        opening.join(30)
        (cache,) = result
        assert not cache.took_spare
        assert cache.mailboxes() == [] and cache.epoch
        add_mailbox(cache, "Mine")
        assert [m.name for m in cache.mailboxes()] == ["Mine"]
    finally:
        opened.close()


def test_a_connection_the_server_dropped_fails_one_statement_then_a_new_one_serves() -> None:
    database = stores.cluster().create_database(f"dropped_{secrets.token_hex(4)}")
    pg_stores = PostgresStores(database, max_connections=1)
    cache = pg_stores.open(secrets.token_hex(16))
    add_mailbox(cache, "Kept")
    _wait_for_spare(database)  # nothing else uses the one connection from now on
    time.sleep(0.2)
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    try:
        with pytest.raises(StoreUnavailable):
            cache.mailboxes()
        assert [m.name for m in cache.mailboxes()] == ["Kept"]
    finally:
        pg_stores.close()

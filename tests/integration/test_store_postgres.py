"""The PostgreSQL store itself: its migrations, one schema per user behind a shared pool,
and what a client sees when the database is out of reach. (The rest of the suite runs on
it with BRIDGE_TEST_STORE=postgresql.)"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bridge.store.dialect import postgres_ddl
from bridge.store.health import StoreUnavailable
from bridge.store.postgres import PostgresStores, redacted
from bridge.store.records import FolderState, MailboxRecord, NewMessage
from bridge.store.schema import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew
from tests.integration.server import BridgeServer, free_port
from tests.integration.upstreams import Upstream
from tests.support import stores


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
        conn.execute(postgres_ddl("".join(MIGRATIONS[:version])))
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
        assert keywords == [("$seen",), ("x",)]


def test_a_schema_newer_than_the_code_is_refused(pg_stores: PostgresStores, database: str) -> None:
    key = secrets.token_hex(16)
    _at_version(database, key, SCHEMA_VERSION)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"UPDATE u_{key}.schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew):
        pg_stores.open(key)


def _folder(cache: object, name: str) -> str:
    mailbox_id = cache.mailbox_id_for(f"guid:{name}")  # type: ignore[attr-defined]
    with cache.transaction():  # type: ignore[attr-defined]
        cache.add_mailbox(  # type: ignore[attr-defined]
            MailboxRecord(id=mailbox_id, upstream_key=f"guid:{name}", name=name)
        )
        cache.set_synced(mailbox_id, FolderState(uidvalidity=1, uidnext=1, messages=0))  # type: ignore[attr-defined]
    return mailbox_id


def test_each_user_sees_only_their_own_schema_through_one_shared_connection(
    pg_stores: PostgresStores,
) -> None:
    alice, bob = pg_stores.open(secrets.token_hex(16)), pg_stores.open(secrets.token_hex(16))
    inbox = _folder(alice, "Alice's")
    _folder(bob, "Bob's")
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
    inbox = _folder(cache, "INBOX")
    state = cache.state("Email")
    with pytest.raises(RuntimeError), cache.transaction():
        cache.apply_folder_delta(inbox, added=[FIRST])
        raise RuntimeError("the sync failed half way")
    assert cache.email_facts() == []
    assert cache.state("Email") == state
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[FIRST])
    assert cache.state("Email") > state


def test_a_reopened_store_keeps_its_data_and_epoch(database: str) -> None:
    key = secrets.token_hex(16)
    first = PostgresStores(database, max_connections=2)
    cache = first.open(key)
    _folder(cache, "Kept")
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
        _folder(first, "Mine")
        # The next spare is another schema: nothing of the first user's is in it.
        _wait_for_spare(database, other_than=spare)
        second = opened.open(secrets.token_hex(16))
        assert second.took_spare
        assert second.mailboxes() == [] and second.epoch != first.epoch
        assert [m.name for m in first.mailboxes()] == ["Mine"]
    finally:
        opened.close()


def test_a_connection_the_server_dropped_fails_one_statement_then_a_new_one_serves() -> None:
    database = stores.cluster().create_database(f"dropped_{secrets.token_hex(4)}")
    pg_stores = PostgresStores(database, max_connections=1)
    cache = pg_stores.open(secrets.token_hex(16))
    _folder(cache, "Kept")
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

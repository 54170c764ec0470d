"""Which store the tests' bridges and caches use: SQLite (the default), or PostgreSQL when
``BRIDGE_TEST_STORE=postgresql`` (README "Try it").

On PostgreSQL one throwaway cluster (tests/support/postgres.py) serves the whole process,
started at first use and stopped at exit; the bridges a test starts on one data directory
get a database of their own (``store_for``), as bridges in the tests reuse logins and a
restarted one must find its data, and each cache a unit test opens gets a schema of its
own in one shared database (``open_test_cache``).
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import shutil
import threading
from pathlib import Path

from bridge.store.cache import Cache
from bridge.store.records import FolderState, MailboxRecord
from tests.support.postgres import PostgresCluster

STORE = os.environ.get("BRIDGE_TEST_STORE", "sqlite")
if STORE not in ("sqlite", "postgresql"):
    raise RuntimeError(f"BRIDGE_TEST_STORE={STORE!r}: sqlite or postgresql")

_cluster: PostgresCluster | None = None
_cluster_lock = threading.Lock()
_numbers = itertools.count(1)
_unit_stores: object = None
_by_data_dir: dict[str, str] = {}


def on_postgres() -> bool:
    return STORE == "postgresql"


def cluster() -> PostgresCluster:
    """The process's cluster, started at first use."""
    global _cluster
    with _cluster_lock:
        if _cluster is None:
            _cluster = PostgresCluster().start()
            atexit.register(stop)
        return _cluster


def started_cluster() -> PostgresCluster | None:
    return _cluster


def stop() -> None:
    global _cluster, _unit_stores
    with _cluster_lock:
        if _unit_stores is not None:
            _unit_stores.close()  # type: ignore[attr-defined]
            _unit_stores = None
        if _cluster is not None:
            _cluster.stop()
            _cluster = None


def fresh_store() -> str | None:
    """The ``store`` setting of a new bridge: None (SQLite under its data dir), or the URL
    of a new empty database."""
    if not on_postgres():
        return None
    return cluster().create_database(f"bridge_{os.getpid()}_{next(_numbers)}")


def store_for(data_dir: Path) -> str | None:
    """The ``store`` setting of a bridge on ``data_dir``: on PostgreSQL the same database
    for every bridge on that directory (a restart finds its data), until ``lose_store``."""
    if not on_postgres():
        return None
    key = str(data_dir.resolve())
    with _cluster_lock:
        known = _by_data_dir.get(key)
    if known is None:
        known = fresh_store()
        with _cluster_lock:
            _by_data_dir[key] = known  # type: ignore[assignment]
    return known


def lose_store(data_dir: Path) -> None:
    """The users' caches of ``data_dir`` are gone: the files, or the database's data."""
    shutil.rmtree(data_dir, ignore_errors=True)
    with _cluster_lock:
        _by_data_dir.pop(str(data_dir.resolve()), None)


def open_test_cache() -> Cache:
    """An empty cache of the store under test: in memory, or a new schema."""
    global _unit_stores
    if not on_postgres():
        return Cache.open(":memory:")
    from bridge.store.postgres import PostgresStores

    if _unit_stores is None:
        _unit_stores = PostgresStores(fresh_store() or "", max_connections=4)
    return _unit_stores.open(secrets.token_hex(16))  # type: ignore[attr-defined]


def add_mailbox(cache: Cache, name: str, role: str | None = None) -> str:
    """An indexed folder in a unit test's cache: its counts follow the mail in it."""
    mailbox_id = cache.mailbox_id_for(f"guid:{name}")
    with cache.transaction():
        cache.add_mailboxes(
            [MailboxRecord(id=mailbox_id, upstream_key=f"guid:{name}", name=name, role=role)]
        )
        cache.set_synced(mailbox_id, FolderState(uidvalidity=1, uidnext=1, messages=0))
    return mailbox_id

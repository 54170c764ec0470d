"""Which store the tests' bridges and caches use: SQLite (the default), or PostgreSQL when
``BRIDGE_TEST_STORE=postgresql`` (README "Try it").

On PostgreSQL one throwaway cluster (tests/support/postgres.py) serves the whole process,
started at first use and stopped at exit; each bridge a test starts gets a database of its
own (``fresh_store``), as bridges in the tests reuse logins, and each cache a unit test
opens gets a schema of its own in one shared database (``open_test_cache``).
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import threading

from bridge.store.cache import Cache
from tests.support.postgres import PostgresCluster

STORE = os.environ.get("BRIDGE_TEST_STORE", "sqlite")
if STORE not in ("sqlite", "postgresql"):
    raise RuntimeError(f"BRIDGE_TEST_STORE={STORE!r}: sqlite or postgresql")

_cluster: PostgresCluster | None = None
_cluster_lock = threading.Lock()
_numbers = itertools.count(1)
_unit_stores: object = None


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


def open_test_cache() -> Cache:
    """An empty cache of the store under test: in memory, or a new schema."""
    global _unit_stores
    if not on_postgres():
        return Cache.open(":memory:")
    from bridge.store.postgres import PostgresStores

    if _unit_stores is None:
        _unit_stores = PostgresStores(fresh_store() or "", max_connections=4)
    return _unit_stores.open(secrets.token_hex(16))  # type: ignore[attr-defined]

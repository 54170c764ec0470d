"""The throwaway PostgreSQL of tests/support/postgres.py: it serves logins with its password
only, makes databases, and leaves nothing behind when stopped."""

from __future__ import annotations

import socket

import psycopg
import pytest

from tests.support.postgres import PostgresCluster


def test_cluster_serves_its_databases_and_leaves_no_trace() -> None:
    cluster = PostgresCluster().start()
    try:
        dsn = cluster.create_database("made_here")
        with psycopg.connect(dsn) as connection:
            connection.execute("CREATE TABLE t (x integer)")
            connection.execute("INSERT INTO t VALUES (7)")
            assert connection.execute("SELECT x FROM t").fetchall() == [(7,)]
            assert connection.execute("SELECT current_database()").fetchone() == ("made_here",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(dsn.replace(cluster.password, "wrong"), connect_timeout=5)
    finally:
        cluster.stop()
    assert not cluster.base_dir.exists()
    with pytest.raises(OSError), socket.create_connection((cluster.host, cluster.port), timeout=2):
        pass

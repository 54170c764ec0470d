"""What several bridge processes serving the same users agree on (README "Several
instances"): per-user leases (one watcher, one background indexer per user), one sync at a
time per user, whether the watcher vouches for the cache, and the states each request
publishes, so that push reaches listeners on every process.

``open_coordinator`` picks the implementation: ``process`` (one process: everything stays
in memory, the cheap case of the same code path), ``data-dir`` (a SQLite file and lock
files in the shared data directory: processes on one machine) or a ``postgresql://`` URL
(instances on any number of machines, bridge.coordination.postgres).
"""

from __future__ import annotations

from pathlib import Path

from bridge.coordination.base import Coordinator, UserLock
from bridge.coordination.local import LocalCoordinator
from bridge.coordination.sqlite import SqliteCoordinator

__all__ = ["Coordinator", "LocalCoordinator", "SqliteCoordinator", "UserLock", "open_coordinator"]


def open_coordinator(kind: str, data_dir: Path, lease_time: float) -> Coordinator:
    if kind == "process":
        return LocalCoordinator(lease_time)
    if kind == "data-dir":
        return SqliteCoordinator(data_dir / "coordination", lease_time)
    if kind.startswith(("postgresql://", "postgres://")):
        from bridge.coordination.postgres import PostgresCoordinator

        return PostgresCoordinator(kind, lease_time)
    raise ValueError(f"unknown coordination {kind!r}")

"""Inline work never waits: a lock held elsewhere, a cache write, a statement past the
budget and the engine all stop it with NeedsWorker, and outside it nothing changes."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bridge import inline
from bridge.jmap import CoreLimits, Engine, MethodSpec
from bridge.jmap.types import request_decoder
from bridge.store.cache import Cache

# About a second of SQLite work: far past any budget below.
SLOW_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000) "
    "SELECT count(*) FROM c"
)


def _held_elsewhere(lock: inline.GuardedLock) -> tuple[threading.Event, threading.Event]:
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            release.wait(5)

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(5)
    return taken, release


def test_a_lock_held_by_another_thread_stops_inline_work_and_is_waited_for_outside() -> None:
    lock = inline.GuardedLock()
    _, release = _held_elsewhere(lock)
    with pytest.raises(inline.NeedsWorker), inline.on_loop(1.0), lock:
        pass
    threading.Timer(0.05, release.set).start()
    with lock:  # outside inline work: waits until the holder lets go
        pass


def test_a_free_lock_is_taken_inline_and_again_by_the_same_thread() -> None:
    lock = inline.GuardedLock()
    with inline.on_loop(1.0), lock, lock:
        assert inline.active()
    assert not inline.active()


def test_a_cache_write_is_refused_inline() -> None:
    cache = Cache.open(":memory:")
    with pytest.raises(inline.NeedsWorker), inline.on_loop(1.0), cache.transaction():
        pass
    with cache.transaction():
        pass
    cache.close()


def test_a_statement_past_the_budget_is_interrupted() -> None:
    cache = Cache.open(":memory:")
    with pytest.raises(inline.NeedsWorker), inline.on_loop(0.005), cache.sql() as conn:
        conn.execute(SLOW_SQL).fetchone()
    with cache.sql() as conn:  # the same statement outside runs to its end
        assert conn.execute(SLOW_SQL).fetchone() == (3000000,)
    cache.close()


def test_a_cache_read_after_the_budget_is_refused() -> None:
    cache = Cache.open(":memory:")
    with pytest.raises(inline.NeedsWorker), inline.on_loop(0.0):
        cache.mailboxes()
    assert cache.mailboxes() == []
    cache.close()


def _engine(handler: Any, *, inline_method: bool = True) -> Engine:
    spec = MethodSpec("Test/get", "urn:test", handler, account_scoped=False, inline=inline_method)
    return Engine(CoreLimits(), ["urn:test"], [spec])


def _request(*names: str) -> Any:
    calls = ",".join(f'["{name}", {{}}, "c{n}"]' for n, name in enumerate(names))
    return request_decoder.decode(f'{{"using": ["urn:test"], "methodCalls": [{calls}]}}')


def test_the_engine_lets_needs_worker_through_rather_than_answer_server_fail() -> None:
    def needs_worker(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        raise inline.NeedsWorker("the upstream")

    engine = _engine(needs_worker)
    with pytest.raises(inline.NeedsWorker):
        engine.run(_request("Test/get"), None, "a", "s")


def test_only_requests_of_reading_methods_may_run_inline() -> None:
    def read(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        return {}

    assert _engine(read).may_run_inline(_request("Test/get", "Test/get"))
    assert not _engine(read).may_run_inline(_request("Test/get", "Test/unknown"))
    assert not _engine(read, inline_method=False).may_run_inline(_request("Test/get"))

"""The coordinators of several processes (bridge.coordination): over one data directory
(SQLite and lock files) and over PostgreSQL (a throwaway cluster), the same cases: leases
that pass on when their holder dies, the sync lock across processes, the watcher's word on
freshness, published states reaching the other processes, shared tokens and throttles.
"Other processes" are real ones where death matters (SIGKILL), else two coordinators on
one store, which is what two processes hold."""

from __future__ import annotations

import queue
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bridge.coordination import Coordinator, UserLock, open_coordinator
from bridge.coordination.base import WATCHER
from bridge.coordination.filelock import FileLock
from bridge.credentials import Credentials
from bridge.http.throttle import FailureThrottle
from bridge.http.token_store import PER_USER, TokenStore
from bridge.mail.freshness import Freshness
from tests.support.postgres import PostgresCluster

LEASE = 0.5


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(params=["data-dir", "postgresql"])
def where(request: pytest.FixtureRequest) -> str:
    """The coordination setting: the data directory, or a fresh PostgreSQL database."""
    if request.param == "data-dir":
        return "data-dir"
    cluster: PostgresCluster = request.getfixturevalue("cluster")
    return cluster.create_database(f"coordination_{secrets.token_hex(4)}")


@pytest.fixture
def pair(where: str, tmp_path: Path) -> Iterator[tuple[Coordinator, Coordinator]]:
    a = open_coordinator(where, tmp_path, LEASE)
    b = open_coordinator(where, tmp_path, LEASE)
    yield a, b
    a.close()
    b.close()


def stored(where: str, directory: Path) -> bytes:
    """Everything the shared store holds, as bytes."""
    if where == "data-dir":
        return b"".join(path.read_bytes() for path in directory.rglob("coordination.sqlite3*"))
    with psycopg.connect(where) as connection:
        rows = connection.execute("SELECT t::text FROM coordination_tokens t").fetchall()
    return "".join(row[0] for row in rows).encode()


def holder_process(where: str, directory: Path, script: str) -> subprocess.Popen[str]:
    """A Python process that runs ``script`` with ``coordinator`` (``where``) and ``lock``
    (alice's sync lock), prints "ready" and sleeps."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from bridge.coordination import open_coordinator
        coordinator = open_coordinator({where!r}, Path({str(directory)!r}), {LEASE})
        lock = coordinator.user_lock("alice")
        {script}
        print("ready", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def test_a_lease_is_one_holders_until_released(pair: tuple[Coordinator, Coordinator]) -> None:
    a, b = pair
    assert a.holds("alice", WATCHER) and a.holds("alice", WATCHER)
    assert not b.holds("alice", WATCHER)
    assert b.holds("bob", WATCHER) and b.holds("alice", "indexer")  # per user, per name
    time.sleep(LEASE * 2)  # renewed meanwhile by a's own thread
    assert not b.holds("alice", WATCHER)
    a.release("alice", WATCHER)
    assert b.holds("alice", WATCHER) and not a.holds("alice", WATCHER)


def test_a_dead_holders_lease_passes_on_when_it_runs_out(where: str, tmp_path: Path) -> None:
    holder = holder_process(where, tmp_path, 'assert coordinator.holds("alice", "watcher")')
    other = open_coordinator(where, tmp_path, LEASE)
    try:
        assert not other.holds("alice", WATCHER)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        while not other.holds("alice", WATCHER):
            time.sleep(0.01)
        assert time.monotonic() - killed <= LEASE + 0.3  # a poll and a loaded machine
    finally:
        other.close()


def test_the_sync_lock_is_held_across_processes_and_freed_by_death(
    where: str, tmp_path: Path
) -> None:
    holder = holder_process(where, tmp_path, "lock.acquire()")
    other = open_coordinator(where, tmp_path, LEASE)
    try:
        lock = UserLock(other.user_lock("alice"))
        assert not lock.acquire(timeout=0.1)
        assert UserLock(other.user_lock("bob")).acquire(timeout=0.1)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert lock.acquire(timeout=1.0)
        assert lock.acquire(timeout=0)  # re-entrant within the holding thread
        lock.release()
        lock.release()
    finally:
        other.close()


def test_a_file_lock_waits_no_longer_than_asked(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "l"), FileLock(tmp_path / "l")
    assert first.acquire()
    started = time.monotonic()
    assert not second.acquire(timeout=0.05)
    assert 0.05 <= time.monotonic() - started < 0.5
    assert not second.acquire(blocking=False)
    first.release()
    assert second.acquire(blocking=False)


def test_only_the_live_watcher_holders_word_counts(pair: tuple[Coordinator, Coordinator]) -> None:
    a, b = pair
    b.vouch("alice", True)  # not the holder: its word counts for nothing
    assert not a.vouched("alice")
    assert a.holds("alice", WATCHER)
    a.vouch("alice", True)
    assert b.vouched("alice")
    a.vouch("alice", False)
    assert not b.vouched("alice")
    a.vouch("alice", True)
    a.release("alice", WATCHER)
    assert not b.vouched("alice")


def test_the_holders_word_is_read_at_once_only_from_a_local_store(
    pair: tuple[Coordinator, Coordinator], where: str
) -> None:
    """``vouched_at_once`` (for the event loop): the same word as ``vouched`` from the data
    directory's SQLite file, none from PostgreSQL (a round trip), nor while another thread
    reads (it would wait)."""
    a, b = pair
    local = where == "data-dir"
    assert a.holds("alice", WATCHER)
    for level in (True, False, True):
        a.vouch("alice", level)
        assert b.vouched("alice") is level
        assert b.vouched_at_once("alice") is (level if local else None)
    a.release("alice", WATCHER)
    assert b.vouched_at_once("alice") is (False if local else None)
    if local:
        a.holds("alice", WATCHER)
        a.vouch("alice", True)
        reader = b._reader_guard  # type: ignore[attr-defined]
        with reader:
            assert b.vouched_at_once("alice") is None
        assert b.vouched_at_once("alice") is True


def test_freshness_tells_its_word_and_asks_others_without_a_watcher() -> None:
    told: list[bool] = []
    others = [False]
    freshness = Freshness(told.append, lambda: others[0])
    assert not freshness.level()
    others[0] = True
    assert freshness.level()  # no watcher here: the holder's word
    freshness.listening()
    token = freshness.sync_starts()
    freshness.synced(token)
    assert freshness.level() and told == [True]
    others[0] = False
    assert freshness.level()  # our own watcher's word comes first
    freshness.heard()
    assert not freshness.level() and told == [True, False]
    freshness.lost()
    assert told == [True, False]  # said once


def test_published_states_reach_the_other_processes_only(
    pair: tuple[Coordinator, Coordinator],
) -> None:
    a, b = pair
    a.publish("alice", {"Email": "old-1"})  # before subscribing: not delivered
    time.sleep(0.2)  # sent (publish only queues it: the event loop never waits)
    heard_by_a: queue.Queue[tuple[str, dict[str, str]]] = queue.Queue()
    heard_by_b: queue.Queue[tuple[str, dict[str, str]]] = queue.Queue()
    a.subscribe(lambda user, states: heard_by_a.put((user, states)))
    b.subscribe(lambda user, states: heard_by_b.put((user, states)))
    started = time.monotonic()
    a.publish("alice", {"Email": "e-2", "Mailbox": "e-1"})
    a.publish("bob", {"Email": "e-7"})
    assert heard_by_b.get(timeout=2) == ("alice", {"Email": "e-2", "Mailbox": "e-1"})
    assert time.monotonic() - started < 0.5
    assert heard_by_b.get(timeout=2) == ("bob", {"Email": "e-7"})
    time.sleep(0.2)
    assert heard_by_a.empty() and heard_by_b.empty()


def test_tokens_issued_by_one_instance_work_at_the_other(
    pair: tuple[Coordinator, Coordinator], where: str, tmp_path: Path
) -> None:
    a, b = TokenStore(60, shared=pair[0].records()), TokenStore(60, shared=pair[1].records())
    alice = Credentials("alice", "a secret password")
    token, _ = a.issue(alice)
    assert b.redeem(token) == alice
    assert b.redeem(token + "x") is None
    # The store holds digests and sealed credentials: neither the token nor the password.
    held = stored(where, tmp_path)
    assert held and b"a secret password" not in held and token.encode() not in held
    assert b.revoke(token) and a.redeem(token) is None and not a.revoke(token)
    issued = [a.issue(alice)[0] for _ in range(PER_USER + 1)]
    assert b.redeem(issued[0]) is None and b.redeem(issued[-1]) == alice  # oldest dropped
    assert b.redeem(b.issue(Credentials("bob", "pw"))[0]) == Credentials("bob", "pw")


def test_failed_logins_count_at_every_instance(pair: tuple[Coordinator, Coordinator]) -> None:
    a = FailureThrottle(3, 60, pair[0].records(), "login-address")
    b = FailureThrottle(3, 60, pair[1].records(), "login-address")
    by_address = FailureThrottle(3, 60, pair[1].records(), "address")
    for throttle in (a, b, a):
        assert throttle.retry_after("alice\0192.0.2.1") == 0
        throttle.fail("alice\0192.0.2.1")
    assert 59 < b.retry_after("alice\0192.0.2.1") <= 60
    assert by_address.retry_after("alice\0192.0.2.1") == 0  # another throttle's count
    a.succeed("alice\0192.0.2.1")
    assert b.retry_after("alice\0192.0.2.1") == 0

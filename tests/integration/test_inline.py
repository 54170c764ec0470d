"""Warm requests that only read the cache run on the event loop (bridge.inline): a user
whose upstream hangs does not hold up another user's, one that needs the upstream after all
moves to a worker thread and answers as before, and each runs (and counts) once. On a
PostgreSQL store every read is a round trip, so no request runs on the event loop: the tests
of inline work are SQLite's (sqlite_only), and the last one checks the rule on both stores."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from imapclient import IMAPClient

from bridge import metrics
from bridge.demo.dovecot import Dovecot
from tests.integration.conftest import USERS
from tests.integration.server import USING, BridgeServer, JmapClient
from tests.integration.test_freshness import _page, _watched
from tests.integration.test_push import Events
from tests.support import stores

BODY = b"From: a@example.com\r\nSubject: inline %d\r\nMessage-ID: <i%d@x.test>\r\n\r\nhi %d\r\n"


@pytest.fixture
def upstream(dovecot_factory: Callable[..., Dovecot]) -> Iterator[Dovecot]:
    server = dovecot_factory()
    yield server
    os.killpg(server.process.pid, signal.SIGCONT)  # never leave it stopped


def _requests(ran: str) -> float:
    value = metrics.registry().get_sample_value("bridge_jmap_requests_total", {"ran": ran})
    return value or 0.0


def _listened(server: BridgeServer, user: str) -> JmapClient:
    """A client of ``user`` with an event stream open, once the watcher vouches."""
    jmap = server.client(user, USERS[user])
    Events(jmap, "types=*&closeafter=no&ping=0")
    _watched(server, user)
    return jmap


def _seed(upstream: Dovecot, user: str, count: int) -> None:
    with IMAPClient(upstream.host, port=upstream.port, ssl=False) as client:
        client.login(user, USERS[user])
        for n in range(count):
            client.append("INBOX", BODY % (n, n, n))


@pytest.mark.parametrize("inline_budget", [pytest.param(0.01, marks=pytest.mark.sqlite_only), 0.0])
def test_a_hung_upstream_session_does_not_hold_up_another_users_warm_page(
    upstream: Dovecot, tmp_path: Path, inline_budget: float
) -> None:
    """With one worker thread busy on bob's hung sync, alice's warm page answers at once
    from the event loop; with inline_budget 0 (every request on a worker) it waits."""
    _seed(upstream, "alice", 3)
    with BridgeServer(
        upstream.host, upstream.port, tmp_path / "data", request_threads=1,
        request_timeout=3.0, upstream_timeout=2.0, inline_budget=inline_budget,
    ) as server:  # fmt: skip
        alice = _listened(server, "alice")
        inbox = alice.mailboxes()["INBOX"]["id"]
        assert len(_page(alice, inbox)["g"]["list"]) == 3
        bob = server.client("bob", USERS["bob"])
        bob.mailboxes()  # logged in: a pooled connection, a trusted password
        get = ["Mailbox/get", {"accountId": bob.account_id, "ids": None}, "m"]

        os.killpg(upstream.process.pid, signal.SIGSTOP)
        held: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: held.update(r=bob.post({"using": USING, "methodCalls": [get]}))
        )
        thread.start()
        time.sleep(0.3)  # bob's sync holds the one worker, waiting on a silent upstream
        started = time.monotonic()
        page = _page(alice, inbox)
        took = time.monotonic() - started
        bob_waiting = thread.is_alive()
        os.killpg(upstream.process.pid, signal.SIGCONT)
        thread.join(timeout=10)

        assert held["r"].status_code == 200
        if inline_budget:
            assert bob_waiting and took < 1.0, took
            assert sorted(e["subject"] for e in page["g"]["list"]) == [
                "inline 0", "inline 1", "inline 2"
            ]  # fmt: skip
        else:
            # Behind bob's request for the worker, until its sync timed out 2 s after it
            # began, 1.7 s after hers (what alice then gets depends on what of her deadline
            # is left, and is not the point). Whether bob's client thread has read its answer
            # by the time hers is back is a race of two threads, so it is not asserted.
            assert took > 1.5, took
            assert held["r"].json()["methodResponses"][0][0] == "error"
        for client in (alice, bob):
            client.close()


@pytest.mark.sqlite_only
def test_a_warm_request_that_needs_the_upstream_moves_to_a_worker(
    upstream: Dovecot, tmp_path: Path
) -> None:
    _seed(upstream, "alice", 2)
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data") as server:
        alice = _listened(server, "alice")
        inbox = alice.mailboxes()["INBOX"]["id"]
        ids = _page(alice, inbox)["q"]["ids"]
        loop, moved = _requests("loop"), _requests("moved")
        calls_before = metrics.registry().get_sample_value(
            "bridge_jmap_method_calls_total", {"method": "Mailbox/get", "result": "ok"}
        )
        # The body is not in the cache: Email/get borrows a connection, so the request
        # starts over on a worker, Mailbox/get included (and counted once).
        responses = alice.request([
            ["Mailbox/get", {"accountId": alice.account_id, "ids": [inbox]}, "m"],
            ["Email/get", {"accountId": alice.account_id, "ids": ids,
                           "properties": ["subject", "bodyValues", "textBody"],
                           "fetchTextBodyValues": True}, "g"],
        ])  # fmt: skip
        assert [name for name, _, _ in responses] == ["Mailbox/get", "Email/get"]
        texts = sorted(
            next(iter(email["bodyValues"].values()))["value"].strip()
            for email in responses[1][1]["list"]
        )
        assert texts == ["hi 0", "hi 1"]
        assert _requests("moved") == moved + 1
        calls_after = metrics.registry().get_sample_value(
            "bridge_jmap_method_calls_total", {"method": "Mailbox/get", "result": "ok"}
        )
        assert calls_after == (calls_before or 0) + 1
        # The list view again: from the loop.
        assert len(_page(alice, inbox)["g"]["list"]) == 2
        assert _requests("loop") == loop + 1
        alice.close()


@pytest.mark.sqlite_only
def test_a_request_past_the_inline_budget_starts_over_on_a_worker(
    upstream: Dovecot, tmp_path: Path
) -> None:
    _seed(upstream, "alice", 2)
    with BridgeServer(
        upstream.host, upstream.port, tmp_path / "data", inline_budget=1e-9
    ) as server:  # fmt: skip
        alice = _listened(server, "alice")
        inbox = alice.mailboxes()["INBOX"]["id"]
        moved, loop = _requests("moved"), _requests("loop")
        page = _page(alice, inbox)
        assert sorted(e["subject"] for e in page["g"]["list"]) == ["inline 0", "inline 1"]
        assert _requests("moved") == moved + 1
        assert _requests("loop") == loop
        alice.close()


def test_a_warm_page_runs_on_the_loop_on_sqlite_and_on_a_worker_on_postgresql(
    upstream: Dovecot, tmp_path: Path
) -> None:
    _seed(upstream, "alice", 2)
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data") as server:
        alice = _listened(server, "alice")
        inbox = alice.mailboxes()["INBOX"]["id"]
        loop, worker = _requests("loop"), _requests("worker")
        page = _page(alice, inbox)
        assert sorted(e["subject"] for e in page["g"]["list"]) == ["inline 0", "inline 1"]
        if stores.on_postgres():
            assert (_requests("loop"), _requests("worker")) == (loop, worker + 1)
        else:
            assert (_requests("loop"), _requests("worker")) == (loop + 1, worker)
        alice.close()


def test_the_indexing_status_waits_for_a_busy_cache_off_the_loop(
    upstream: Dovecot, tmp_path: Path
) -> None:
    """/jmap/status reads the cache, which a sync's transaction holds for as long as it
    runs (a first login's are the long ones, and when a client asks): on a worker thread,
    so the process answers everyone else meanwhile."""
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data") as server:
        alice = server.client("alice", USERS["alice"])
        cache = server.bridge.users.get("alice").cache
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:  # as a sync's transaction does
            with cache._lock:
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(5)
        answers: list[int] = []
        asking = threading.Thread(
            target=lambda: answers.append(alice.http.get("/jmap/status").status_code)
        )
        try:
            asking.start()
            time.sleep(0.3)  # the status request now waits for the cache
            started = time.monotonic()
            assert httpx.get(f"{server.url}/healthz", timeout=15).status_code == 200
            answered_in = time.monotonic() - started
        finally:
            release.set()
            holder.join()
        asking.join(15)
        assert answered_in < 2.0, answered_in
        assert answers == [200]  # and the status came once the cache was free

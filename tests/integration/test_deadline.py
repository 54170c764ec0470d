"""A silent upstream (Dovecot stopped with SIGSTOP) costs a request its deadline, no more:
a login, a read, a write and a request queued behind them each answer in time, the write
is never reported done, and the account works again once the upstream does."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.demo.dovecot import Dovecot
from tests.integration.conftest import USERS
from tests.integration.server import USING, BridgeServer

REQUEST_TIMEOUT = 3.0
COMMAND_TIMEOUT = 2.0


@pytest.fixture
def upstream(dovecot_factory: Callable[..., Dovecot]) -> Iterator[Dovecot]:
    server = dovecot_factory()
    yield server
    os.killpg(server.process.pid, signal.SIGCONT)  # never leave it stopped


def timed(results: dict[str, Any], name: str, call: Callable[[], Any]) -> threading.Thread:
    def run() -> None:
        started = time.monotonic()
        outcome = call()
        results[name] = (time.monotonic() - started, outcome)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def request(*calls: list[Any]) -> dict[str, Any]:
    return {"using": USING, "methodCalls": list(calls)}


def test_a_stopped_upstream_costs_each_request_its_deadline(
    upstream: Dovecot, tmp_path: Path
) -> None:
    with BridgeServer(
        upstream.host, upstream.port, tmp_path / "data",
        request_timeout=REQUEST_TIMEOUT, upstream_timeout=COMMAND_TIMEOUT,
        upstream_connect_timeout=COMMAND_TIMEOUT,  # bob's login waits for a greeting
    ) as server:  # fmt: skip
        alice = server.client("alice", USERS["alice"])
        queued = server.client("alice", USERS["alice"])
        bob = server.client("bob", USERS["bob"])
        assert "INBOX" in alice.mailboxes()
        queued.mailboxes()  # a connection of its own in the pool, and a session

        os.killpg(upstream.process.pid, signal.SIGSTOP)
        results: dict[str, Any] = {}
        get = ["Mailbox/get", {"accountId": alice.account_id, "ids": None}, "g"]
        echo = ["Core/echo", {"after": "the deadline"}, "e"]
        create = {"accountId": alice.account_id, "create": {"n": {"name": "Stopped"}}}
        threads = [
            # The first get ends at the command timeout (a timed-out sync is not retried);
            # the second spends what is left on a new connection's greeting.
            timed(results, "read", lambda: alice.post(request(get, get, echo))),
            timed(results, "login", lambda: bob.http.get("/jmap/session")),
        ]
        time.sleep(0.3)  # the read holds alice's sync now: these queue behind it
        threads += [
            timed(results, "queued", lambda: queued.post(request(get))),
            timed(results, "write", lambda: alice.post(request(["Mailbox/set", create, "s"]))),
        ]
        for thread in threads:
            thread.join(timeout=3 * REQUEST_TIMEOUT)
        os.killpg(upstream.process.pid, signal.SIGCONT)

        for name, (took, _) in results.items():
            assert took < REQUEST_TIMEOUT + 1.0, (name, took)
        assert set(results) == {"read", "login", "queued", "write"}
        assert results["login"][1].status_code == 503
        read = results["read"][1].json()["methodResponses"]
        for name, args, _ in read[:2]:
            assert name == "error" and args["type"] in ("serverFail", "serverUnavailable")
        assert read[2][1]["type"] == "serverUnavailable"  # not run: no time was left
        queued_response = results["queued"][1].json()["methodResponses"][0]
        assert queued_response[1]["type"] in ("serverFail", "serverUnavailable")
        write = results["write"][1].json()["methodResponses"][0]
        assert write[0] == "error" or not write[1].get("created"), write

        # The upstream is back: so is the account, and the login.
        deadline = time.monotonic() + 10
        while True:
            [[name, args, _]] = alice.post(request(get)).json()["methodResponses"]
            if name == "Mailbox/get" or time.monotonic() > deadline:
                break
        assert name == "Mailbox/get" and "INBOX" in {m["name"] for m in args["list"]}
        assert bob.http.get("/jmap/session").status_code == 200
        for client in (alice, queued, bob):
            client.close()


@pytest.fixture
def three_users(dovecot_factory: Callable[..., Dovecot]) -> Iterator[Dovecot]:
    server = dovecot_factory(users={**USERS, "carol": "carol-pw"})
    yield server
    os.killpg(server.process.pid, signal.SIGCONT)


def test_downloads_uploads_and_sessions_answer_within_the_deadline(
    three_users: Dovecot, tmp_path: Path
) -> None:
    """The HTTP requests beside /jmap/api carry the deadline too: a download's wait for its
    first chunk, and the login of an upload or a session request, end with it."""
    slow = 20.0  # what each would wait without the deadline
    with BridgeServer(
        three_users.host, three_users.port, tmp_path / "data",
        request_timeout=REQUEST_TIMEOUT, upstream_timeout=slow, upstream_connect_timeout=slow,
    ) as server:  # fmt: skip
        alice = server.client("alice", USERS["alice"])
        inbox = alice.mailboxes()["INBOX"]["id"]
        created = alice.call("Email/set", {"create": {"m": {
            "mailboxIds": {inbox: True}, "subject": "Read me later",
            "bodyValues": {"t": {"value": "Hello"}}, "textBody": [{"partId": "t"}],
        }}})["created"]["m"]  # fmt: skip
        url = alice.session["downloadUrl"].format(
            accountId=alice.account_id, blobId=created["blobId"], name="m.eml", type="x/y"
        )
        upload_url = alice.session["uploadUrl"].format(accountId="any")
        bob = server.client("bob", USERS["bob"])
        carol = server.client("carol", "carol-pw")

        os.killpg(three_users.process.pid, signal.SIGSTOP)
        results: dict[str, Any] = {}
        threads = [
            timed(results, "download", lambda: alice.http.get(url)),
            timed(results, "session", lambda: bob.http.get("/jmap/session")),
            timed(results, "upload", lambda: carol.http.post(upload_url, content=b"data")),
        ]
        for thread in threads:
            thread.join(timeout=slow + 5)
        os.killpg(three_users.process.pid, signal.SIGCONT)

        assert set(results) == {"download", "session", "upload"}
        for name, (took, response) in results.items():
            assert took < REQUEST_TIMEOUT + 1.0, (name, took)
            assert response.status_code == 503, (name, response.text)
            assert response.headers["Retry-After"]
        for client in (alice, bob, carol):
            client.close()

"""Upstream failures, isolation between users, and secrets kept out of logs and disk."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.cyrus import Cyrus
from bridge.demo.dovecot import Dovecot, free_port
from tests.integration.server import BridgeServer
from tests.integration.upstreams import Upstream, require_cyrus

USERS = {"alice": "alice-Secret-9f3", "bob": "bob-Secret-77a"}


def restartable(kind: str) -> Iterator[Upstream]:
    """A server of this test's own, which it may stop and start again on the same port."""
    # A short base directory: the servers' socket paths must stay under 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="up", dir="/tmp"))
    if kind == "cyrus":
        require_cyrus()
    server_class = Cyrus if kind == "cyrus" else Dovecot
    upstream = server_class(dict(USERS), base_dir=base, port=free_port())
    upstream.start()
    yield upstream
    upstream.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def own_upstream() -> Iterator[Upstream]:
    yield from restartable("dovecot")


@pytest.fixture(params=["dovecot", "cyrus"])
def any_own_upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    yield from restartable(request.param)


@pytest.fixture
def server(own_upstream: Dovecot, tmp_path: Path) -> Iterator[BridgeServer]:
    with BridgeServer(own_upstream.host, own_upstream.port, tmp_path / "data") as bridge:
        yield bridge


@pytest.fixture
def any_server(any_own_upstream: Upstream, tmp_path: Path) -> Iterator[BridgeServer]:
    upstream = any_own_upstream
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data") as bridge:
        yield bridge


def test_upstream_down_then_back(any_own_upstream: Upstream, any_server: BridgeServer) -> None:
    own_upstream, server = any_own_upstream, any_server
    jmap = server.client("alice", USERS["alice"])
    assert "INBOX" in jmap.mailboxes()
    own_upstream.stop()
    down = jmap.call("Mailbox/get", {"ids": None})
    assert down["error"]["type"] == "serverUnavailable"
    write = jmap.call("Mailbox/set", {"create": {"n": {"name": "Never"}}})
    assert write["error"]["type"] == "serverUnavailable"
    echo = jmap.request([["Core/echo", {"still": "here"}, "0"]])
    assert echo[0][1] == {"still": "here"}
    own_upstream.start()
    boxes = jmap.mailboxes()
    assert "INBOX" in boxes and "Never" not in boxes
    jmap.close()


def test_connection_killed_between_requests(own_upstream: Dovecot, server: BridgeServer) -> None:
    jmap = server.client("alice", USERS["alice"])
    assert "INBOX" in jmap.mailboxes()
    subprocess.run(
        ["doveadm", "-c", str(own_upstream.config_path), "kick", "alice"],
        check=True, capture_output=True,
    )  # fmt: skip
    # The pooled connection is dead; the read is retried on a fresh one.
    assert "INBOX" in jmap.mailboxes()
    jmap.close()


def test_one_user_cannot_reach_another_users_account(server: BridgeServer) -> None:
    alice = server.client("alice", USERS["alice"])
    bob = server.client("bob", USERS["bob"])
    assert alice.account_id != bob.account_id
    [[name, args, _]] = alice.request(
        [["Mailbox/get", {"accountId": bob.account_id, "ids": None}, "0"]]
    )
    assert (name, args["type"]) == ("error", "accountNotFound")
    # Bob's password does not open alice's account, even while alice's pool is warm.
    intruder = server.client("alice", USERS["bob"])
    assert intruder.http.get("/jmap/session").status_code == 401
    for client in (alice, bob, intruder):
        client.close()


def test_passwords_reach_neither_logs_nor_disk(
    server: BridgeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = server.client("alice", USERS["alice"])
    alice.mailboxes()
    alice.call("Mailbox/set", {"create": {"n": {"name": "New"}}})
    wrong = server.client("bob", "wrong-" + USERS["bob"])
    assert wrong.http.get("/jmap/session").status_code == 401
    for client in (alice, wrong):
        client.close()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged  # debug logging was on and said something
    for secret in (*USERS.values(), "wrong-" + USERS["bob"]):
        assert secret not in logged
        for path in (tmp_path / "data").rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_connection_cut_during_ten_creates(own_upstream: Dovecot, server: BridgeServer) -> None:
    jmap = server.client("alice", USERS["alice"])
    drafts = jmap.mailboxes()["Drafts"]["id"]

    def creates(tag: str) -> dict[str, object]:
        return {"create": {f"c{n}": {
            "mailboxIds": {drafts: True}, "subject": f"{tag} {n}",
            "messageId": [f"{tag}-{n}@bridge.test"],
            "textBody": [{"partId": "t", "type": "text/plain"}],
            "bodyValues": {"t": {"value": "draft"}},
        } for n in range(10)}}  # fmt: skip

    started = time.monotonic()
    assert len(jmap.call("Email/set", creates("warmup"))["created"]) == 10
    half = (time.monotonic() - started) / 2
    kicked_at: list[float] = []

    def kick() -> None:
        kicked_at.append(time.monotonic())
        subprocess.run(["doveadm", "-c", str(own_upstream.config_path), "kick", "alice"],
                       capture_output=True)  # fmt: skip

    kicker = threading.Timer(half, kick)
    kicker.start()
    result = jmap.call("Email/set", creates("cut"))
    finished = time.monotonic()
    kicker.join()
    assert kicked_at and kicked_at[0] < finished  # the cut fell inside the request
    assert "error" not in result, result
    other = IMAPClient(own_upstream.host, port=own_upstream.port, ssl=False)
    other.login("alice", USERS["alice"])
    other.select_folder("Drafts", readonly=True)
    for n in range(10):
        found = other.search(["HEADER", "Message-ID", f"cut-{n}@bridge.test"])
        if f"c{n}" in (result["created"] or {}):
            assert len(found) == 1, n  # reported created: there, exactly once
        else:
            assert result["notCreated"][f"c{n}"]["type"] == "serverFail"
            assert found == [], n  # reported not created: not there
    assert len(result["created"] or {}) + len(result["notCreated"] or {}) == 10
    other.logout()
    jmap.close()

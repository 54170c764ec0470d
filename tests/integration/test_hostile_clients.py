"""Clients that leave mid-request or hold requests open, against bridge as its own process
(tests/bench/harness.py): what its log says, and how long it takes to stop."""

from __future__ import annotations

import base64
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import BridgeProcess
from tests.integration.conftest import USERS

AUTH = "Basic " + base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()


@pytest.fixture
def server(dovecot_factory: Callable[..., Dovecot], tmp_path: Path) -> Iterator[BridgeProcess]:
    upstream = dovecot_factory()
    with BridgeProcess(upstream.port, tmp_path / "data", log_level="debug") as process:
        yield process


def _partial_post(server: BridgeProcess, path: str, declared: int, sent: bytes) -> socket.socket:
    """A POST whose body stops after ``sent`` of ``declared`` octets; the socket stays open."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def test_a_client_leaving_mid_body_is_no_server_error(server: BridgeProcess) -> None:
    session = httpx.get(server.url + "/jmap/session", auth=("alice", USERS["alice"])).json()
    upload = session["uploadUrl"].replace("{accountId}", session["primaryAccounts"][
        "urn:ietf:params:jmap:mail"]).removeprefix(server.url)  # fmt: skip
    for path in ("/jmap/api", upload):
        sock = _partial_post(server, path, 100_000, b'{"using": [')
        time.sleep(0.3)  # the request is being read
        sock.close()
    time.sleep(0.5)
    assert httpx.get(server.url + "/jmap/session", auth=("alice", USERS["alice"])).is_success
    log = server.read_log(tail=None)
    assert "POST /jmap/api" in log or "/jmap/session" in log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert '" 500' not in log, log


def test_shutdown_does_not_wait_for_an_unfinished_upload(server: BridgeProcess) -> None:
    session = httpx.get(server.url + "/jmap/session", auth=("alice", USERS["alice"])).json()
    upload = session["uploadUrl"].replace("{accountId}", session["primaryAccounts"][
        "urn:ietf:params:jmap:mail"]).removeprefix(server.url)  # fmt: skip
    held = _partial_post(server, upload, 10_000_000, b"x" * 1000)
    api = _partial_post(server, "/jmap/api", 10_000, b"{")
    time.sleep(0.3)
    started = time.monotonic()
    # uvicorn stops gracefully, then passes SIGTERM on: the status a service manager expects.
    assert server.stop() in (0, -signal.SIGTERM)
    took = time.monotonic() - started
    held.close()
    api.close()
    # uvicorn's graceful shutdown waits 5 s for open requests, then cancels them.
    assert took < 10, took

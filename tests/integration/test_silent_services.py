"""A submission or ManageSieve server that takes the connection and then says nothing
costs a request its deadline (``request_timeout``), not the longer ``upstream_timeout``:
EmailSubmission/set and VacationResponse/set answer in time, with nothing reported done."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.demo.dovecot import Dovecot
from bridge.mail.capabilities import SUBMISSION, VACATION
from tests.integration.conftest import USERS
from tests.integration.server import USING, BridgeServer

REQUEST_TIMEOUT = 2.0
UPSTREAM_TIMEOUT = 20.0  # far longer: an answer within the deadline shows the cut


class SilentServer:
    """Accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def timed_request(client: Any, calls: list[list[Any]], using: list[str]) -> tuple[float, Any]:
    started = time.monotonic()
    response = client.post({"using": using, "methodCalls": calls})
    return time.monotonic() - started, response.json()["methodResponses"]


def bridge_to(dovecot: Dovecot, data: Path, **services: Any) -> BridgeServer:
    return BridgeServer(
        dovecot.host, dovecot.port, data, request_timeout=REQUEST_TIMEOUT,
        upstream_timeout=UPSTREAM_TIMEOUT, upstream_connect_timeout=UPSTREAM_TIMEOUT,
        **services,
    )  # fmt: skip


def test_a_silent_submission_server_costs_the_deadline(
    dovecot: Dovecot, silent: SilentServer, tmp_path: Path
) -> None:
    with bridge_to(
        dovecot,
        tmp_path / "data",
        submission_port=silent.port,
        submission_tls="plain",
        mail_domain="example.com",
    ) as server:
        client = server.client("alice", USERS["alice"])
        account = client.account_id
        drafts = client.mailboxes()["Drafts"]["id"]
        using = [*USING, SUBMISSION]
        [[_, identities, _]] = client.request(
            [["Identity/get", {"accountId": account}, "i"]], using=using
        )
        identity = identities["list"][0]["id"]
        took, [made, submitted] = timed_request(client, [
            ["Email/set", {"accountId": account, "create": {"d": {
                "mailboxIds": {drafts: True}, "from": [{"email": "alice@example.com"}],
                "to": [{"email": "friend@example.net"}], "subject": "Into the silence",
                "bodyValues": {"t": {"value": "Hello"}}, "textBody": [{"partId": "t"}],
            }}}, "m"],
            ["EmailSubmission/set", {"accountId": account, "create": {
                "s": {"identityId": identity, "emailId": "#d"}}}, "s"],
        ], using)  # fmt: skip
        assert made[1]["created"]["d"]["id"]
        assert submitted[0] == "EmailSubmission/set", submitted
        assert submitted[1]["notCreated"]["s"]["type"] == "serverFail", submitted
        assert "nothing was sent" in submitted[1]["notCreated"]["s"]["description"]
        assert took < REQUEST_TIMEOUT + 1.0, took
        client.close()


def test_a_silent_sieve_server_costs_the_deadline(
    dovecot: Dovecot, silent: SilentServer, tmp_path: Path
) -> None:
    with bridge_to(dovecot, tmp_path / "data", sieve_port=silent.port, sieve_tls="plain") as server:
        client = server.client("alice", USERS["alice"])
        took, [[name, args, _]] = timed_request(client, [
            ["VacationResponse/set", {"accountId": client.account_id,
                                      "update": {"singleton": {"isEnabled": True}}}, "v"],
        ], [*USING, VACATION])  # fmt: skip
        assert name == "error" and args["type"] == "serverUnavailable", args
        assert took < REQUEST_TIMEOUT + 1.0, took
        client.close()

"""Bearer tokens on every endpoint, both kinds: the mail provider's OAuth access tokens
passed upstream (a Dovecot whose oauth2 passdb asks the same introspection endpoint as
bridge), and the tokens bridge issues at POST /jmap/token.

The users' passwords are known to Dovecot only where a test logs in with one: a token
login that works proves the token, not a password, opened the mailbox.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bridge.demo.dovecot import Dovecot
from bridge.endpoint import sasl_oauth
from tests.integration.oauth_server import IntrospectionServer
from tests.integration.server import CORE, MAIL, BridgeServer
from tests.integration.smtp_sink import SmtpSink

SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
DOMAIN = "example.test"
USERS = {f"oauth{n:02d}": f"pw-{n:02d}" for n in range(1, 12)}
INVALID = 'Bearer error="invalid_token"'
JAM = Path(__file__).parent / "jam"


@pytest.fixture(scope="module")
def authority() -> Iterator[IntrospectionServer]:
    with IntrospectionServer() as server:
        yield server


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture(scope="module")
def dovecot(authority: IntrospectionServer, sink: SmtpSink) -> Iterator[Dovecot]:
    with Dovecot(
        dict(USERS), oauth_introspection_url=authority.url, relay_port=sink.port, sieve=True
    ) as server:
        server.spare = list(USERS)  # type: ignore[attr-defined]
        yield server


def _bridge(dovecot: Dovecot, data: Path, **settings: Any) -> BridgeServer:
    return BridgeServer(
        dovecot.host, dovecot.port, data,
        submission_port=dovecot.submission_port, submission_tls="plain",
        sieve_port=dovecot.sieve_port, sieve_tls="plain", mail_domain=DOMAIN, **settings,
    )  # fmt: skip


@pytest.fixture(scope="module")
def bridge(
    dovecot: Dovecot, authority: IntrospectionServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeServer]:
    data = tmp_path_factory.mktemp("bearer")
    with _bridge(dovecot, data, oauth_introspection_url=authority.url) as server:
        yield server


@pytest.fixture
def login(dovecot: Dovecot) -> str:
    return dovecot.spare.pop(0)  # type: ignore[attr-defined]


@pytest.fixture
def token(authority: IntrospectionServer, login: str) -> str:
    """A fresh access token of ``login`` at the authorization server."""
    token = base64.urlsafe_b64encode(os.urandom(24)).decode()
    authority.tokens[token] = login
    return token


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


class Endpoints:
    """Every authenticated endpoint of one account, asked with the given headers."""

    def __init__(self, bridge: BridgeServer, session: dict[str, Any]) -> None:
        self.bridge = bridge
        self.account = session["primaryAccounts"][MAIL]
        self.http = httpx.Client(base_url=bridge.url, timeout=30)

    def statuses(self, headers: dict[str, str], blob_id: str) -> dict[str, int]:
        account, http = self.account, self.http
        found = {
            "session": http.get("/jmap/session", headers=headers),
            "api": http.post("/jmap/api", headers=headers, json={
                "using": [CORE, MAIL], "methodCalls": [["Mailbox/get", {"accountId": account,
                                                                        "ids": []}, "0"]]}),
            "upload": http.post(f"/jmap/upload/{account}/", headers=headers, content=b"x"),
            "download": http.get(f"/jmap/download/{account}/{blob_id}/a.txt", headers=headers),
            "status": http.get("/jmap/status", headers=headers),
            "eventsource": http.get("/jmap/eventsource?types=*&closeafter=state&ping=0",
                                    headers={**headers, "Last-Event-ID": "Mailbox:old"}),
        }  # fmt: skip
        for name, response in found.items():
            if response.status_code == 401:
                assert response.headers["www-authenticate"] == INVALID, name
        return {name: response.status_code for name, response in found.items()} | {
            "websocket": websocket_status(self.bridge, headers),
        }

    def close(self) -> None:
        self.http.close()


def websocket_status(bridge: BridgeServer, headers: dict[str, str]) -> int:
    url = bridge.url.replace("http://", "ws://") + "/jmap/ws"
    try:
        with connect(url, subprotocols=["jmap"], additional_headers=headers) as ws:
            ws.send(json.dumps({"@type": "Request", "using": [CORE],
                                "methodCalls": [["Core/echo", {}, "e"]]}))  # fmt: skip
            assert json.loads(ws.recv(timeout=5))["@type"] == "Response"
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def upload(bridge: BridgeServer, account: str, headers: dict[str, str]) -> str:
    response = httpx.post(
        f"{bridge.url}/jmap/upload/{account}/", headers=headers, content=b"hello, token"
    )
    assert response.status_code == 201, response.text
    return response.json()["blobId"]


def api(bridge: BridgeServer, headers: dict[str, str], calls: list[Any],
        using: list[str]) -> list[Any]:  # fmt: skip
    response = httpx.post(
        f"{bridge.url}/jmap/api", headers=headers, json={"using": using, "methodCalls": calls}
    )
    assert response.status_code == 200, response.text
    return response.json()["methodResponses"]


ALL_OK = {"session": 200, "api": 200, "upload": 201, "download": 200, "status": 200,
          "eventsource": 200, "websocket": 101}  # fmt: skip
ALL_REFUSED = dict.fromkeys(ALL_OK, 401)


# -- pass-through OAuth ------------------------------------------------------------------


def test_an_access_token_opens_the_mailbox_on_every_endpoint(
    bridge: BridgeServer, authority: IntrospectionServer, login: str, token: str
) -> None:
    session = httpx.get(f"{bridge.url}/jmap/session", headers=bearer(token))
    assert session.status_code == 200, session.text
    assert session.json()["username"] == login
    endpoints = Endpoints(bridge, session.json())
    blob_id = upload(bridge, endpoints.account, bearer(token))
    try:
        assert endpoints.statuses(bearer(token), blob_id) == ALL_OK
        download = endpoints.http.get(
            f"/jmap/download/{endpoints.account}/{blob_id}/a.txt", headers=bearer(token)
        )
        assert download.content == b"hello, token"
    finally:
        endpoints.close()
    # Asked once: the answer is remembered, and the pooled logins are trusted meanwhile.
    assert authority.asked_by_bridge.count(token) == 1
    # The password still works beside the token.
    with_password = httpx.get(f"{bridge.url}/jmap/session", auth=(login, USERS[login]))
    assert with_password.status_code == 200


def test_submission_and_vacation_log_in_with_the_token(
    bridge: BridgeServer, sink: SmtpSink, login: str, token: str
) -> None:
    headers = bearer(token)
    account = httpx.get(f"{bridge.url}/jmap/session", headers=headers).json()
    account_id = account["primaryAccounts"][MAIL]
    using = [CORE, MAIL, SUBMISSION, VACATION]
    [[_, identities, _]] = api(bridge, headers, [["Identity/get", {"accountId": account_id},
                                                  "i"]], using)  # fmt: skip
    [identity] = identities["list"]
    [[_, mailboxes, _]] = api(bridge, headers, [["Mailbox/get", {"accountId": account_id},
                                                 "m"]], using)  # fmt: skip
    drafts = next(m["id"] for m in mailboxes["list"] if m["role"] == "drafts")
    before = len(sink.arrivals)
    responses = api(bridge, headers, [
        ["Email/set", {"accountId": account_id, "create": {"d": {
            "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
            "from": [{"email": identity["email"]}], "to": [{"email": "friend@example.net"}],
            "subject": "Sent with a token", "bodyValues": {"t": {"value": "hi"}},
            "textBody": [{"partId": "t", "type": "text/plain"}],
        }}}, "e"],
        ["EmailSubmission/set", {"accountId": account_id, "create": {
            "s": {"identityId": identity["id"], "emailId": "#d"}}}, "s"],
        ["VacationResponse/set", {"accountId": account_id, "update": {
            "singleton": {"isEnabled": True, "textBody": "Away"}}}, "v"],
        ["VacationResponse/get", {"accountId": account_id}, "g"],
    ], using)  # fmt: skip
    [_, submitted, vacation_set, vacation] = (r[1] for r in responses)
    assert "s" in submitted["created"], submitted
    [arrival] = sink.wait_for(before + 1)[before:]
    assert arrival.mail_from == identity["email"] == f"{login}@{DOMAIN}"
    assert b"\r\nSubject: Sent with a token\r\n" in arrival.message
    assert vacation_set["updated"] == {"singleton": None}, vacation_set
    assert vacation["list"][0]["isEnabled"] is True


def test_bad_tokens_are_refused_on_every_endpoint(
    bridge: BridgeServer, authority: IntrospectionServer, login: str, token: str
) -> None:
    session = httpx.get(f"{bridge.url}/jmap/session", headers=bearer(token)).json()
    endpoints = Endpoints(bridge, session)
    blob_id = upload(bridge, endpoints.account, bearer(token))
    # Unknown to the authorization server; vouched for to bridge but refused by the
    # upstream at login (revoked in between).
    revoked = token + "-revoked"
    authority.tokens[revoked] = login
    authority.refused_upstream.add(revoked)
    try:
        for bad in ("never-issued", revoked):
            headers = bearer(bad, **{"X-Forwarded-For": "192.0.2.30"})
            assert endpoints.statuses(headers, blob_id) == ALL_REFUSED
    finally:
        endpoints.close()
    assert revoked in authority.asked_by_upstream


def test_bad_tokens_are_throttled_per_address(bridge: BridgeServer, token: str) -> None:
    def status(token: str, address: str) -> int:
        headers = bearer(token, **{"X-Forwarded-For": address})
        return httpx.get(f"{bridge.url}/jmap/session", headers=headers).status_code

    statuses = [status(f"guess-{n}", "198.51.100.40") for n in range(21)]
    assert statuses == [401] * 20 + [429]
    # A good token from that address is held back too until it has been accepted once;
    # another address is not.
    assert status(token, "198.51.100.40") == 429
    assert status(token, "198.51.100.41") == 200
    assert status(token, "198.51.100.40") == 200


def test_xoauth2_initial_response_logs_in_at_dovecot(dovecot: Dovecot, login: str,
                                                     token: str) -> None:  # fmt: skip
    """bridge prefers OAUTHBEARER; servers that offer only XOAUTH2 (Outlook) get this."""

    def authenticate(mechanism: str, token: str) -> bytes:
        initial = sasl_oauth(mechanism, login, token, dovecot.host, dovecot.port)
        with socket.create_connection((dovecot.host, dovecot.port), timeout=10) as sock:
            sock.recv(1024)
            sock.sendall(b"a AUTHENTICATE " + mechanism.encode() + b" " + initial + b"\r\n")
            reply = b""
            while b"a " not in reply:
                chunk = sock.recv(4096)
                if chunk.startswith(b"+"):  # the error challenge: answered, the server fails
                    sock.sendall(b"\r\n" if mechanism == "XOAUTH2" else b"AQ==\r\n")
                reply += chunk
            return reply[reply.index(b"a ") :]

    assert authenticate("XOAUTH2", token).startswith(b"a OK")
    assert authenticate("XOAUTH2", "not-a-token").startswith(b"a NO [AUTHENTICATIONFAILED]")
    assert authenticate("OAUTHBEARER", token).startswith(b"a OK")


def test_jmap_jam_a_bearer_only_client(bridge: BridgeServer, login: str, token: str) -> None:
    node = shutil.which("node")
    if node is None or not (JAM / "node_modules" / "jmap-jam").is_dir():
        # A missing client is a broken setup, not a test to pass over: .ci/run installs it.
        pytest.fail("node or jmap-jam missing (bash .ci/run installs them)")
    done = subprocess.run(
        [node, str(JAM / "client.mjs"), f"{bridge.url}/.well-known/jmap", token],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["username"] == login
    assert {"INBOX", "Drafts", "Sent", "Trash"} <= set(seen["mailboxes"])
    assert seen["inboxTotal"] == 0


# -- tokens bridge issues ----------------------------------------------------------------


def test_an_issued_token_works_everywhere_until_revoked(bridge: BridgeServer, login: str) -> None:
    issued = httpx.post(f"{bridge.url}/jmap/token", auth=(login, USERS[login]))
    assert issued.status_code == 200
    token = issued.json()["token"]
    assert issued.json()["expires"] == pytest.approx(time.time() + 3600, abs=60)
    session = httpx.get(f"{bridge.url}/jmap/session", headers=bearer(token)).json()
    assert session["username"] == login
    endpoints = Endpoints(bridge, session)
    blob_id = upload(bridge, endpoints.account, bearer(token))
    try:
        assert endpoints.statuses(bearer(token), blob_id) == ALL_OK
        revoked = endpoints.http.delete("/jmap/token", headers=bearer(token))
        assert revoked.status_code == 204
        assert endpoints.statuses(bearer(token), blob_id) == ALL_REFUSED
        again = endpoints.http.delete("/jmap/token", headers=bearer(token))
        assert again.status_code == 401 and again.headers["www-authenticate"] == INVALID
        # ?access_token= (EventSource in a browser) is revoked with it.
        stream = endpoints.http.get(f"/jmap/eventsource?types=*&access_token={token}")
        assert stream.status_code == 401
    finally:
        endpoints.close()


def test_an_issued_token_expires(dovecot: Dovecot, login: str, tmp_path: Path) -> None:
    with _bridge(dovecot, tmp_path, token_lifetime=1.0) as server:
        issued = httpx.post(f"{server.url}/jmap/token", auth=(login, USERS[login])).json()
        assert issued["expires"] - time.time() <= 1.0
        headers = bearer(issued["token"])
        assert httpx.get(f"{server.url}/jmap/session", headers=headers).status_code == 200
        time.sleep(1.2)
        expired = httpx.get(f"{server.url}/jmap/session", headers=headers)
        assert expired.status_code == 401
        assert expired.headers["www-authenticate"] == INVALID


def test_without_oauth_set_up_only_issued_tokens_pass(
    dovecot: Dovecot, login: str, token: str, tmp_path: Path
) -> None:
    with _bridge(dovecot, tmp_path) as server:
        refused = httpx.get(f"{server.url}/jmap/session", headers=bearer(token))
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == INVALID
        issued = httpx.post(f"{server.url}/jmap/token", auth=(login, USERS[login])).json()
        accepted = httpx.get(f"{server.url}/jmap/session", headers=bearer(issued["token"]))
        assert accepted.status_code == 200


def test_userinfo_mode_asks_with_the_token_itself(
    dovecot: Dovecot, authority: IntrospectionServer, login: str, token: str, tmp_path: Path
) -> None:
    """The OpenID Connect UserInfo way (Google's): a GET with the token as Bearer."""
    with _bridge(
        dovecot, tmp_path, oauth_introspection_url=authority.url,
        oauth_introspection_mode="userinfo", oauth_username_claim="username",
    ) as server:  # fmt: skip
        accepted = httpx.get(f"{server.url}/jmap/session", headers=bearer(token))
        refused = httpx.get(f"{server.url}/jmap/session", headers=bearer("unknown-token"))
    assert accepted.status_code == 200 and accepted.json()["username"] == login
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == INVALID
    assert token not in authority.asked_by_bridge  # asked by GET, as the upstream asks

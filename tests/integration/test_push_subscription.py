"""PushSubscription (RFC 8620 §7.2) end to end: a real bridge POSTing to a local receiver.

The main bridge here allows private targets (``push_allow_private``), since the receiver
is on loopback; ``strict`` is one with the setting off, as in production.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from tests.integration.push_receiver import Receiver
from tests.integration.server import CORE, BridgeServer, JmapClient

USERS = {f"pusher{n}": f"push-secret-{n}" for n in range(1, 13)}
WEEK = 7 * 24 * 3600
MESSAGE = b"From: a@example.com\r\nSubject: pushed\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with Dovecot(dict(USERS)) as server:
        server.spare = list(USERS.items())  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="module")
def push_bridge(
    dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeServer]:
    with BridgeServer(
        dovecot.host, dovecot.port, tmp_path_factory.mktemp("push"), push_allow_private=True
    ) as server:
        server.bridge.webpush.retry_base = 0.05  # retries in tens of milliseconds, not seconds
        yield server


@pytest.fixture(scope="module")
def strict(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeServer]:
    with BridgeServer(dovecot.host, dovecot.port, tmp_path_factory.mktemp("strict")) as server:
        yield server


@pytest.fixture
def login(dovecot: Dovecot) -> tuple[str, str]:
    return dovecot.spare.pop(0)  # type: ignore[attr-defined]


@pytest.fixture
def client(push_bridge: BridgeServer, login: tuple[str, str]) -> Iterator[JmapClient]:
    client = push_bridge.client(*login)
    yield client
    client.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def imap(dovecot: Dovecot, login: tuple[str, str]) -> Iterator[IMAPClient]:
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
    client.login(*login)
    yield client
    with contextlib.suppress(Exception):
        client.logout()


def push_call(client: JmapClient, method: str, args: dict[str, Any]) -> dict[str, Any]:
    """A PushSubscription call: only core in "using", and no accountId."""
    [[name, result, _]] = client.request([[method, args, "p"]], using=[CORE])
    assert name == method, (name, result)
    return result


def create(client: JmapClient, **properties: Any) -> dict[str, Any]:
    result = push_call(client, "PushSubscription/set", {"create": {"c": properties}})
    assert result["created"], result
    return result["created"]["c"]


def verified(client: JmapClient, receiver: Receiver, **properties: Any) -> str:
    """A subscription to the receiver, verified with the code it received."""
    sub_id = create(client, deviceClientId="device", url=receiver.url(), **properties)["id"]
    code = receiver.next().json()["verificationCode"]
    result = push_call(
        client, "PushSubscription/set", {"update": {sub_id: {"verificationCode": code}}}
    )
    assert result["updated"] == {sub_id: None}, result
    return sub_id


def utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds(date: str) -> float:
    return datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def state_change(client: JmapClient, receiver: Receiver, timeout: float = 5.0) -> dict[str, str]:
    body = receiver.next(timeout).json()
    assert body["@type"] == "StateChange", body
    return body["changed"][client.account_id]


def pushed_state(client: JmapClient, receiver: Receiver, type_name: str) -> dict[str, str]:
    """StateChanges until one carries the state that ``type_name``/get reports now. One
    change may take more than one push: the watcher may see it half way, before the
    request that made it publishes where it ends."""
    while True:
        changed = state_change(client, receiver)
        current = client.call(f"{type_name}/get", {"ids": []})["state"]
        if changed.get(type_name) == current:
            return changed


def test_verification_then_state_changes_from_bridge_and_from_imap(
    client: JmapClient, receiver: Receiver, imap: IMAPClient
) -> None:
    client.mailboxes()
    created = create(client, deviceClientId="phone-1", url=receiver.url())
    sub_id = created["id"]
    assert created["keys"] is None and created["verificationCode"] is None
    assert abs(seconds(created["expires"]) - (time.time() + WEEK)) < 60  # the default: a week
    verification = receiver.next()
    assert verification.headers["content-type"] == "application/json"
    assert int(verification.headers["ttl"]) > 0
    body = verification.json()
    assert set(body) == {"@type", "pushSubscriptionId", "verificationCode"}
    assert (body["@type"], body["pushSubscriptionId"]) == ("PushVerification", sub_id)
    code = body["verificationCode"]
    assert len(code) >= 16

    # Unverified: the code is not shown, and changes are not pushed.
    [shown] = push_call(client, "PushSubscription/get", {"ids": None})["list"]
    assert shown == {"id": sub_id, "deviceClientId": "phone-1", "verificationCode": None,
                     "expires": created["expires"], "types": None}  # fmt: skip
    client.call("Mailbox/set", {"create": {"m": {"name": "Before verification"}}})
    receiver.assert_silent(0.6)

    wrong = push_call(client, "PushSubscription/set",
                      {"update": {sub_id: {"verificationCode": "guess"}}})  # fmt: skip
    assert wrong["notUpdated"][sub_id]["type"] == "invalidProperties"
    assert wrong["notUpdated"][sub_id]["properties"] == ["verificationCode"]
    right = push_call(client, "PushSubscription/set",
                      {"update": {sub_id: {"verificationCode": code}}})  # fmt: skip
    assert right["updated"] == {sub_id: None}
    [shown] = push_call(client, "PushSubscription/get", {"ids": [sub_id]})["list"]
    assert shown["verificationCode"] == code

    client.call("Mailbox/set", {"create": {"m": {"name": "After verification"}}})
    assert set(pushed_state(client, receiver, "Mailbox")) == {"Mailbox"}

    imap.append("INBOX", MESSAGE)  # behind bridge's back: the user's watcher finds it
    assert "Email" in pushed_state(client, receiver, "Email")


def test_encrypted_pushes_decrypt_with_the_receivers_key(
    client: JmapClient, receiver: Receiver
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    keys = {"p256dh": base64.urlsafe_b64encode(public).decode().rstrip("="),
            "auth": base64.urlsafe_b64encode(auth).decode().rstrip("=")}  # fmt: skip

    def decrypt(body: bytes) -> dict[str, Any]:
        import json

        return json.loads(
            http_ece.decrypt(body, private_key=private, auth_secret=auth, version="aes128gcm")
        )

    sub_id = create(client, deviceClientId="browser", url=receiver.url(), keys=keys,
                    types=["Mailbox"])["id"]  # fmt: skip
    verification = receiver.next()
    assert verification.headers["content-encoding"] == "aes128gcm"
    assert b"verificationCode" not in verification.body
    code = decrypt(verification.body)["verificationCode"]
    push_call(client, "PushSubscription/set", {"update": {sub_id: {"verificationCode": code}}})

    client.call("Mailbox/set", {"create": {"m": {"name": "Secret"}}})
    pushed = receiver.next()
    assert pushed.headers["content-encoding"] == "aes128gcm"
    body = decrypt(pushed.body)
    assert body["@type"] == "StateChange"
    assert set(body["changed"][client.account_id]) == {"Mailbox"}  # the types asked for

    [[name, error, _]] = client.request(
        [["PushSubscription/get", {"properties": ["keys"]}, "k"]], using=[CORE]
    )
    assert (name, error["type"]) == ("error", "forbidden")


def loopback_names(port: int) -> list[str]:
    """Names (not IP literals) that resolve to loopback here: ``127.1`` always does;
    this machine's own name often does too."""
    names = [f"https://127.1:{port}/", f"https://2130706433:{port}/"]
    host = socket.gethostname()
    with contextlib.suppress(OSError):
        if {info[4][0] for info in socket.getaddrinfo(host, port)} <= {"127.0.0.1", "::1"}:
            names.append(f"https://{host}:{port}/")
    return names


def test_private_targets_are_refused_without_a_connection(
    strict: BridgeServer, login: tuple[str, str], receiver: Receiver
) -> None:
    client = strict.client(*login)
    port = receiver.port
    urls = [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        f"http://127.0.0.1:{port}/push",  # plain http, even to a public address, is refused
        f"https://127.0.0.1:{port}/push",
        f"https://localhost:{port}/push",
        f"https://[::ffff:127.0.0.1]:{port}/push",
        *loopback_names(port),
    ]
    create = {str(n): {"deviceClientId": "d", "url": url} for n, url in enumerate(urls)}
    result = push_call(client, "PushSubscription/set", {"create": create})
    assert result["created"] is None
    for key, url in zip(create, urls, strict=True):
        error = result["notCreated"][key]
        assert (error["type"], error["properties"]) == ("invalidProperties", ["url"]), url
        assert error["description"].startswith("url refused")
    time.sleep(0.3)
    assert receiver.connections == 0 and receiver.deliveries.empty()
    assert push_call(client, "PushSubscription/get", {})["list"] == []
    client.close()


def test_expired_subscriptions_vanish(client: JmapClient, receiver: Receiver) -> None:
    soon = int(time.time()) + 2
    created = create(client, deviceClientId="d", url=receiver.url(), expires=utc(soon))
    assert created["expires"] == utc(soon)  # within the limit: kept as asked
    far = create(client, deviceClientId="d", url=receiver.url(), expires="2999-01-01T00:00:00Z")
    assert abs(seconds(far["expires"]) - (time.time() + WEEK)) < 60  # capped at a week
    listed = push_call(client, "PushSubscription/get", {})["list"]
    assert {s["id"] for s in listed} == {created["id"], far["id"]}
    time.sleep(max(0.0, soon - time.time()) + 0.2)
    after = push_call(client, "PushSubscription/get", {"ids": [created["id"], far["id"]]})
    assert [s["id"] for s in after["list"]] == [far["id"]]
    assert after["notFound"] == [created["id"]]


def test_destroy_stops_deliveries(client: JmapClient, receiver: Receiver) -> None:
    client.mailboxes()
    sub_id = verified(client, receiver)
    client.call("Mailbox/set", {"create": {"m": {"name": "Delivered"}}})
    assert "Mailbox" in pushed_state(client, receiver, "Mailbox")
    result = push_call(client, "PushSubscription/set", {"destroy": [sub_id]})
    assert result["destroyed"] == [sub_id]
    client.call("Mailbox/set", {"create": {"m": {"name": "Not delivered"}}})
    receiver.assert_silent(0.6)
    assert push_call(client, "PushSubscription/get", {"ids": [sub_id]})["notFound"] == [sub_id]


def test_retries_on_503_and_destroys_on_410(client: JmapClient, receiver: Receiver) -> None:
    receiver.script["/flaky"] = [503]
    flaky = create(client, deviceClientId="d", url=receiver.url("/flaky"))["id"]
    first, second = receiver.next(), receiver.next()  # answered 503, then tried again
    assert first.body == second.body and first.json()["pushSubscriptionId"] == flaky

    receiver.script["/gone"] = [410]
    gone = create(client, deviceClientId="d", url=receiver.url("/gone"))["id"]
    assert receiver.next().path == "/gone"
    deadline = time.monotonic() + 5
    while push_call(client, "PushSubscription/get", {"ids": [gone]})["notFound"] != [gone]:
        assert time.monotonic() < deadline, "a 410 did not destroy the subscription"
        time.sleep(0.05)
    assert push_call(client, "PushSubscription/get", {"ids": [flaky]})["notFound"] == []


def test_bad_arguments_and_properties(client: JmapClient, receiver: Receiver) -> None:
    def error_of(method: str, args: dict[str, Any]) -> dict[str, Any]:
        [[name, result, _]] = client.request([[method, args, "e"]], using=[CORE])
        assert name == "error", result
        return result

    assert error_of("PushSubscription/get", {"accountId": client.account_id})["type"] == (
        "invalidArguments"  # not tied to an account
    )
    assert error_of("PushSubscription/get", {"properties": ["url"]})["type"] == "forbidden"
    assert error_of("PushSubscription/get", {"properties": ["nope"]})["type"] == "invalidArguments"
    assert error_of("PushSubscription/set", {"ifInState": "x"})["type"] == "invalidArguments"

    url = receiver.url()
    bad = {
        "noDevice": ({"url": url}, ["deviceClientId"]),
        "noUrl": ({"deviceClientId": "d"}, ["url"]),
        "id": ({"id": "mine", "deviceClientId": "d", "url": url}, ["id"]),
        "code": ({"deviceClientId": "d", "url": url, "verificationCode": "x"},
                 ["verificationCode"]),
        "keys": ({"deviceClientId": "d", "url": url, "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
                 ["keys"]),
        "expires": ({"deviceClientId": "d", "url": url, "expires": "tomorrow"}, ["expires"]),
        "past": ({"deviceClientId": "d", "url": url, "expires": "2001-01-01T00:00:00Z"},
                 ["expires"]),
        "types": ({"deviceClientId": "d", "url": url, "types": "Email"}, ["types"]),
        "ftp": ({"deviceClientId": "d", "url": "ftp://127.0.0.1/"}, ["url"]),
    }  # fmt: skip
    result = push_call(client, "PushSubscription/set",
                       {"create": {key: obj for key, (obj, _) in bad.items()}})  # fmt: skip
    assert result["created"] is None
    for key, (_, properties) in bad.items():
        assert result["notCreated"][key]["type"] == "invalidProperties", key
        assert result["notCreated"][key]["properties"] == properties, key
    receiver.assert_silent(0.2)  # nothing was created, so nothing was verified

    sub_id = create(client, deviceClientId="d", url=url)["id"]
    receiver.next()
    immutable = push_call(client, "PushSubscription/set",
                          {"update": {sub_id: {"url": url + "/other"}}})  # fmt: skip
    assert immutable["notUpdated"][sub_id]["properties"] == ["url"]
    missing = push_call(client, "PushSubscription/set", {"destroy": ["Pnope"]})
    assert missing["notDestroyed"]["Pnope"]["type"] == "notFound"


def test_creation_is_rate_limited(client: JmapClient, receiver: Receiver) -> None:
    create_many = {str(n): {"deviceClientId": "d", "url": receiver.url()} for n in range(11)}
    result = push_call(client, "PushSubscription/set", {"create": create_many})
    assert len(result["created"]) == 10
    assert [e["type"] for e in result["notCreated"].values()] == ["rateLimit"]


def test_after_a_restart_deliveries_resume_with_the_users_next_request(
    dovecot: Dovecot,
    login: tuple[str, str],
    receiver: Receiver,
    imap: IMAPClient,
    tmp_path: Path,
) -> None:
    with BridgeServer(dovecot.host, dovecot.port, tmp_path, push_allow_private=True) as first:
        client = first.client(*login)
        client.mailboxes()
        verified(client, receiver)
    client.close()

    with BridgeServer(dovecot.host, dovecot.port, tmp_path, push_allow_private=True) as again:
        client = again.client(*login)
        try:
            # Nothing in memory: without the password there is no watcher to see this.
            imap.append("INBOX", MESSAGE)
            receiver.assert_silent(1.0)
            client.mailboxes()  # a request: bridge has the password again, and its sync news
            assert "Email" in pushed_state(client, receiver, "Email")
            imap.append("INBOX", MESSAGE)  # and the watcher runs from now on
            assert "Email" in pushed_state(client, receiver, "Email")
        finally:
            client.close()

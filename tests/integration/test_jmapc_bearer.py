"""A Python JMAP client from PyPI (jmapc) holding nothing but the mail provider's OAuth access
token, end to end: session, Mailbox/get, upload, Email/set, Email/query, Email/get,
download and the event stream, over HTTPS as jmapc requires.

Issue 12 names agent-jmap-mcp (PyPI) as the second Bearer-only client; its only release,
0.2.0, fails at import, so jmapc's token mode stands in for it (jmap-jam, the JavaScript
one, runs in test_bearer.py). The token is checked by introspection, and Dovecot's oauth2
passdb takes the same token at bridge's upstream login: no password is used anywhere.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jmapc import (
    Client,
    Comparator,
    Email,
    EmailAddress,
    EmailBodyPart,
    EmailBodyValue,
    EmailQueryFilterCondition,
    EventSourceConfig,
    Ref,
)
from jmapc.methods import EmailGet, EmailQuery, EmailSet, MailboxGet

from bridge.demo.dovecot import Dovecot
from tests.certificates import self_signed
from tests.integration.oauth_server import IntrospectionServer
from tests.integration.server import BridgeServer

USER = "tokenholder"


@pytest.fixture(scope="module")
def authority() -> Iterator[IntrospectionServer]:
    with IntrospectionServer() as server:
        yield server


@pytest.fixture(scope="module")
def tls_bridge(
    authority: IntrospectionServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BridgeServer, Path]]:
    # jmapc only speaks https://host/.well-known/jmap: a self-signed certificate.
    folder = tmp_path_factory.mktemp("jmapc-bearer")
    cert, key = self_signed(folder)
    unused_password = base64.urlsafe_b64encode(os.urandom(18)).decode()
    with (
        Dovecot({USER: unused_password}, oauth_introspection_url=authority.url) as dovecot,
        BridgeServer(
            dovecot.host, dovecot.port, folder / "data", ssl_files=(str(cert), str(key)),
            oauth_introspection_url=authority.url,
        ) as server,
    ):  # fmt: skip
        yield server, cert


@pytest.fixture
def token(authority: IntrospectionServer) -> str:
    token = base64.urlsafe_b64encode(os.urandom(24)).decode()
    authority.tokens[token] = USER
    return token


def client_with(
    server: BridgeServer, cert: Path, token: str, **options: Any
) -> Client:
    client = Client.create_with_api_token(f"127.0.0.1:{server.port}", token, **options)
    client.requests_session.verify = str(cert)
    return client


def test_jmapc_with_only_a_bearer_token(
    tls_bridge: tuple[BridgeServer, Path],
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    server, cert = tls_bridge
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # sseclient's own requests
    listener = client_with(
        server, cert, token,
        event_source_config=EventSourceConfig(types="Email", closeafter="no", ping=0),
    )  # fmt: skip
    client = client_with(server, cert, token)
    assert client.jmap_session.username == USER
    mailboxes = {m.role: m for m in client.request(MailboxGet(ids=None)).data}
    assert {"inbox", "drafts", "sent", "trash"} <= set(mailboxes)
    state = client.request(EmailGet(ids=[])).state

    heard: queue.Queue[Any] = queue.Queue()

    def listen() -> None:
        with contextlib.suppress(Exception):  # the server going away ends the stream
            for event in listener.events:
                heard.put(event)

    threading.Thread(target=listen, daemon=True).start()
    time.sleep(0.5)  # the stream is open and the user's watcher listens upstream

    note = tmp_path / "note.txt"
    note.write_bytes(b"token-only notes\n")
    blob = client.upload_blob(note)
    assert blob.size == len(b"token-only notes\n")
    created = client.request(EmailSet(create={"d": Email(
        mailbox_ids={mailboxes["drafts"].id: True}, keywords={"$draft": True},
        mail_from=[EmailAddress(email=f"{USER}@example.test")], subject="Bearer only",
        body_values={"t": EmailBodyValue(value="sent with a token")},
        text_body=[EmailBodyPart(part_id="t", type="text/plain")],
        attachments=[EmailBodyPart(blob_id=blob.id, type="text/plain", name="note.txt")],
    )}))  # fmt: skip
    email_id = created.created["d"].id
    event = heard.get(timeout=10)
    assert client.account_id in event.data.changed

    query, got = client.request([
        EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=mailboxes["drafts"].id),
                   sort=[Comparator(property="receivedAt", is_ascending=False)]),
        EmailGet(ids=Ref("/ids"), properties=["subject", "attachments", "keywords"]),
    ])  # fmt: skip
    assert query.response.ids == [email_id]
    [email] = got.response.data
    assert email.subject == "Bearer only" and email.keywords == {"$draft": True}
    assert got.response.state != state
    back = tmp_path / "back.txt"
    client.download_attachment(email.attachments[0], back)
    assert back.read_bytes() == b"token-only notes\n"

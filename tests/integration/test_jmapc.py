"""An independent JMAP client from PyPI (jmapc) against a real bridge over HTTPS, with a
password and with nothing but a Bearer token."""

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
from imapclient import IMAPClient
from jmapc import (
    Address,
    Client,
    Comparator,
    Email,
    EmailAddress,
    EmailBodyPart,
    EmailBodyValue,
    EmailQueryFilterCondition,
    EmailSubmission,
    Envelope,
    EventSourceConfig,
    Ref,
    UndoStatus,
)
from jmapc.methods import (
    CoreEcho,
    EmailChanges,
    EmailGet,
    EmailQuery,
    EmailSet,
    EmailSetResponse,
    EmailSubmissionSet,
    EmailSubmissionSetResponse,
    IdentityGet,
    MailboxGet,
    ThreadGet,
)

from bridge.demo.dovecot import Dovecot
from tests.certificates import self_signed
from tests.integration.oauth_server import IntrospectionServer
from tests.integration.server import BridgeServer
from tests.integration.smtp_sink import SmtpSink


@contextlib.contextmanager
def https_bridge(
    upstream: Dovecot, folder: Path, **settings: Any
) -> Iterator[tuple[BridgeServer, Path]]:
    """bridge over HTTPS with a self-signed certificate (jmapc only speaks
    https://host/.well-known/jmap), and the certificate."""
    cert, key = self_signed(folder)
    with BridgeServer(
        upstream.host, upstream.port, folder / "data", ssl_files=(str(cert), str(key)),
        **settings,
    ) as server:  # fmt: skip
        yield server, cert


@pytest.fixture(scope="module")
def tls_bridge(
    upstream: Dovecot, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BridgeServer, Path]]:
    with https_bridge(upstream, tmp_path_factory.mktemp("tls")) as served:
        yield served


def test_jmapc_discovers_echoes_and_lists_mailboxes(
    tls_bridge: tuple[BridgeServer, Path],
    account: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, cert = tls_bridge
    user, password = account
    # requests lets these variables override a session's own verify setting.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(cert))
    client = Client.create_with_password(f"127.0.0.1:{server.port}", user, password)
    client.requests_session.verify = str(cert)
    assert client.jmap_session.username == user
    assert client.jmap_session.api_url.startswith(server.url)
    echo = client.request(CoreEcho(data={"hello": "bridge"}))
    assert echo.data == {"hello": "bridge"}
    mailboxes = client.request(MailboxGet(ids=None))
    by_role = {mailbox.role: mailbox for mailbox in mailboxes.data}
    assert by_role["inbox"].name == "INBOX"
    assert {"drafts", "sent", "trash"} <= set(by_role)
    assert all(mailbox.id for mailbox in mailboxes.data)


def test_jmapc_reads_mail(
    tls_bridge: tuple[BridgeServer, Path],
    account: tuple[str, str],
    other: IMAPClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, cert = tls_bridge
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    other.append(
        "INBOX", b"From: a@example.com\r\nSubject: First\r\nMessage-ID: <f@x>\r\n\r\nhi\r\n"
    )
    client = Client.create_with_password(f"127.0.0.1:{server.port}", *account)
    client.requests_session.verify = str(cert)
    inbox = next(m for m in client.request(MailboxGet(ids=None)).data if m.role == "inbox")
    query, got = client.request(
        [
            EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=inbox.id),
                       sort=[Comparator(property="receivedAt", is_ascending=False)]),
            EmailGet(ids=Ref("/ids"), properties=["threadId", "subject", "from"]),
        ]
    )  # fmt: skip
    assert query.response.ids == [got.response.data[0].id]
    [email] = got.response.data
    assert email.subject == "First" and email.mail_from[0].email == "a@example.com"
    state = got.response.state
    threads = client.request(ThreadGet(ids=[email.thread_id]))
    assert threads.data[0].email_ids == [email.id]
    other.append("INBOX", b"From: b@example.com\r\nSubject: Second\r\n\r\nho\r\n")
    changes = client.request(EmailChanges(since_state=state))
    assert len(changes.created) == 1 and changes.created[0] != email.id


def listening(client: Client) -> queue.Queue[Any]:
    """The events of ``client``'s event stream, as they come, read by a thread."""
    heard: queue.Queue[Any] = queue.Queue()

    def listen() -> None:
        with contextlib.suppress(Exception):  # the server going away ends the stream
            for event in client.events:
                heard.put(event)

    threading.Thread(target=listen, daemon=True).start()
    time.sleep(0.5)  # the stream is open and the user's watcher listens upstream
    return heard


def test_jmapc_hears_another_clients_changes_on_its_event_stream(
    tls_bridge: tuple[BridgeServer, Path],
    account: tuple[str, str],
    other: IMAPClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, cert = tls_bridge
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # sseclient's own requests
    client = Client.create_with_password(
        f"127.0.0.1:{server.port}", *account,
        event_source_config=EventSourceConfig(types="Email", closeafter="no", ping=0),
    )  # fmt: skip
    client.requests_session.verify = str(cert)
    other.append("INBOX", b"From: a@example.com\r\nSubject: Heard\r\n\r\nhi\r\n")
    state = client.request(EmailGet(ids=[])).state
    heard = listening(client)
    other.select_folder("INBOX")
    changes = [
        ("created", lambda: other.append("INBOX", b"Subject: New\r\n\r\nb\r\n")),
        ("updated", lambda: other.add_flags(other.search("ALL")[:1], [b"\\Flagged"])),
        ("destroyed", lambda: (other.delete_messages(other.search("ALL")[:1]), other.expunge())),
    ]
    for kind, change in changes:
        time.sleep(0.3)
        while not heard.empty():  # nothing left over from the change before
            heard.get()
        change()
        event = heard.get(timeout=5)
        assert client.account_id in event.data.changed
        found = client.request(EmailChanges(since_state=state))
        reported = {"created": found.created, "updated": found.updated,
                    "destroyed": found.destroyed}  # fmt: skip
        assert len(reported.pop(kind)) == 1 and not any(reported.values()), (kind, found)
        state = found.new_state


def test_jmapc_writes(
    tls_bridge: tuple[BridgeServer, Path],
    account: tuple[str, str],
    other: IMAPClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """jmapc uploads and downloads a blob, creates a draft with it, then flags the draft."""
    server, cert = tls_bridge
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    client = Client.create_with_password(f"127.0.0.1:{server.port}", *account)
    client.requests_session.verify = str(cert)
    note = tmp_path / "note.txt"
    note.write_bytes(b"attached notes\n")
    blob = client.upload_blob(note)
    assert blob.size == len(b"attached notes\n") and blob.type == "text/plain"
    drafts = next(m for m in client.request(MailboxGet(ids=None)).data if m.role == "drafts")
    created = client.request(EmailSet(create={"d": Email(
        mailbox_ids={drafts.id: True}, keywords={"$draft": True},
        mail_from=[EmailAddress(name="Tester", email="tester@example.com")],
        to=[EmailAddress(email="friend@example.com")], subject="From jmapc",
        body_values={"t": EmailBodyValue(value="Hello from jmapc")},
        text_body=[EmailBodyPart(part_id="t", type="text/plain")],
        attachments=[EmailBodyPart(blob_id=blob.id, type="text/plain", name="note.txt")],
    )}))  # fmt: skip
    email_id = created.created["d"].id
    flagged = client.request(EmailSet(update={email_id: {"keywords/$flagged": True}}))
    assert email_id in flagged.updated
    [email] = client.request(EmailGet(ids=[email_id], properties=["attachments", "keywords"])).data
    assert email.keywords == {"$draft": True, "$flagged": True}
    target = tmp_path / "back.txt"
    client.download_attachment(email.attachments[0], target)
    assert target.read_bytes() == b"attached notes\n"
    other.select_folder("Drafts", readonly=True)
    [data] = other.fetch(other.search("ALL"), ["FLAGS", "ENVELOPE"]).values()
    assert {b"\\Draft", b"\\Flagged"} <= set(data[b"FLAGS"])
    assert data[b"ENVELOPE"].subject == b"From jmapc"


SENDER, SENDER_PASSWORD = "writer@example.test", "writer-pw"


@pytest.fixture(scope="module")
def sending_bridge(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BridgeServer, Path, SmtpSink]]:
    """A Dovecot whose SMTP submission relays to a sink, and a bridge sending through it."""
    with (
        SmtpSink() as sink,
        Dovecot({SENDER: SENDER_PASSWORD}, relay_port=sink.port) as dovecot,
        https_bridge(
            dovecot, tmp_path_factory.mktemp("sending"),
            submission_port=dovecot.submission_port, submission_tls="plain",
        ) as (server, cert),
    ):  # fmt: skip
        yield server, cert, sink


def test_jmapc_sends_a_draft_and_files_it(
    sending_bridge: tuple[BridgeServer, Path, SmtpSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual client flow in one request: create a draft, submit it, and on success
    drop $draft and move it from Drafts to Sent."""
    server, cert, sink = sending_bridge
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    client = Client.create_with_password(f"127.0.0.1:{server.port}", SENDER, SENDER_PASSWORD)
    client.requests_session.verify = str(cert)
    [identity] = client.request(IdentityGet(ids=None)).data
    assert identity.email == SENDER and identity.may_delete is False
    boxes = {m.role: m for m in client.request(MailboxGet(ids=None)).data}
    drafts, sent = boxes["drafts"].id, boxes["sent"].id
    results = client.request([
        EmailSet(create={"draft": Email(
            mailbox_ids={drafts: True}, keywords={"$draft": True},
            mail_from=[EmailAddress(name="Writer", email=SENDER)],
            to=[EmailAddress(email="reader@example.net")],
            bcc=[EmailAddress(email="hidden@example.net")], subject="Sent by jmapc",
            body_values={"t": EmailBodyValue(value="Hello from jmapc")},
            text_body=[EmailBodyPart(part_id="t", type="text/plain")],
        )}),
        EmailSubmissionSet(
            create={"send": EmailSubmission(identity_id=identity.id, email_id="#draft")},
            on_success_update_email={"#send": {
                "keywords/$draft": None, f"mailboxIds/{drafts}": None, f"mailboxIds/{sent}": True,
            }},
        ),
    ])  # fmt: skip
    [created, submitted, filed] = [result.response for result in results]
    assert isinstance(submitted, EmailSubmissionSetResponse), submitted
    assert isinstance(filed, EmailSetResponse), filed
    assert results[1].id == results[2].id  # the implicit Email/set answers the same call
    email_id = created.created["draft"].id
    submission = submitted.created["send"]
    assert submission.undo_status == UndoStatus.FINAL
    assert submission.envelope == Envelope(
        mail_from=Address(email=SENDER),
        rcpt_to=[Address(email="reader@example.net"), Address(email="hidden@example.net")],
    )
    assert email_id in filed.updated
    [email] = client.request(EmailGet(ids=[email_id], properties=["mailboxIds", "keywords"])).data
    assert email.mailbox_ids == {sent: True} and "$draft" not in (email.keywords or {})
    [arrival] = sink.wait_for(1)
    assert arrival.mail_from == SENDER
    assert arrival.rcpt_to == ["reader@example.net", "hidden@example.net"]
    assert b"Subject: Sent by jmapc" in arrival.message and b"Bcc:" not in arrival.message


# -- Bearer only ------------------------------------------------------------------------
# jmapc holding nothing but the mail provider's OAuth access token, end to end. Issue 12
# names agent-jmap-mcp (PyPI) as the second Bearer-only client; its only release, 0.2.0,
# fails at import, so jmapc's token mode stands in for it (jmap-jam, the JavaScript one,
# runs in test_bearer.py). The token is checked by introspection, and Dovecot's oauth2
# passdb takes the same token at bridge's upstream login: no password is used anywhere.

TOKEN_USER = "tokenholder"


@pytest.fixture(scope="module")
def authority() -> Iterator[IntrospectionServer]:
    with IntrospectionServer() as server:
        yield server


@pytest.fixture(scope="module")
def token_bridge(
    authority: IntrospectionServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BridgeServer, Path]]:
    unused_password = base64.urlsafe_b64encode(os.urandom(18)).decode()
    with (
        Dovecot({TOKEN_USER: unused_password}, oauth_introspection_url=authority.url) as dovecot,
        https_bridge(
            dovecot, tmp_path_factory.mktemp("jmapc-bearer"),
            oauth_introspection_url=authority.url,
        ) as served,
    ):  # fmt: skip
        yield served


@pytest.fixture
def token(authority: IntrospectionServer) -> str:
    token = base64.urlsafe_b64encode(os.urandom(24)).decode()
    authority.tokens[token] = TOKEN_USER
    return token


def client_with(server: BridgeServer, cert: Path, token: str, **options: Any) -> Client:
    client = Client.create_with_api_token(f"127.0.0.1:{server.port}", token, **options)
    client.requests_session.verify = str(cert)
    return client


def test_jmapc_with_only_a_bearer_token(
    token_bridge: tuple[BridgeServer, Path],
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    server, cert = token_bridge
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # sseclient's own requests
    listener = client_with(
        server, cert, token,
        event_source_config=EventSourceConfig(types="Email", closeafter="no", ping=0),
    )  # fmt: skip
    client = client_with(server, cert, token)
    assert client.jmap_session.username == TOKEN_USER
    mailboxes = {m.role: m for m in client.request(MailboxGet(ids=None)).data}
    assert {"inbox", "drafts", "sent", "trash"} <= set(mailboxes)
    state = client.request(EmailGet(ids=[])).state
    heard = listening(listener)

    note = tmp_path / "note.txt"
    note.write_bytes(b"token-only notes\n")
    blob = client.upload_blob(note)
    assert blob.size == len(b"token-only notes\n")
    created = client.request(EmailSet(create={"d": Email(
        mailbox_ids={mailboxes["drafts"].id: True}, keywords={"$draft": True},
        mail_from=[EmailAddress(email=f"{TOKEN_USER}@example.test")], subject="Bearer only",
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

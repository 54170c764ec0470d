"""An independent JMAP client from PyPI (jmapc) against a real bridge over HTTPS."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient
from jmapc import (
    Client,
    Comparator,
    Email,
    EmailAddress,
    EmailBodyPart,
    EmailBodyValue,
    EmailQueryFilterCondition,
    Ref,
)
from jmapc.methods import (
    CoreEcho,
    EmailChanges,
    EmailGet,
    EmailQuery,
    EmailSet,
    MailboxGet,
    ThreadGet,
)

from bridge.demo.dovecot import Dovecot
from tests.integration.server import BridgeServer


@pytest.fixture(scope="module")
def tls_bridge(
    upstream: Dovecot, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BridgeServer, Path]]:
    # jmapc only speaks https://host/.well-known/jmap: serve a self-signed certificate.
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = BridgeServer(
        upstream.host, upstream.port, folder / "data", ssl_files=(str(cert), str(key))
    ).start()
    yield server, cert
    server.stop()


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

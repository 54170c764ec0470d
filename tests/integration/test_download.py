"""Blob downloads (RFC 8620 §6.2): every part of a nested message streams out decoded, the
answers are safe to open in a browser, and a user's concurrent downloads are capped."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.test_email import query

BINARY = bytes(range(256)) * 100
NESTED = (
    b"From: Ann <ann@example.com>\r\nSubject: Nested\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="out"\r\n\r\n'
    b"--out\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
    b"--alt\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=C3=A9 =\r\nsoft break and a long =3D line" + b" p=C3=A9d" * 3000 + b"  \r\n"
    b"--alt\r\nContent-Type: text/html\r\n\r\n<p onclick=alert(1)>hi</p>\r\n--alt--\r\n"
    b"--out\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(BINARY).replace(b"\n", b"\r\n")
    + b"--out\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: Bob <bob@example.com>\r\nSubject: Inner\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\naW5uZXIgYm9keQ==\r\n"
    b"--out\r\n\r\nno headers at all\r\n"
    b"--out--\r\n"
)
INNER = (
    b"From: Bob <bob@example.com>\r\nSubject: Inner\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\naW5uZXIgYm9keQ=="
)


def url(jmap: JmapClient, blob_id: str, media_type: str = "application/octet-stream") -> str:
    # RFC 6570 simple expansion: "+" and "/" are percent-encoded.
    return jmap.session["downloadUrl"].format(
        accountId=jmap.account_id, blobId=blob_id, name="file", type=quote(media_type, safe="")
    )


def test_every_part_downloads_decoded(jmap: JmapClient, other: IMAPClient) -> None:
    check_parts(jmap, other)


def test_parts_decode_across_small_chunks(
    upstream: Dovecot, account: tuple[str, str], other: IMAPClient, tmp_path: Path
) -> None:
    """Pieces of 4 KiB: escapes, soft line breaks and base64 groups fall across them."""
    with BridgeServer(upstream.host, upstream.port, tmp_path, blob_chunk_size=4096) as server:
        jmap = server.client(*account)
        check_parts(jmap, other)
        jmap.close()


def check_parts(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", NESTED)
    [email_id] = query(jmap)
    base = f"B{email_id}"
    expected = {
        "1-1": "café soft break and a long = line".encode() + " péd".encode() * 3000,
        "1-2": b"<p onclick=alert(1)>hi</p>",
        "2": BINARY,
        "3": INNER,
        "3-1": b"inner body",
        "4": b"no headers at all",
    }
    for section, content in expected.items():
        response = jmap.http.get(url(jmap, f"{base}_{section}"))
        assert response.status_code == 200, section
        assert response.content == content, section
    # A multipart has no blob of its own (RFC 8621 §4.1.4); a part that is not there none.
    for section in ("1", "5", "3-2", "2-1"):
        assert jmap.http.get(url(jmap, f"{base}_{section}")).status_code == 404, section
    # The parts the client was told of download alike.
    got = jmap.call("Email/get", {"ids": [email_id], "properties": ["attachments"]})
    for attachment in got["list"][0]["attachments"]:
        assert jmap.http.get(url(jmap, attachment["blobId"])).status_code == 200


def test_downloads_are_not_run_as_pages(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", NESTED)
    [email_id] = query(jmap)
    for media_type in ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml"):
        page = jmap.http.get(url(jmap, f"B{email_id}", media_type))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith(media_type)
        assert page.headers["x-content-type-options"] == "nosniff"
        csp = page.headers["content-security-policy"]
        assert "sandbox" in csp and "default-src 'none'" in csp
        assert page.headers["content-disposition"].startswith('attachment; filename="file"')
    pdf = jmap.http.get(url(jmap, f"B{email_id}_2", "application/pdf"))
    assert pdf.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in pdf.headers


@pytest.fixture
def one_download_bridge(upstream: Dovecot, tmp_path: Path) -> Iterator[BridgeServer]:
    with BridgeServer(upstream.host, upstream.port, tmp_path, max_concurrent_downloads=1) as server:
        yield server


def test_concurrent_downloads_are_capped(
    one_download_bridge: BridgeServer, account: tuple[str, str]
) -> None:
    imap = IMAPClient("127.0.0.1", port=one_download_bridge.settings.upstream_port, ssl=False)
    imap.login(*account)
    big = b"Subject: big\r\n\r\n" + base64.encodebytes(os.urandom(12 << 20))
    imap.append("INBOX", big.replace(b"\n", b"\r\n"))
    imap.logout()
    jmap = one_download_bridge.client(*account)
    [email_id] = query(jmap)
    target = httpx.URL(url(jmap, f"B{email_id}"))
    login = base64.b64encode(":".join(account).encode()).decode()
    # A raw connection with a small receive buffer that reads only the first octets: the
    # download stays in progress until it is closed.
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    held.connect((target.host, target.port))
    held.sendall(f"GET {target.raw_path.decode()} HTTP/1.1\r\nHost: {target.host}\r\n"
                 f"Authorization: Basic {login}\r\n\r\n".encode())  # fmt: skip
    assert held.recv(100).startswith(b"HTTP/1.1 200")
    refused = jmap.http.get(str(target))
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["limit"] == "maxConcurrentDownloads"
    held.close()
    # The slot is free again once the first download is over.
    for _ in range(100):
        if one_download_bridge.app.state.download_slots.active(account[0]) == 0:
            break
        time.sleep(0.05)
    assert jmap.http.get(str(target)).status_code == 200
    jmap.close()


def test_parts_of_other_emails_attach_as_they_download(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", NESTED)
    [email_id] = query(jmap)
    boxes = jmap.mailboxes()
    attachments = [
        {"blobId": f"B{email_id}_2", "type": "application/octet-stream", "name": "bin"},
        {"blobId": f"B{email_id}_3-1", "type": "text/plain", "name": "inner.txt"},
    ]
    result = jmap.call("Email/set", {"create": {"fwd": {
        "mailboxIds": {boxes["Drafts"]["id"]: True}, "subject": "Forwarded parts",
        "attachments": attachments,
    }}})  # fmt: skip
    created = result["created"]["fwd"]["id"]
    got = jmap.call("Email/get", {"ids": [created], "properties": ["attachments"]})
    downloaded = [jmap.http.get(url(jmap, a["blobId"])).content
                  for a in got["list"][0]["attachments"]]  # fmt: skip
    assert downloaded == [BINARY, b"inner body"]


def test_a_message_expunged_while_it_downloads_is_never_a_shorter_blob(
    upstream: Dovecot, account: tuple[str, str], other: IMAPClient, tmp_path: Path
) -> None:
    """The download breaks off (no final chunk) rather than ending as if the blob were the
    octets that arrived before the message went away."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
    body = line * (20 * 1024 * 1024 // len(line))
    message = b"From: Ann <ann@example.com>\r\nSubject: Big\r\n\r\n" + body
    other.append("INBOX", message)
    with BridgeServer(upstream.host, upstream.port, tmp_path, blob_chunk_size=4096) as server:
        jmap = server.client(*account)
        [email_id] = query(jmap)
        received = 0
        download = jmap.http.stream("GET", url(jmap, f"B{email_id}"))
        with pytest.raises(httpx.HTTPError), download as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            received += len(next(chunks))
            other.select_folder("INBOX")
            other.delete_messages(other.search("ALL"))
            other.expunge()
            for chunk in chunks:
                received += len(chunk)
        assert received < len(message)
        jmap.close()

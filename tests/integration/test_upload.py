"""Uploads (RFC 8620 §6.1), downloads of uploaded blobs, and Email/parse, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.jmap import CoreLimits
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.test_email import WITH_ATTACHMENT, query

SMALL_UPLOAD = 1000
SMALL_CONCURRENCY = 2
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4
PDF_BASE64 = base64.encodebytes(PDF).replace(b"\n", b"\r\n")

REPORT = (
    b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\n"
    b"Subject: Quarterly report\r\nDate: Tue, 01 Apr 2025 10:00:00 +0000\r\n"
    b"Message-ID: <report-q1@example.com>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    b"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Hello Bob, the report is attached.\r\n"
    b"--outer\r\nContent-Type: application/pdf; name=report.pdf\r\n"
    b"Content-Disposition: attachment; filename=report.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + PDF_BASE64 + b"--outer\r\n"
    b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
    b"From: Carol <carol@example.com>\r\nSubject: Forwarded note\r\n\r\n"
    b"The inner text.\r\n"
    b"--outer--\r\n"
)


@pytest.fixture(scope="module")
def small_bridge(
    upstream: Dovecot, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeServer]:
    """A bridge of its own with tiny upload limits (the shared one keeps the defaults)."""
    server = BridgeServer(upstream.host, upstream.port, tmp_path_factory.mktemp("small"))
    server.bridge.limits = CoreLimits(
        max_size_upload=SMALL_UPLOAD, max_concurrent_upload=SMALL_CONCURRENCY
    )
    with server:
        yield server


@pytest.fixture
def stranger(bridge: BridgeServer, upstream: Dovecot) -> Iterator[JmapClient]:
    """Another user of the same bridge."""
    client = bridge.client(*upstream.spare.pop(0))  # type: ignore[attr-defined]
    yield client
    client.close()


def upload_url(jmap: JmapClient, account_id: str | None = None) -> str:
    return jmap.session["uploadUrl"].format(accountId=account_id or jmap.account_id)


def download_url(jmap: JmapClient, blob_id: str, name: str, media_type: str) -> str:
    return jmap.session["downloadUrl"].format(
        accountId=jmap.account_id, blobId=blob_id, name=name, type=media_type
    )


def upload(jmap: JmapClient, data: bytes, media_type: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": media_type} if media_type else {}
    response = jmap.http.post(upload_url(jmap), content=data, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def active_uploads(server: BridgeServer, username: str) -> int:
    slots = getattr(server.app.state, "upload_slots", None)  # made on the first upload
    return slots.active(username) if slots is not None else 0


def parse(jmap: JmapClient, blob_ids: list[str], **args: Any) -> dict[str, Any]:
    return jmap.call("Email/parse", {"blobIds": blob_ids, **args})


def test_upload_then_download(jmap: JmapClient) -> None:
    data = bytes(range(256)) * 5000  # over one read chunk, and not text
    blob = upload(jmap, data, "image/png")
    assert blob["accountId"] == jmap.account_id
    assert blob["type"] == "image/png" and blob["size"] == len(data)
    assert blob["blobId"].startswith("U")
    response = jmap.http.get(download_url(jmap, blob["blobId"], "picture.png", "image/png"))
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert "picture.png" in response.headers["content-disposition"]


def test_upload_type_defaults_and_parameters(jmap: JmapClient) -> None:
    assert upload(jmap, b"")["type"] == "application/octet-stream"
    assert upload(jmap, b"")["size"] == 0
    assert upload(jmap, b"hi", "text/plain; charset=utf-8")["type"] == "text/plain; charset=utf-8"
    assert upload(jmap, b"hi", "not a media type")["type"] == "application/octet-stream"


def test_identical_uploads_are_separate_blobs(jmap: JmapClient) -> None:
    first, second = upload(jmap, b"same", "text/plain"), upload(jmap, b"same", "text/plain")
    assert first["blobId"] != second["blobId"]


def test_wrong_account_is_not_found(jmap: JmapClient, stranger: JmapClient) -> None:
    for account_id in ("nobody", stranger.account_id):
        response = jmap.http.post(upload_url(jmap, account_id), content=b"data")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404


def test_upload_needs_authentication(bridge: BridgeServer, jmap: JmapClient) -> None:
    response = httpx.post(upload_url(jmap), content=b"data")
    assert response.status_code == 401


def test_another_users_upload_is_not_found(jmap: JmapClient, stranger: JmapClient) -> None:
    blob = upload(jmap, REPORT, "message/rfc822")
    url = stranger.session["downloadUrl"].format(
        accountId=stranger.account_id, blobId=blob["blobId"], name="x", type="text/plain"
    )
    assert stranger.http.get(url).status_code == 404
    assert parse(stranger, [blob["blobId"]])["notFound"] == [blob["blobId"]]
    part = blob["blobId"] + "_1"
    assert stranger.http.get(url.replace(blob["blobId"], part)).status_code == 404


def test_size_limit(small_bridge: BridgeServer, account: tuple[str, str]) -> None:
    jmap = small_bridge.client(*account)
    limits = jmap.session["capabilities"]["urn:ietf:params:jmap:core"]
    assert limits["maxSizeUpload"] == SMALL_UPLOAD
    assert upload(jmap, b"x" * SMALL_UPLOAD)["size"] == SMALL_UPLOAD

    def refused(response: httpx.Response) -> None:
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == "urn:ietf:params:jmap:error:limit"
        assert problem["limit"] == "maxSizeUpload"
        assert "maxSizeUpload" in problem["detail"]

    # Declared too large: refused before any of the body is read.
    refused(jmap.http.post(upload_url(jmap), content=b"x" * (SMALL_UPLOAD + 1)))

    # Not declared (chunked): refused as soon as the stream passes the limit.
    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b"y" * 600

    refused(jmap.http.post(upload_url(jmap), content=chunks()))
    # Nothing of the refused uploads stays behind.
    user = small_bridge.bridge.users.get(account[0])
    assert sorted(p.name for p in Path(user.uploads.directory).iterdir() if p.name[0] == ".") == []
    jmap.close()


def test_concurrent_upload_limit(small_bridge: BridgeServer, account: tuple[str, str]) -> None:
    jmap = small_bridge.client(*account)
    url = upload_url(jmap)

    async def run() -> None:
        release = asyncio.Event()

        async def held_body() -> AsyncIterator[bytes]:
            yield b"first half "
            await release.wait()
            yield b"second half"

        async with httpx.AsyncClient(auth=account, timeout=30) as client:
            held = [
                asyncio.create_task(client.post(url, content=held_body()))
                for _ in range(SMALL_CONCURRENCY)
            ]
            # An upload holds its slot once the server has its headers: wait for that, or an
            # upload sent now could take a slot first and turn a held one away instead.
            for _ in range(500):
                if active_uploads(small_bridge, account[0]) == SMALL_CONCURRENCY:
                    break
                await asyncio.sleep(0.01)
            extra = await client.post(url, content=b"extra")
            assert extra.status_code == 429, extra.text
            problem = extra.json()
            assert problem["type"] == "urn:ietf:params:jmap:error:limit"
            assert problem["limit"] == "maxConcurrentUpload"
            release.set()
            for response in await asyncio.gather(*held):
                assert response.status_code == 201, response.text
                assert response.json()["size"] == len(b"first half second half")
            # The slots are free again.
            assert (await client.post(url, content=b"after")).status_code == 201
            assert active_uploads(small_bridge, account[0]) == 0

    asyncio.run(run())
    jmap.close()


def test_parse_uploaded_message(jmap: JmapClient) -> None:
    blob_id = upload(jmap, REPORT, "message/rfc822")["blobId"]
    result = parse(jmap, [blob_id], fetchTextBodyValues=True)
    assert result["accountId"] == jmap.account_id
    assert result["notParsable"] is None and result["notFound"] is None
    email = result["parsed"][blob_id]
    assert email["subject"] == "Quarterly report"
    assert email["from"] == [{"name": "Alice", "email": "alice@example.com"}]
    assert email["messageId"] == ["report-q1@example.com"]
    assert email["sentAt"] == "2025-04-01T10:00:00Z"
    assert email["hasAttachment"] is True
    assert "id" not in email and "mailboxIds" not in email  # not in the default properties
    [text] = email["textBody"]
    assert email["bodyValues"][text["partId"]]["value"] == "Hello Bob, the report is attached."
    pdf, forwarded = email["attachments"]
    assert (pdf["name"], pdf["type"], pdf["size"]) == ("report.pdf", "application/pdf", len(PDF))
    assert pdf["blobId"] == f"{blob_id}_2"
    response = jmap.http.get(download_url(jmap, pdf["blobId"], "report.pdf", "application/pdf"))
    assert response.status_code == 200 and response.content == PDF
    assert response.headers["content-type"] == "application/pdf"

    # The attached message parses in turn, and its parts download by their blob ids.
    inner = parse(jmap, [forwarded["blobId"]], properties=["subject", "textBody", "blobId"])
    inner_email = inner["parsed"][forwarded["blobId"]]
    assert inner_email["subject"] == "Forwarded note"
    assert inner_email["blobId"] == forwarded["blobId"]
    [inner_text] = inner_email["textBody"]
    assert inner_text["partId"] == "3.1" and inner_text["blobId"] == f"{blob_id}_3-1"
    response = jmap.http.get(download_url(jmap, inner_text["blobId"], "a.txt", "text/plain"))
    assert response.status_code == 200 and response.content == b"The inner text."


def test_parse_metadata_properties(jmap: JmapClient) -> None:
    blob_id = upload(jmap, REPORT, "message/rfc822")["blobId"]
    properties = ["id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt",
                  "header:Subject:asText", "bodyStructure"]  # fmt: skip
    email = parse(jmap, [blob_id], properties=properties, bodyProperties=["partId", "type"])
    email = email["parsed"][blob_id]
    assert list(email) == properties
    assert email["blobId"] == blob_id and email["size"] == len(REPORT)
    for name in ("id", "threadId", "mailboxIds", "keywords", "receivedAt"):
        assert email[name] is None
    assert email["header:Subject:asText"] == "Quarterly report"
    assert email["bodyStructure"]["type"] == "multipart/mixed"
    assert set(email["bodyStructure"]["subParts"][0]) == {"partId", "type"}
    bad = parse(jmap, [blob_id], properties=["subject", "header:From:asDate"])
    assert bad["error"]["type"] == "invalidArguments"
    bad = parse(jmap, [blob_id], bodyProperties=["partId", "nonsense"])
    assert bad["error"]["type"] == "invalidArguments"


def test_parse_not_parsable_and_not_found(jmap: JmapClient) -> None:
    image = upload(jmap, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png")["blobId"]
    text = upload(jmap, b"just some words, no header at all\n", "text/plain")["blobId"]
    message = upload(jmap, REPORT, "message/rfc822")["blobId"]
    unknown = ["U" + "x" * 32, "Bnope", "nonsense", f"{message}_9", f"{message}_1--2"]
    result = parse(jmap, [image, text, message, *unknown, image])
    assert result["notParsable"] == [image, text]
    assert result["notFound"] == unknown
    assert list(result["parsed"]) == [message]
    assert parse(jmap, ["U" + "x" * 32]) == {
        "accountId": jmap.account_id, "parsed": None, "notParsable": None,
        "notFound": ["U" + "x" * 32],
    }  # fmt: skip


def test_parse_message_blobs(jmap: JmapClient, other: IMAPClient) -> None:
    """Message blobs (B...) parse too, attached messages in them included."""
    other.append("INBOX", WITH_ATTACHMENT)
    other.append("INBOX", REPORT)
    by_subject = {
        e["subject"]: e
        for e in jmap.call(
            "Email/get", {"ids": query(jmap), "properties": ["subject", "blobId", "attachments"]}
        )["list"]
    }
    report = by_subject["Quarterly report"]
    whole = parse(jmap, [report["blobId"], by_subject["Report"]["blobId"]])["parsed"]
    assert whole[report["blobId"]]["subject"] == "Quarterly report"
    assert whole[by_subject["Report"]["blobId"]]["subject"] == "Report"
    forwarded = report["attachments"][1]
    inner = parse(jmap, [forwarded["blobId"]], properties=["subject", "textBody"])
    inner_email = inner["parsed"][forwarded["blobId"]]
    assert inner_email["subject"] == "Forwarded note"
    [text] = inner_email["textBody"]
    assert text["blobId"] == f"{report['blobId']}_3-1"
    response = jmap.http.get(download_url(jmap, text["blobId"], "a.txt", "text/plain"))
    assert response.status_code == 200 and response.content == b"The inner text."
    pdf = by_subject["Report"]["attachments"][0]["blobId"]
    assert parse(jmap, [pdf])["notParsable"] == [pdf]


def test_upload_storage_makes_room_oldest_first(
    upstream: Dovecot, tmp_path: Path, account: tuple[str, str]
) -> None:
    """RFC 8620 §6: an upload over the user's quota deletes their oldest uploads first;
    one that cannot fit even then is refused."""
    with BridgeServer(
        upstream.host, upstream.port, tmp_path, max_upload_storage_per_user=2_500
    ) as server:
        jmap = server.client(*account)
        first, second, third = (upload(jmap, bytes([n]) * 1_000) for n in range(3))
        present = [
            jmap.http.get(download_url(jmap, blob["blobId"], "b", "x/y")).status_code
            for blob in (first, second, third)
        ]
        assert present == [404, 200, 200]
        refused = jmap.http.post(upload_url(jmap), content=b"x" * 3_000)
        assert refused.status_code == 413, refused.text
        assert refused.json()["limit"] == "maxUploadStorage"
        # Refused without deleting anything on its way.
        kept = jmap.http.get(download_url(jmap, third["blobId"], "b", "x/y"))
        assert kept.content == bytes([2]) * 1_000
        jmap.close()

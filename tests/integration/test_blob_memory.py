"""Memory per request stays bounded whatever the blob's size: a 40 MB attachment downloaded
six times at once, and an Email created with a 40 MB uploaded attachment.

bridge runs as its own process (``python -m bridge serve``, as the benchmarks start it), so
its resident set is its own: the peak (VmHWM) is reset once bridge is idle, and read after.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.mail.blobs import blob_id as whole_blob_id
from bridge.mail.blobs import parse_blob_id
from tests.bench.harness import BridgeProcess
from tests.integration.server import JmapClient

USER = ("memo", "memo-pw")
ATTACHMENT_SIZE = 40 * 1024 * 1024
PARALLEL = 6
# What a request may add to bridge's resident set, whatever the blob's size.
RSS_BUDGET_KIB = 100 * 1024


def attachment_octets() -> bytes:
    """40 MB that do not compress: random bytes, the same in every run."""
    seed = hashlib.sha256(b"attachment").digest()
    blocks = range(ATTACHMENT_SIZE // 32)
    return b"".join(hashlib.sha256(seed + i.to_bytes(4)).digest() for i in blocks)


def message_with(attachment: bytes) -> bytes:
    encoded = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (
        b"From: Ann <ann@example.com>\r\nTo: memo@example.com\r\nSubject: Big\r\n"
        b"Date: Tue, 01 Apr 2025 10:00:00 +0000\r\nMessage-ID: <big@example.com>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        b"--b\r\nContent-Type: application/octet-stream; name=big.bin\r\n"
        b"Content-Disposition: attachment; filename=big.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--b--\r\n"
    )


@pytest.fixture(scope="module")
def bridge_process(
    dovecot_factory: Callable[..., Dovecot],
) -> Iterator[tuple[Dovecot, BridgeProcess]]:
    upstream = dovecot_factory(users=dict([USER]))
    with BridgeProcess(upstream.port) as process:
        yield upstream, process


def reset_peak(process: BridgeProcess) -> int:
    """Reset bridge's peak resident set (VmHWM) to what it holds now; that, in KiB."""
    assert process.process is not None
    Path(f"/proc/{process.process.pid}/clear_refs").write_text("5")
    return process.memory_kib("VmRSS")


def download_url(jmap: JmapClient, blob_id: str) -> str:
    return jmap.session["downloadUrl"].format(
        accountId=jmap.account_id, blobId=blob_id, name="big.bin", type="application/octet-stream"
    )


def sha256_of_download(url: str, results: list[str]) -> None:
    digest = hashlib.sha256()
    with httpx.Client(auth=USER, timeout=300) as client, client.stream("GET", url) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_bytes():
            digest.update(chunk)
    results.append(digest.hexdigest())


def upload(jmap: JmapClient, data: bytes) -> str:
    """Upload ``data``; its blob id."""
    upload_url = jmap.session["uploadUrl"].format(accountId=jmap.account_id)
    uploaded = jmap.http.post(upload_url, content=data, timeout=300)
    assert uploaded.status_code == 201, uploaded.text
    blob_id: str = uploaded.json()["blobId"]
    return blob_id


def attachment_blob(jmap: JmapClient, email_id: str) -> str:
    got = jmap.call("Email/get", {"ids": [email_id], "properties": ["attachments"]})
    [attachment] = got["list"][0]["attachments"]
    return attachment["blobId"]


def delivered(
    upstream: Dovecot, process: BridgeProcess, attachment: bytes
) -> tuple[JmapClient, str]:
    """A message with ``attachment`` appended upstream: a client, and the attachment's blob."""
    imap = IMAPClient(upstream.host, port=upstream.port, ssl=False)
    imap.login(*USER)
    imap.append("INBOX", message_with(attachment))
    imap.logout()
    jmap = JmapClient(process.url, *USER)
    newest = {"sort": [{"property": "receivedAt", "isAscending": False}], "limit": 1}
    [email_id] = jmap.call("Email/query", newest)["ids"]
    return jmap, attachment_blob(jmap, email_id)


def test_parallel_downloads_of_a_big_attachment_stay_small(
    bridge_process: tuple[Dovecot, BridgeProcess],
) -> None:
    upstream, process = bridge_process
    attachment = attachment_octets()
    jmap, blob_id = delivered(upstream, process, attachment)
    idle = reset_peak(process)
    digests: list[str] = []
    threads = [
        threading.Thread(target=sha256_of_download, args=(download_url(jmap, blob_id), digests))
        for _ in range(PARALLEL)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    peak = process.memory_kib("VmHWM")
    print(f"{PARALLEL} downloads of {ATTACHMENT_SIZE:,} octets: idle {idle} KiB, peak {peak} KiB")
    assert digests == [hashlib.sha256(attachment).hexdigest()] * PARALLEL
    assert peak - idle < RSS_BUDGET_KIB
    jmap.close()


def test_creating_an_email_with_a_big_attachment_stays_small(
    bridge_process: tuple[Dovecot, BridgeProcess],
) -> None:
    _, process = bridge_process
    attachment = os.urandom(ATTACHMENT_SIZE)
    jmap = JmapClient(process.url, *USER)
    uploaded = upload(jmap, attachment)
    drafts = jmap.mailboxes()["INBOX"]["id"]
    idle = reset_peak(process)
    result = jmap.call("Email/set", {"create": {"big": {
        "mailboxIds": {drafts: True}, "subject": "Made big",
        "from": [{"email": "memo@example.com"}],
        "bodyValues": {"t": {"value": "See attached."}}, "textBody": [{"partId": "t"}],
        "attachments": [{"blobId": uploaded, "type": "application/zip",
                         "name": "big.zip"}],
    }}})  # fmt: skip
    peak = process.memory_kib("VmHWM")
    print(f"Email/set with {ATTACHMENT_SIZE:,} octets attached: idle {idle} KiB, peak {peak} KiB")
    assert result["created"]["big"]["size"] > ATTACHMENT_SIZE, result
    assert peak - idle < RSS_BUDGET_KIB
    # The attachment reads back byte for byte.
    digests: list[str] = []
    new_blob = attachment_blob(jmap, result["created"]["big"]["id"])
    sha256_of_download(download_url(jmap, new_blob), digests)
    assert digests == [hashlib.sha256(attachment).hexdigest()]
    jmap.close()


def test_importing_a_big_message_stays_small(
    bridge_process: tuple[Dovecot, BridgeProcess],
) -> None:
    _, process = bridge_process
    # Within maxSizeUpload (50,000,000 octets) once base64-encoded.
    raw = message_with(os.urandom(30 * 1024 * 1024)).replace(b"\r\n", b"\n")
    jmap = JmapClient(process.url, *USER)
    uploaded = upload(jmap, raw)
    inbox = jmap.mailboxes()["INBOX"]["id"]
    idle = reset_peak(process)
    result = jmap.call("Email/import", {"emails": {"big": {
        "blobId": uploaded, "mailboxIds": {inbox: True}}}})  # fmt: skip
    peak = process.memory_kib("VmHWM")
    print(f"Email/import of {len(raw):,} octets: idle {idle} KiB, peak {peak} KiB")
    # Bare LFs became CRLF on the way.
    assert result["created"]["big"]["size"] == len(raw) + raw.count(b"\n"), result
    assert peak - idle < RSS_BUDGET_KIB
    jmap.close()


def test_blob_methods_on_a_big_attachment_stay_small(
    bridge_process: tuple[Dovecot, BridgeProcess],
) -> None:
    """RFC 9404's Blob/get (size, digest) and Blob/upload (a blob made of another) read
    the 40 MB attachment as a stream, as a download does."""
    upstream, process = bridge_process
    attachment = attachment_octets()
    jmap, blob_id = delivered(upstream, process, attachment)
    using = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:blob"]
    idle = reset_peak(process)
    [[_, got, _], [_, made, _]] = jmap.request([
        ["Blob/get", {"accountId": jmap.account_id, "ids": [blob_id],
                      "properties": ["size", "digest:sha-256"]}, "g"],
        ["Blob/upload", {"accountId": jmap.account_id, "create": {"copy": {"data": [
            {"blobId": blob_id, "offset": 1000}]}}}, "u"],
    ], using=using)  # fmt: skip
    peak = process.memory_kib("VmHWM")
    print(f"Blob/get and Blob/upload of {ATTACHMENT_SIZE:,} octets: idle {idle} KiB, "
          f"peak {peak} KiB")  # fmt: skip
    [item] = got["list"]
    assert item["size"] == ATTACHMENT_SIZE
    assert item["digest:sha-256"] == base64.b64encode(hashlib.sha256(attachment).digest()).decode()
    assert made["created"]["copy"]["size"] == ATTACHMENT_SIZE - 1000, made
    assert peak - idle < RSS_BUDGET_KIB
    digests: list[str] = []
    sha256_of_download(download_url(jmap, made["created"]["copy"]["id"]), digests)
    assert digests == [hashlib.sha256(attachment[1000:]).hexdigest()]
    jmap.close()


def test_email_get_body_properties_of_a_big_message_stay_small(
    bridge_process: tuple[Dovecot, BridgeProcess],
) -> None:
    """Email/get of the body properties reads a large message into a spool file and its
    parts from there in windows: the 40 MB attachment is sized chunk by chunk, never held."""
    upstream, process = bridge_process
    attachment = attachment_octets()
    jmap, blob_id = delivered(upstream, process, attachment)
    email_id = parse_blob_id(blob_id)[0]
    idle = reset_peak(process)
    got = jmap.call("Email/get", {
        "ids": [email_id], "fetchAllBodyValues": True,
        "properties": ["size", "bodyValues", "bodyStructure", "textBody", "attachments",
                       "preview", "hasAttachment"],
    })  # fmt: skip
    peak = process.memory_kib("VmHWM")
    [email] = got["list"]
    print(f"Email/get body properties of {email['size']:,} octets: idle {idle} KiB, "
          f"peak {peak} KiB")  # fmt: skip
    assert email["bodyValues"] == {
        "1": {"value": "See attached.", "isEncodingProblem": False, "isTruncated": False}
    }
    [attachment_part] = email["attachments"]
    assert attachment_part["size"] == ATTACHMENT_SIZE
    assert email["preview"] == "See attached."
    assert peak - idle < RSS_BUDGET_KIB
    jmap.close()


def test_email_parse_of_a_big_message_stays_small(
    bridge_process: tuple[Dovecot, BridgeProcess],
) -> None:
    """Email/parse of a message blob spools it as Email/get does, and an uploaded one is
    parsed from the upload's file."""
    upstream, process = bridge_process
    jmap, blob_id = delivered(upstream, process, attachment_octets())
    message_blob = whole_blob_id(parse_blob_id(blob_id)[0])
    uploaded = upload(jmap, message_with(os.urandom(30 * 1024 * 1024)))
    for blob in (message_blob, uploaded):
        idle = reset_peak(process)
        parsed = jmap.call("Email/parse", {
            "blobIds": [blob], "fetchTextBodyValues": True,
            "properties": ["size", "subject", "bodyValues", "attachments"],
        })["parsed"][blob]  # fmt: skip
        peak = process.memory_kib("VmHWM")
        print(f"Email/parse of {parsed['size']:,} octets: idle {idle} KiB, peak {peak} KiB")
        assert parsed["subject"] == "Big"
        assert parsed["bodyValues"]["1"]["value"] == "See attached."
        assert parsed["attachments"][0]["size"] in (ATTACHMENT_SIZE, 30 * 1024 * 1024)
        assert peak - idle < RSS_BUDGET_KIB
    jmap.close()

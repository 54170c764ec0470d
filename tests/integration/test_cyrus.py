"""What Cyrus IMAP 3.6 does differently, seen through bridge: its object ids (MAILBOXID,
EMAILID, THREADID) become the JMAP ids, read right despite its MAILBOXID bug, and its
content-derived EMAILID never hides a second copy of a message inside one Email."""

from __future__ import annotations

import pytest
from imapclient import IMAPClient

from bridge.store.ids import derive_id
from tests.integration.server import JmapClient
from tests.integration.test_email import message, query
from tests.integration.upstreams import CYRUS

pytestmark = pytest.mark.upstreams(CYRUS)


def raw_fetch(other: IMAPClient, folder: str, items: list[str]) -> dict[int, dict[bytes, object]]:
    other.select_folder(folder, readonly=True)
    return other.fetch(other.search("ALL"), items)


def test_mailbox_ids_are_stable_over_100_requests(jmap: JmapClient, other: IMAPClient) -> None:
    """Cyrus 3.6.1 answers MAILBOXID asked beside other STATUS items with random bytes."""
    for number in range(5):
        other.create_folder(f"Stable{number}")
    first = {name: box["id"] for name, box in jmap.mailboxes().items()}
    for _ in range(99):
        result = jmap.call("Mailbox/get", {"ids": None, "properties": ["name", "parentId"]})
        assert "error" not in result, result
        assert sorted(m["id"] for m in result["list"]) == sorted(first.values())
    # The ids are the server's own MAILBOXIDs, asked alone.
    for name, mailbox_id in first.items():
        [server_id] = other.folder_status(name, ["MAILBOXID"])[b"MAILBOXID"]
        assert mailbox_id == derive_id("m", f"guid:{server_id.decode()}")


def test_email_ids_are_the_servers_emailids(jmap: JmapClient, other: IMAPClient) -> None:
    other.create_folder("Kept")
    for number in range(3):
        other.append("INBOX", message(number))
    other.select_folder("INBOX")
    other.copy([1], "Kept")
    fetched = raw_fetch(other, "INBOX", ["EMAILID"])
    email_ids = {data[b"EMAILID"][0].decode() for data in fetched.values()}
    assert len(email_ids) == 3
    ids = query(jmap)
    assert sorted(ids) == sorted(derive_id("e", f"oid:{e}") for e in email_ids)
    # The copy in Kept has the same EMAILID: one Email in two mailboxes.
    [(kept_id,)] = [data[b"EMAILID"] for data in raw_fetch(other, "Kept", ["EMAILID"]).values()]
    got = jmap.call("Email/get", {"ids": [derive_id("e", f"oid:{kept_id.decode()}")],
                                  "properties": ["mailboxIds"]})  # fmt: skip
    assert len(got["list"][0]["mailboxIds"]) == 2


def test_thread_ids_come_from_threadid(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", message(1, "Plans"))
    other.append("INBOX", message(2, "Re: Plans", refs="m1@example.com"))
    other.append("INBOX", message(3, "Other"))
    fetched = raw_fetch(other, "INBOX", ["EMAILID", "THREADID"])
    threads = {
        derive_id("e", f"oid:{data[b'EMAILID'][0].decode()}"):
            derive_id("t", f"tid:{data[b'THREADID'][0].decode()}")
        for data in fetched.values()
    }  # fmt: skip
    assert len(set(threads.values())) == 2  # Cyrus threads the reply with its parent
    got = jmap.call("Email/get", {"ids": list(threads), "properties": ["threadId"]})["list"]
    assert {e["id"]: e["threadId"] for e in got} == threads


def test_an_imported_duplicate_is_refused_and_leaves_no_copy(
    jmap: JmapClient, other: IMAPClient
) -> None:
    """Cyrus gives the same bytes the same EMAILID: a second message would be one Email
    with a copy no client could see. bridge answers alreadyExists (RFC 8621 §4.8) and
    removes exactly the message it appended."""
    other.append("INBOX", message(1, "Once"))
    [original] = query(jmap)
    blob = jmap.call("Email/get", {"ids": [original], "properties": ["blobId"]})["list"][0]
    boxes = jmap.mailboxes()
    state = jmap.call("Email/get", {"ids": []})["state"]
    result = jmap.call("Email/import", {"emails": {
        "same": {"blobId": blob["blobId"], "mailboxIds": {boxes["INBOX"]["id"]: True}},
        "there": {"blobId": blob["blobId"], "mailboxIds": {boxes["Archive"]["id"]: True}},
    }})  # fmt: skip
    assert result["created"] is None
    for refused in result["notCreated"].values():
        assert refused["type"] == "alreadyExists" and refused["existingId"] == original
    assert len(raw_fetch(other, "INBOX", ["UID"])) == 1
    assert raw_fetch(other, "Archive", ["UID"]) == {}
    assert query(jmap) == [original]
    got = jmap.call("Email/get", {"ids": [original], "properties": ["mailboxIds"]})["list"]
    assert got[0]["mailboxIds"] == {boxes["INBOX"]["id"]: True}
    assert jmap.call("Email/changes", {"sinceState": state})["created"] == []

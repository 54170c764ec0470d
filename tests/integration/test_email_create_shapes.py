"""Email/set creates with malformed properties (RFC 8621 §4.1, §4.6): each is refused on
its own with invalidProperties naming the property, while good creates in the same call
are created, reported, and stored exactly once."""

from __future__ import annotations

import time
from typing import Any

from imapclient import IMAPClient

from tests.integration.server import JmapClient

ADDRESS_BAD: list[Any] = [
    1, "a@b.c", {}, [1], [None], [""], [[]], [{}], [{"email": 1}], [{"email": ""}],
    [{"email": None}], [{"name": 5, "email": "a@b.c"}], [{"name": ["x"], "email": "a@b.c"}],
    [{"name": {}, "email": "a@b.c"}], [{"name": True, "email": "a@b.c"}],
    [{"email": "a@b.c", "extra": 1}], [{"email": "no at sign"}], [{"email": "a@b.c\r\nBcc: x"}],
    [{"name": "a\r\nBcc: x@y.z", "email": "a@b.c"}],
]  # fmt: skip
ID_BAD: list[Any] = [1, "x@y", [], [""], [None], [1], [["x@y"]], ["<x@y>"], ["no-at"],
                     ["a b@c"], [{}]]  # fmt: skip
PART_LIST_BAD: list[Any] = [1, "x", {}, [1], [None], [[]], [{"partId": 1}],
                            [{"partId": "t", "type": 5}], [{"partId": "t", "name": []}],
                            [{"partId": "t", "nonsense": 1}]]  # fmt: skip
BAD_VALUES: dict[str, list[Any]] = {
    "mailboxIds": [None, 1, [], "x", {}, {"nope": True}],
    "keywords": [1, [], "x", "", {"$seen": False}, {"$seen": 1}, {"bad(kw": True}],
    "receivedAt": [1, [], {}, "", "2025-01-01", "yesterday", "2025-01-01T10:00:00+02:00"],
    "from": ADDRESS_BAD, "to": ADDRESS_BAD, "cc": ADDRESS_BAD, "bcc": ADDRESS_BAD,
    "replyTo": ADDRESS_BAD, "sender": ADDRESS_BAD,
    "subject": [1, [], {}, True, "a\nb", "a\x00b"],
    "sentAt": [1, [], {}, "", "2025-01-01T00:00:00", "2025-13-01T00:00:00Z"],
    "messageId": ID_BAD, "inReplyTo": ID_BAD, "references": ID_BAD,
    "textBody": PART_LIST_BAD, "htmlBody": PART_LIST_BAD,
    "attachments": [1, "x", {}, [1], [None], [{"blobId": 1}], [{"blobId": ""}],
                    [{"blobId": "Ux", "name": 5}], [{"blobId": "Ux", "type": "multipart/mixed"}],
                    [{"blobId": "Ux", "type": "a b/c"}], [{"blobId": "Ux", "type": "text"}],
                    [{"blobId": "Ux", "cid": "<x@y>"}], [{"blobId": "Ux", "disposition": "a;b"}],
                    [{"blobId": "Ux", "charset": "x" * 300}], [{"blobId": "Ux", "language": "en"}]],
    "bodyValues": [1, [], "x", {"t": 1}, {"t": None}, {"t": {"value": 1}},
                   {"t": {"value": "x", "isTruncated": "no"}}, {"t": {"value": "x", "y": 1}}],
    "bodyStructure": [1, [], "x", {"type": 5}, {"subParts": 1}, {"type": "multipart/mixed",
                      "subParts": [1]}, {"partId": "t", "size": -1}],
    "header:X-Test:asText": [1, [], {}, None, "a\r\nBcc: x@y.z"],
    "header:X-Test:asRaw": [1, [], " a\r\nBcc: x@y.z"],
    "header:Bad Name:asRaw": ["x"],
    "header:X-Test:asAddresses": [[1], "a@b.c", [{"email": "no at sign"}]],
    "header:From:asText": ["Ann <ann@example.com>"],
    "header:X-Test:asDate": ["2025-01-01T00:00:00"],
    "header:X-Test:asURLs": [["a b"], "https://x"],
}  # fmt: skip


def good(drafts: str, tag: str) -> dict[str, Any]:
    return {
        "mailboxIds": {drafts: True}, "subject": tag, "messageId": [f"{tag}@shapes.test"],
        "from": [{"name": "Ann", "email": "ann@example.com"}],
        "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "fine"}},
    }  # fmt: skip


def test_each_malformed_create_fails_alone(jmap: JmapClient, other: IMAPClient) -> None:
    drafts = jmap.mailboxes()["Drafts"]["id"]
    creates: dict[str, Any] = {"good1": good(drafts, "good1")}
    expected_property: dict[str, str] = {}
    for prop, values in BAD_VALUES.items():
        for index, value in enumerate(values):
            obj = good(drafts, "bad")
            obj.pop("messageId")
            obj[prop] = value
            if prop in ("bodyStructure",):
                obj.pop("textBody")
            key = f"bad-{prop.replace(':', '-').replace(' ', '-')}-{index}"
            creates[key] = obj
            expected_property[key] = prop
    creates["good2"] = good(drafts, "good2")
    started = time.monotonic()
    result = jmap.call("Email/set", {"create": creates})
    assert "error" not in result, result
    assert time.monotonic() - started < 30
    assert set(result["created"]) == {"good1", "good2"}, result.get("notCreated")
    for key, prop in expected_property.items():
        error = result["notCreated"][key]
        assert error["type"] == "invalidProperties", (key, error)
        named = prop if not prop.startswith("header:Bad") else "header:Bad Name:asRaw"
        assert named in error["properties"], (key, error)
    other.select_folder("Drafts", readonly=True)
    for tag in ("good1", "good2"):
        assert len(other.search(["HEADER", "Message-ID", f"{tag}@shapes.test"])) == 1
    assert len(other.search("ALL")) == 2  # nothing of the bad ones


def test_long_subjects(jmap: JmapClient) -> None:
    drafts = jmap.mailboxes()["Drafts"]["id"]
    huge = "B " * 500_000  # 1 MB
    started = time.monotonic()
    refused = jmap.call(
        "Email/set", {"create": {"huge": {**good(drafts, "huge"), "subject": huge}}}
    )
    assert time.monotonic() - started < 1.0
    assert refused["notCreated"]["huge"]["type"] == "invalidProperties"
    assert refused["notCreated"]["huge"]["properties"] == ["subject"]
    # 10 KB, in words and in one word, ASCII and not: each reads back as it was written.
    subjects = {"words": "B " * 4999 + "B", "word": "x" * 10_000, "accents": "é è " * 2500}
    creates = {key: {**good(drafts, key), "subject": text} for key, text in subjects.items()}
    created = jmap.call("Email/set", {"create": creates})["created"]
    ids = {key: created[key]["id"] for key in subjects}
    got = jmap.call("Email/get", {"ids": list(ids.values()), "properties": ["subject"]})
    by_id = {email["id"]: email["subject"] for email in got["list"]}
    for key, text in subjects.items():
        assert by_id[ids[key]] == text, key


def test_a_long_attachment_name_round_trips(jmap: JmapClient) -> None:
    upload = jmap.session["uploadUrl"].format(accountId=jmap.account_id)
    blob = jmap.http.post(upload, content=b"data").json()["blobId"]
    drafts = jmap.mailboxes()["Drafts"]["id"]
    name = ('Rapport été, "final" ' * 500).strip()  # 11 KB, not ASCII, quotes, commas
    started = time.monotonic()
    result = jmap.call("Email/set", {"create": {"n": {
        **good(drafts, "named"),
        "attachments": [{"blobId": blob, "type": "application/pdf", "name": name,
                         "cid": "part1@x"}],
    }}})  # fmt: skip
    assert time.monotonic() - started < 5
    email_id = result["created"]["n"]["id"]
    got = jmap.call("Email/get", {"ids": [email_id], "properties": ["attachments"]})
    [attachment] = got["list"][0]["attachments"]
    assert (attachment["name"], attachment["cid"]) == (name, "part1@x")
    assert attachment["type"] == "application/pdf" and attachment["size"] == 4

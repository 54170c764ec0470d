"""Blob/copy (RFC 8620 §6.3) and the Blob capability (RFC 9404): Blob/upload, Blob/get and
Blob/lookup, over real HTTP and a real upstream."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from bridge.jmap import CoreLimits
from tests.integration.server import CORE, MAIL, BridgeServer, JmapClient
from tests.integration.test_email import WITH_ATTACHMENT, inbox_id, query
from tests.integration.upstreams import Upstream, every_upstream

BLOB = "urn:ietf:params:jmap:blob"
USING = [CORE, MAIL, BLOB]
pytestmark = every_upstream
FOX = "The quick brown fox jumped over the lazy dog."


def call(jmap: JmapClient, method: str, args: dict[str, Any]) -> dict[str, Any]:
    [[name, result, _]] = jmap.request(
        [[method, {"accountId": jmap.account_id, **args}, "0"]], using=USING
    )
    return result if name == method else {"error": result}


def upload(jmap: JmapClient, **creates: dict[str, Any]) -> dict[str, Any]:
    return call(jmap, "Blob/upload", {"create": creates})


def get(jmap: JmapClient, ids: list[str], **args: Any) -> list[dict[str, Any]]:
    result = call(jmap, "Blob/get", {"ids": ids, **args})
    assert "error" not in result, result
    return result["list"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_session_offers_the_blob_capability(jmap: JmapClient) -> None:
    assert jmap.session["capabilities"][BLOB] == {}
    offered = jmap.session["accounts"][jmap.account_id]["accountCapabilities"][BLOB]
    core = jmap.session["capabilities"][CORE]
    assert offered == {
        "maxSizeBlobSet": core["maxSizeUpload"],
        "maxDataSources": 64,
        "supportedTypeNames": ["Mailbox", "Thread", "Email"],
        "supportedDigestAlgorithms": ["sha", "sha-256", "sha-512"],
    }
    assert jmap.session["primaryAccounts"][BLOB] == jmap.account_id


def test_upload_joins_its_sources_and_get_reads_them_back(jmap: JmapClient) -> None:
    binary = bytes(range(256))
    made = upload(jmap, fox={"data": [{"data:asText": FOX}], "type": "text/plain"},
                  raw={"data": [{"data:asBase64": b64(binary)}]})  # fmt: skip
    assert made["notCreated"] == {}, made
    fox, raw = made["created"]["fox"], made["created"]["raw"]
    assert (fox["type"], fox["size"]) == ("text/plain", len(FOX))
    assert (raw["type"], raw["size"]) == ("application/octet-stream", 256)
    # One request: a blob made of literal text, ranges of blobs (one named by its
    # creation id) and base64, then read back.
    responses = jmap.request([
        ["Blob/upload", {"accountId": jmap.account_id, "create": {
            "h": {"data": [{"data:asText": "hat"}]}}}, "h"],
        ["Blob/upload", {"accountId": jmap.account_id, "create": {"cat": {"data": [
            {"data:asText": "How"},
            {"blobId": fox["id"], "offset": 3, "length": 7},
            {"data:asBase64": b64(b"was t")},
            {"blobId": "#h", "length": 1},
            {"data:asText": "at?"},
        ]}}}, "u"],
        ["Blob/get", {"accountId": jmap.account_id, "ids": ["#cat"],
                      "properties": ["data:asText", "size"]}, "g"],
    ], using=USING)  # fmt: skip
    [cat] = responses[2][1]["list"]
    assert cat == {"id": responses[1][1]["created"]["cat"]["id"],
                   "data:asText": "How quick was that?", "size": 19}  # fmt: skip
    # Every data property, every digest, against hashlib.
    [item] = get(
        jmap,
        [raw["id"]],
        properties=[
            "data:asText",
            "data:asBase64",
            "size",
            "digest:sha",
            "digest:sha-256",
            "digest:sha-512",
        ],
    )
    assert item["data:asText"] is None and item["isEncodingProblem"] is True
    assert base64.b64decode(item["data:asBase64"]) == binary and item["size"] == 256
    for name, algorithm in (("sha", "sha1"), ("sha-256", "sha256"), ("sha-512", "sha512")):
        assert item[f"digest:{name}"] == b64(hashlib.new(algorithm, binary).digest())
    # "data" picks text for UTF-8 and base64 for the rest; the default is data and size.
    [text, octets] = get(jmap, [fox["id"], raw["id"]])
    assert text == {"id": fox["id"], "data:asText": FOX, "size": len(FOX)}
    assert set(octets) == {"id", "data:asBase64", "isEncodingProblem", "size"}


def test_get_selects_a_range(jmap: JmapClient) -> None:
    fox = upload(jmap, f={"data": [{"data:asText": FOX}]})["created"]["f"]["id"]
    [item] = get(jmap, [fox], offset=4, length=9,
                 properties=["data:asText", "size", "digest:sha-256"])  # fmt: skip
    assert item["data:asText"] == "quick bro" and item["size"] == len(FOX)
    assert item["digest:sha-256"] == b64(hashlib.sha256(b"quick bro").digest())
    assert "isTruncated" not in item
    [short] = get(jmap, [fox], offset=40, length=100, properties=["data:asText"])
    assert short["data:asText"] == FOX[40:] and short["isTruncated"] is True
    [past] = get(jmap, [fox], offset=100, properties=["data:asBase64", "size"])
    assert past["data:asBase64"] == "" and past["isTruncated"] is True
    # A range that cuts a character in two is an encoding problem.
    cafe = upload(jmap, c={"data": [{"data:asText": "café"}]})["created"]["c"]["id"]
    [cut] = get(jmap, [cafe], length=4, properties=["data"])
    assert cut["isEncodingProblem"] is True and cut["data:asBase64"] == b64(b"caf\xc3")


def test_get_refuses_bad_arguments(jmap: JmapClient) -> None:
    fox = upload(jmap, f={"data": [{"data:asText": FOX}]})["created"]["f"]["id"]
    result = call(jmap, "Blob/get", {"ids": [fox, "Unothing", "junk"]})
    assert [b["id"] for b in result["list"]] == [fox]
    assert result["notFound"] == ["Unothing", "junk"]
    for args in ({"ids": None}, {"ids": [fox], "properties": ["digest:md5"]},
                 {"ids": [fox], "properties": ["colour"]}, {"ids": [fox], "offset": -1},
                 {"ids": [fox], "length": "9"}, {"ids": [fox], "extra": 1}):  # fmt: skip
        assert call(jmap, "Blob/get", args)["error"]["type"] == "invalidArguments", args


def test_upload_refuses_bad_sources_one_creation_at_a_time(jmap: JmapClient) -> None:
    fox = upload(jmap, f={"data": [{"data:asText": FOX}]})["created"]["f"]["id"]
    bad = {
        "two": {"data": [{"data:asText": "a", "data:asBase64": "YQ=="}]},
        "none": {"data": [{}]},
        "base64": {"data": [{"data:asBase64": "not base64!"}]},
        "past": {"data": [{"blobId": fox, "offset": 40, "length": 10}]},
        "start": {"data": [{"blobId": fox, "offset": 46}]},
        "missing": {"data": [{"blobId": "Unothing"}]},
        "stray": {"data": [{"data:asText": "a", "offset": 1}]},
        "many": {"data": [{"data:asText": "a"}] * 65},
        "unknown": {"data": [], "colour": "red"},
        "type": {"data": [], "type": "not a type"},
    }
    made = upload(jmap, fine={"data": [{"data:asText": "ok"}] * 64}, **bad)
    assert made["created"]["fine"]["size"] == 128
    assert set(made["notCreated"]) == set(bad)
    assert {e["type"] for e in made["notCreated"].values()} == {"invalidProperties"}
    # A range exactly to the end is fine; an empty blob too.
    edge = upload(jmap, end={"data": [{"blobId": fox, "offset": 40, "length": 5}]},
                  empty={"data": []})  # fmt: skip
    assert len(FOX) == 45 and edge["created"]["end"]["size"] == 5
    assert edge["created"]["empty"]["size"] == 0


def test_an_uploaded_message_imports(jmap: JmapClient) -> None:
    raw = "From: ann@example.com\r\nSubject: Made inline\r\n\r\nHello\r\n"
    blob = upload(jmap, m={"data": [{"data:asText": raw}]})["created"]["m"]["id"]
    imported = jmap.call("Email/import", {"emails": {"e": {
        "blobId": blob, "mailboxIds": {inbox_id(jmap): True}}}})["created"]["e"]  # fmt: skip
    [email] = jmap.call("Email/get", {"ids": [imported["id"]], "properties": ["subject"]})["list"]
    assert email["subject"] == "Made inline"


def test_lookup_finds_the_email_of_an_attachment(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", WITH_ATTACHMENT)
    [email_id] = query(jmap)
    [email] = jmap.call(
        "Email/get", {"ids": [email_id], "properties": ["attachments", "threadId", "blobId"]}
    )["list"]
    attachment = email["attachments"][0]["blobId"]
    fox = upload(jmap, f={"data": [{"data:asText": FOX}]})["created"]["f"]["id"]
    result = call(
        jmap,
        "Blob/lookup",
        {
            "typeNames": ["Email", "Mailbox", "Thread"],
            "ids": [attachment, email["blobId"], fox, "Bnothing"],
        },
    )
    expected = {"Email": [email_id], "Mailbox": [inbox_id(jmap)], "Thread": [email["threadId"]]}
    assert result["list"] == [
        {"id": attachment, "matchedIds": expected},
        {"id": email["blobId"], "matchedIds": expected},
        {"id": fox, "matchedIds": {"Email": [], "Mailbox": [], "Thread": []}},
    ]
    assert result["notFound"] == ["Bnothing"]
    # The attachment's data is the decoded part, as a download gives it.
    [data] = get(jmap, [attachment], properties=["data:asBase64"])
    assert data["data:asBase64"] == "JVBERi0xLjQK"
    # A part that is not there is not found.
    assert call(jmap, "Blob/lookup", {"typeNames": ["Email"], "ids": [email["blobId"] + "_9"]})[
        "notFound"] == [email["blobId"] + "_9"]  # fmt: skip
    unknown = call(jmap, "Blob/lookup", {"typeNames": ["Calendar"], "ids": [fox]})
    assert unknown["error"]["type"] == "unknownDataType"


def test_copy_within_the_one_account(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", WITH_ATTACHMENT)
    [email_id] = query(jmap)
    fox = upload(jmap, f={"data": [{"data:asText": FOX}]})["created"]["f"]["id"]
    message = f"B{email_id}"
    copied = jmap.call("Blob/copy", {"fromAccountId": jmap.account_id,
                                     "blobIds": [fox, message, "Unothing"]})  # fmt: skip
    assert copied["copied"] == {fox: fox, message: message}
    assert copied["notCopied"]["Unothing"]["type"] == "notFound"
    assert copied["fromAccountId"] == copied["accountId"] == jmap.account_id
    elsewhere = jmap.call("Blob/copy", {"fromAccountId": "other", "blobIds": [fox]})
    assert elsewhere["error"]["type"] == "fromAccountNotFound"
    to_other = jmap.request(
        [
            [
                "Blob/copy",
                {"fromAccountId": jmap.account_id, "accountId": "other", "blobIds": [fox]},
                "0",
            ]
        ]
    )
    assert to_other[0][1]["type"] == "accountNotFound"


def test_get_answers_with_at_most_max_size_upload_of_data(
    upstream: Upstream, account: tuple[str, str], tmp_path: Path
) -> None:
    """Blob/get holds the data it answers with: all of it, in one call, is bounded."""
    with BridgeServer(upstream.host, upstream.port, tmp_path) as server:
        server.bridge.engine.limits = CoreLimits(max_size_upload=100)
        jmap = server.client(*account)
        blob = upload(jmap, b={"data": [{"data:asText": "x" * 60}]})["created"]["b"]["id"]
        assert get(jmap, [blob], properties=["data"])[0]["data:asText"] == "x" * 60
        whole = upload(jmap, w={"data": [{"blobId": blob}] * 2})
        assert whole["notCreated"]["w"]["type"] == "tooLarge"
        both = {"ids": [blob, upload(jmap, c={"data": [{"blobId": blob}]})["created"]["c"]["id"]]}
        refused = call(jmap, "Blob/get", {**both, "properties": ["data:asBase64"]})
        assert refused["error"]["type"] == "requestTooLarge"
        # Sizes and digests hold no data: any number of blobs of any size.
        sized = call(jmap, "Blob/get", {**both, "properties": ["size", "digest:sha-256"]})
        assert [b["size"] for b in sized["list"]] == [60, 60]
        assert get(jmap, both["ids"], properties=["data"], length=50)[1]["data:asText"] == "x" * 50
        jmap.close()

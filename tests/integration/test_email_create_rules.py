"""Email/set creates as RFC 8621 §4.6 has them: header: properties on body parts, parts
from blobs, every settable header form, the constraints refused as invalidProperties, text
that reads back exactly, and Message-IDs at the user's domain. Each Email is read back by
Email/get and, as the upstream stores it, by another IMAP client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from tests.integration.server import BridgeServer, JmapClient
from tests.integration.upstreams import Upstream, every_upstream

pytestmark = every_upstream


def create(jmap: JmapClient, obj: dict[str, Any]) -> dict[str, Any]:
    """The created (or notCreated) entry of one create, in Drafts."""
    drafts = jmap.mailboxes()["Drafts"]["id"]
    result = jmap.call("Email/set", {"create": {"c": {"mailboxIds": {drafts: True}, **obj}}})
    assert "error" not in result, result
    return (result.get("created") or result["notCreated"])["c"]


def raw_header(other: IMAPClient, message_id: str) -> str:
    """The header block of the message with this Message-ID in Drafts, as stored."""
    other.select_folder("Drafts", readonly=True)
    uids = other.search(["HEADER", "Message-ID", message_id])
    assert len(uids) == 1
    raw = other.fetch(uids, ["BODY.PEEK[]"])[uids[0]][b"BODY[]"]
    return raw.decode().split("\r\n\r\n", 1)[0]


def get(jmap: JmapClient, email_id: str, properties: list[str], **args: Any) -> dict[str, Any]:
    result = jmap.call("Email/get", {"ids": [email_id], "properties": properties, **args})
    return result["list"][0]


def text(value: str) -> dict[str, Any]:
    return {"textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": value}}}


def test_header_properties_on_the_root_part_are_the_messages(
    jmap: JmapClient, other: IMAPClient
) -> None:
    created = create(jmap, {
        "bodyStructure": {"partId": "t", "type": "text/plain", "language": ["en", "fr"],
                          "header:From": " Ann <ann@root.test>",
                          "header:Subject:asText": "Déjà vu",
                          "header:Message-ID": " <root-1@root.test>"},
        "bodyValues": {"t": {"value": "Hello"}},
    })  # fmt: skip
    email = get(jmap, created["id"], ["from", "subject", "messageId", "bodyValues",
                                      "textBody"], fetchTextBodyValues=True)  # fmt: skip
    assert email["from"] == [{"name": "Ann", "email": "ann@root.test"}]
    assert email["subject"] == "Déjà vu"
    assert email["messageId"] == ["root-1@root.test"]
    assert email["textBody"][0]["language"] == ["en", "fr"]
    assert next(iter(email["bodyValues"].values()))["value"] == "Hello"
    header = raw_header(other, "root-1@root.test")
    assert "\r\nContent-Language: en, fr" in "\r\n" + header
    assert header.lower().count("\r\nfrom:") + header.lower().startswith("from:") == 1


def test_a_field_given_twice_is_refused(jmap: JmapClient) -> None:
    refusals = {
        "subject": {"subject": "a", "header:Subject:asText": "b", **text("x")},
        "root": {"subject": "a", "bodyStructure": {"partId": "t", "header:Subject": " b"},
                 "bodyValues": {"t": {"value": "x"}}},
        "date": {"sentAt": "2024-01-01T00:00:00Z", "header:Date": " Mon, 1 Jan 2024 00:00:00 +0000",
                 **text("x")},
        "forms": {"header:X-A": " a", "header:x-a:asText": "b", **text("x")},
        "language": {"bodyStructure": {"partId": "t", "language": ["en"],
                                       "header:Content-Language": " de"},
                     "bodyValues": {"t": {"value": "x"}}},
    }  # fmt: skip
    for key, obj in refusals.items():
        assert create(jmap, obj)["type"] == "invalidProperties", key


def test_what_rfc_8621_forbids_on_parts_is_refused(jmap: JmapClient) -> None:
    part = {"partId": "t", "type": "text/plain"}
    refusals = {
        "cte": {**part, "header:Content-Transfer-Encoding": " base64"},
        "headers": {**part, "headers": [{"name": "X-A", "value": "b"}]},
        "empty-headers": {**part, "headers": []},
        "size": {**part, "size": 5},
        "charset": {**part, "charset": "utf-8"},
        "both-ids": {**part, "blobId": "Gnothing"},
        "neither-id": {"type": "text/plain"},
        "content-type": {**part, "header:Content-Type": " text/html"},
    }
    for key, root in refusals.items():
        refused = create(jmap, {"bodyStructure": root, "bodyValues": {"t": {"value": "x"}}})
        assert refused["type"] == "invalidProperties", key
        assert refused["properties"] == ["bodyStructure"], key
    refused = create(jmap, {"header:Subject:asAddresses": [{"email": "a@b.c"}], **text("x")})
    assert refused["properties"] == ["header:Subject:asAddresses"]


def test_date_and_message_id_given_raw(jmap: JmapClient, other: IMAPClient) -> None:
    created = create(
        jmap,
        {
            "header:Date": " Tue, 2 Jan 2024 03:04:05 +0100",
            "header:Message-ID": " <raw-1@raw.test>",
            **text("x"),
        },
    )
    email = get(jmap, created["id"], ["sentAt", "messageId"])
    assert email == {"id": created["id"], "sentAt": "2024-01-02T03:04:05+01:00",
                     "messageId": ["raw-1@raw.test"]}  # fmt: skip
    header = "\r\n" + raw_header(other, "raw-1@raw.test").lower()
    assert header.count("\r\ndate:") == 1
    assert header.count("\r\nmessage-id:") == 1


def test_several_fields_of_one_name(jmap: JmapClient, other: IMAPClient) -> None:
    created = create(
        jmap,
        {
            "messageId": ["all-1@all.test"],
            "header:X-Tag:all": [" one", " two", " three"],
            "header:Comments:asText:all": ["première", "second"],
            **text("x"),
        },
    )
    email = get(jmap, created["id"], ["header:X-Tag:all", "header:Comments:asText:all",
                                      "header:X-Tag"])  # fmt: skip
    assert email["header:X-Tag:all"] == [" one", " two", " three"]
    assert email["header:Comments:asText:all"] == ["première", "second"]
    assert email["header:X-Tag"] == " three"
    assert raw_header(other, "all-1@all.test").count("X-Tag:") == 3


def test_a_part_from_a_blob(jmap: JmapClient) -> None:
    missing = create(jmap, {"textBody": [{"blobId": "Gmissing", "type": "text/plain"}],
                            "attachments": [{"blobId": "Gmissing2"}]})  # fmt: skip
    assert missing["type"] == "blobNotFound", missing
    assert sorted(missing["notFound"]) == ["Gmissing", "Gmissing2"]
    upload = jmap.session["uploadUrl"].format(accountId=jmap.account_id)
    blob = jmap.http.post(upload, content="Grüße\n".encode("latin-1")).json()["blobId"]
    created = create(jmap, {"textBody": [{"blobId": blob, "type": "text/plain",
                                          "charset": "iso-8859-1"}]})  # fmt: skip
    email = get(jmap, created["id"], ["textBody", "attachments", "bodyValues"],
                fetchTextBodyValues=True)  # fmt: skip
    assert email["attachments"] == []
    assert email["textBody"][0]["charset"] == "iso-8859-1"
    assert email["bodyValues"][email["textBody"][0]["partId"]]["value"] == "Grüße\n"


def test_text_reads_back_exactly(jmap: JmapClient) -> None:
    values = {"plain": "Hello", "ending": "Hello\n", "spaces": "a  \nb ", "empty": "",
              "separator": "a\u2028b\nc",
              "long": "é" * 200}  # fmt: skip
    for key, value in values.items():
        created = create(jmap, {
            "textBody": [{"partId": "t"}], "htmlBody": [{"partId": "h"}],
            "bodyValues": {"t": {"value": value}, "h": {"value": f"<p>{value}</p>"}},
        })  # fmt: skip
        email = get(jmap, created["id"], ["textBody", "htmlBody", "bodyValues"],
                    fetchAllBodyValues=True)  # fmt: skip
        got = email["bodyValues"]
        assert got[email["textBody"][0]["partId"]]["value"] == value, key
        assert got[email["htmlBody"][0]["partId"]]["value"] == f"<p>{value}</p>", key
    created = create(jmap, text("Hello"))
    email = get(jmap, created["id"], ["bodyValues"], fetchAllBodyValues=True)
    assert list(email["bodyValues"].values()) == [
        {"value": "Hello", "isEncodingProblem": False, "isTruncated": False}
    ]


def test_get_with_no_properties_gives_the_id(jmap: JmapClient) -> None:
    created = create(jmap, text("x"))
    assert get(jmap, created["id"], []) == {"id": created["id"]}


def message_id_of(jmap: JmapClient, obj: dict[str, Any]) -> str:
    created = create(jmap, {**text("x"), **obj})
    return get(jmap, created["id"], ["messageId"])["messageId"][0]


def test_message_ids_are_at_the_users_domain(
    jmap: JmapClient, upstream: Upstream, account: tuple[str, str], tmp_path: Path
) -> None:
    # The login is no address and no mail domain is set: the From address's domain.
    made = message_id_of(jmap, {"from": [{"email": "ann@From.Example"}]})
    assert made.endswith("@from.example")
    assert message_id_of(jmap, {}).endswith("@jmap-bridge.invalid")
    domain = "users.example"
    with BridgeServer(upstream.host, upstream.port, tmp_path, mail_domain=domain) as server:
        client = server.client(*account)
        made = message_id_of(client, {"from": [{"email": "ann@from.example"}]})
        assert made.endswith("@users.example")
        client.close()


def test_an_attachment_from_a_body_value(jmap: JmapClient) -> None:
    created = create(jmap, {
        **text("see attached"),
        "attachments": [{"partId": "a", "type": "text/csv", "name": "rows.csv"}],
        "bodyValues": {"t": {"value": "see attached"}, "a": {"value": "a,b\n1,2\n"}},
    })  # fmt: skip
    email = get(jmap, created["id"], ["attachments", "bodyValues"], fetchAllBodyValues=True)
    [attachment] = email["attachments"]
    assert (attachment["type"], attachment["name"], attachment["disposition"]) == (
        "text/csv", "rows.csv", "attachment")  # fmt: skip
    assert email["bodyValues"][attachment["partId"]]["value"] == "a,b\n1,2\n"


def test_a_body_structure_is_written_as_given(jmap: JmapClient) -> None:
    upload = jmap.session["uploadUrl"].format(accountId=jmap.account_id)
    html = jmap.http.post(upload, content=b"<p>hi</p>").json()["blobId"]
    created = create(jmap, {"bodyStructure": {"blobId": html, "type": "text/html"}})
    email = get(jmap, created["id"], ["htmlBody", "attachments", "bodyStructure"])
    assert email["attachments"] == []
    assert email["htmlBody"][0]["disposition"] is None
    assert email["bodyStructure"]["type"] == "text/html"


def test_header_properties_in_every_form(jmap: JmapClient) -> None:
    given = {
        "header:To:asAddresses": [{"name": "Zoë", "email": "zoe@ex.test"}],
        "header:X-Team:asGroupedAddresses": [
            {"name": "Team", "addresses": [{"name": None, "email": "a@ex.test"}]},
            {"name": None, "addresses": [{"name": "Bo", "email": "bo@ex.test"}]},
        ],
        "header:References:asMessageIds": ["one@ex.test", "two@ex.test"],
        "header:Resent-Date:asDate": "2024-02-03T04:05:06+01:00",
        "header:List-Unsubscribe:asURLs": ["https://ex.test/u", "mailto:u@ex.test"],
        "header:X-Seen:asDate:all": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],
    }
    created = create(jmap, {**given, **text("x")})
    email = get(jmap, created["id"], [*given, "to", "references"])
    assert {key: email[key] for key in given} == given
    assert email["to"] == given["header:To:asAddresses"]
    assert email["references"] == ["one@ex.test", "two@ex.test"]

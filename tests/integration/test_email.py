"""Email/get, /changes, /query, /queryChanges and Thread/* over real HTTP and real Dovecot."""

from __future__ import annotations

from datetime import UTC, datetime

from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.upstreams import every_upstream

pytestmark = every_upstream


def message(
    number: int,
    subject: str = "Hello",
    sender: str = "Ann <ann@example.com>",
    refs: str = "",
    body: str = "plain body",
) -> bytes:
    headers = [
        f"From: {sender}",
        "To: Bob <bob@example.com>",
        f"Subject: {subject}",
        f"Message-ID: <m{number}@example.com>",
        f"Date: Mon, 0{number % 9 + 1} Jun 2026 10:00:00 +0000",
    ]
    if refs:
        headers += [f"In-Reply-To: <{refs}>", f"References: <{refs}>"]
    return ("\r\n".join(headers) + f"\r\n\r\n{body} {number}\r\n").encode()


WITH_ATTACHMENT = (
    b"From: Carol <carol@example.com>\r\nTo: bob@example.com\r\nSubject: Report\r\n"
    b"Message-ID: <report@example.com>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
    b"--b1\r\nContent-Type: application/pdf; name=report.pdf\r\n"
    b"Content-Disposition: attachment; filename=report.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
)


def at(day: int) -> datetime:
    return datetime(2026, 6, day, 12, 0, tzinfo=UTC)


def seed(other: IMAPClient) -> None:
    other.append("INBOX", message(1), msg_time=at(1))
    other.append("INBOX", message(2, "Re: Hello", refs="m1@example.com"), msg_time=at(2))
    other.append("INBOX", message(3, "Lunch?", "Dan <dan@example.com>"), flags=[b"\\Seen"],
                 msg_time=at(3))  # fmt: skip
    other.append("INBOX", WITH_ATTACHMENT, flags=[b"\\Flagged"], msg_time=at(4))


def query(jmap: JmapClient, **args: object) -> list[str]:
    result = jmap.call("Email/query", args)
    assert "error" not in result, result
    return result["ids"]


def inbox_id(jmap: JmapClient) -> str:
    return jmap.mailboxes()["INBOX"]["id"]


def test_first_page_and_list_view(jmap: JmapClient, other: IMAPClient) -> None:
    seed(other)
    inbox = inbox_id(jmap)
    responses = jmap.request(
        [
            ["Email/query", {"accountId": jmap.account_id, "filter": {"inMailbox": inbox},
                             "sort": [{"property": "receivedAt", "isAscending": False}],
                             "limit": 3, "calculateTotal": True}, "q"],
            ["Email/get", {"accountId": jmap.account_id,
                           "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                           "properties": ["threadId", "mailboxIds", "keywords", "from",
                                          "subject", "receivedAt", "size", "preview",
                                          "hasAttachment"]}, "g"],
        ]
    )  # fmt: skip
    page = responses[0][1]
    assert page["total"] == 4 and len(page["ids"]) == 3 and page["position"] == 0
    emails = responses[1][1]["list"]
    assert [e["subject"] for e in emails] == ["Report", "Lunch?", "Re: Hello"]
    report, lunch, reply = emails
    assert report["hasAttachment"] is True and lunch["hasAttachment"] is False
    assert report["keywords"] == {"$flagged": True}
    assert lunch["keywords"] == {"$seen": True}
    assert lunch["from"] == [{"name": "Dan", "email": "dan@example.com"}]
    assert lunch["receivedAt"] == "2026-06-03T12:00:00Z"
    assert lunch["preview"].startswith("plain body 3")
    assert report["mailboxIds"] == {inbox: True}
    assert reply["size"] > 0
    # The second page, and the same view again from the cache.
    rest = query(jmap, filter={"inMailbox": inbox}, sort=[{"property": "receivedAt",
                 "isAscending": False}], position=3)  # fmt: skip
    assert len(rest) == 1 and rest[0] not in page["ids"]
    again = jmap.call("Email/get", {"ids": page["ids"], "properties": ["subject", "preview"]})
    assert [e["subject"] for e in again["list"]] == ["Report", "Lunch?", "Re: Hello"]


def test_body_properties_and_values(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", WITH_ATTACHMENT)
    [email_id] = query(jmap)
    email = jmap.call(
        "Email/get",
        {"ids": [email_id], "fetchTextBodyValues": True,
         "properties": ["bodyStructure", "textBody", "attachments", "bodyValues",
                        "header:Subject:asText", "header:X-Missing", "messageId"]},
    )["list"][0]  # fmt: skip
    assert email["messageId"] == ["report@example.com"]
    assert email["header:Subject:asText"] == "Report"
    assert email["header:X-Missing"] is None
    [text] = email["textBody"]
    assert email["bodyValues"][text["partId"]]["value"].startswith("See attached.")
    [pdf] = email["attachments"]
    assert pdf["name"] == "report.pdf" and pdf["type"] == "application/pdf"
    assert email["bodyStructure"]["type"] == "multipart/mixed"
    bad = jmap.call("Email/get", {"ids": [email_id], "properties": ["colour"]})
    assert bad["error"]["type"] == "invalidArguments"


def test_header_properties_alone_read_the_same_as_with_the_body(
    jmap: JmapClient, other: IMAPClient
) -> None:
    """Asked for alone, header properties come from the header (BODY.PEEK[HEADER]); they
    must read exactly as when the whole message is parsed for a body property beside them."""
    folded = (
        b"From: =?UTF-8?Q?Ren=C3=A9?= <rene@example.com>, ann@example.com\r\n"
        b"Subject: a long\r\n subject, folded\r\nX-Tag: one\r\nX-Tag: two\r\n"
        b"Message-ID: <folded@example.com>\r\nList-Post: <mailto:l@example.com>\r\n\r\nbody\r\n"
    )
    other.append("INBOX", WITH_ATTACHMENT)
    other.append("INBOX", folded)
    other.append("INBOX", b"Subject: no body at all\r\n\r\n")
    ids = query(jmap)
    header_properties = [
        "headers", "header:From:asAddresses", "header:Subject:asText", "header:X-Tag:all",
        "header:X-Tag:asRaw:all", "header:List-Post:asURLs", "header:Message-ID:asMessageIds",
        "header:Content-Type", "header:X-Missing",
    ]  # fmt: skip
    alone = jmap.call("Email/get", {"ids": ids, "properties": header_properties})["list"]
    beside = jmap.call(
        "Email/get", {"ids": ids, "properties": [*header_properties, "bodyStructure"]}
    )["list"]
    assert len(alone) == 3
    for email in beside:
        del email["bodyStructure"]
    assert alone == beside
    tags = {tuple(e["header:X-Tag:all"]) for e in alone}
    assert (" one", " two") in tags


def test_threads(jmap: JmapClient, other: IMAPClient) -> None:
    seed(other)
    other.append("INBOX", message(9, "Another subject", refs="m1@example.com"))
    emails = jmap.call("Email/get", {"ids": query(jmap), "properties": ["threadId", "subject"]})[
        "list"
    ]
    by_subject = {e["subject"]: e["threadId"] for e in emails}
    assert by_subject["Hello"] == by_subject["Re: Hello"]
    assert by_subject["Lunch?"] != by_subject["Hello"]
    # Same references but another subject: a new conversation (RFC 8621 §3).
    assert by_subject["Another subject"] != by_subject["Hello"]
    threads = jmap.call("Thread/get", {"ids": [by_subject["Hello"], "nope"]})
    [thread] = threads["list"]
    assert len(thread["emailIds"]) == 2 and threads["notFound"] == ["nope"]
    # No properties asked: only the id (RFC 8620 §5.1).
    bare = jmap.call("Thread/get", {"ids": [by_subject["Hello"]], "properties": []})
    assert bare["list"] == [{"id": by_subject["Hello"]}]
    inbox = jmap.mailboxes()["INBOX"]
    assert inbox["totalThreads"] == 4 and inbox["totalEmails"] == 5


def test_move_copy_expunge_and_flags_by_another_client(jmap: JmapClient, other: IMAPClient) -> None:
    seed(other)
    boxes = jmap.mailboxes()
    inbox, archive = boxes["INBOX"]["id"], boxes["Archive"]["id"]
    ids = {e["subject"]: e["id"] for e in jmap.call(
        "Email/get", {"ids": query(jmap), "properties": ["subject"]})["list"]}  # fmt: skip
    state = jmap.call("Email/get", {"ids": []})["state"]

    other.select_folder("INBOX")
    uid_of = {
        data[b"ENVELOPE"].subject.decode(): uid
        for uid, data in other.fetch(other.search("ALL"), ["ENVELOPE"]).items()
    }
    other.move([uid_of["Lunch?"]], "Archive")
    other.copy([uid_of["Report"]], "Archive")
    other.add_flags([uid_of["Hello"]], [b"\\Seen", b"$Important"])
    changes = jmap.call("Email/changes", {"sinceState": state})
    assert sorted(changes["updated"]) == sorted([ids["Lunch?"], ids["Report"], ids["Hello"]])
    assert changes["created"] == [] and changes["destroyed"] == []
    got = {e["id"]: e for e in jmap.call(
        "Email/get", {"ids": list(ids.values()), "properties": ["mailboxIds", "keywords"]}
    )["list"]}  # fmt: skip
    assert got[ids["Lunch?"]]["mailboxIds"] == {archive: True}  # same id after MOVE
    assert got[ids["Report"]]["mailboxIds"] == {inbox: True, archive: True}  # one Email
    assert got[ids["Hello"]]["keywords"] == {"$seen": True, "$important": True}

    state = changes["newState"]
    other.select_folder("INBOX")
    other.delete_messages([uid_of["Report"]])
    other.expunge()
    other.select_folder("Archive")
    lunch_uid = next(uid for uid, data in other.fetch(other.search("ALL"), ["ENVELOPE"]).items()
                     if data[b"ENVELOPE"].subject == b"Lunch?")  # fmt: skip
    other.delete_messages([lunch_uid])
    other.expunge()
    changes = jmap.call("Email/changes", {"sinceState": state})
    assert changes["updated"] == [ids["Report"]]  # still in Archive
    assert changes["destroyed"] == [ids["Lunch?"]]  # gone from its last mailbox
    assert jmap.call("Email/get", {"ids": [ids["Lunch?"]]})["notFound"] == [ids["Lunch?"]]


def test_query_filters_sorts_and_collapse(jmap: JmapClient, other: IMAPClient) -> None:
    seed(other)
    inbox = inbox_id(jmap)
    subjects = {e["id"]: e["subject"] for e in jmap.call(
        "Email/get", {"ids": query(jmap), "properties": ["subject"]})["list"]}  # fmt: skip

    def names(**args: object) -> list[str]:
        return [subjects[i] for i in query(jmap, **args)]

    newest = [{"property": "receivedAt", "isAscending": False}]
    assert names(filter={"hasKeyword": "$seen"}) == ["Lunch?"]
    assert set(names(filter={"notKeyword": "$seen"})) == {"Hello", "Re: Hello", "Report"}
    assert names(filter={"from": "dan@example.com"}) == ["Lunch?"]
    assert names(filter={"text": "attached"}) == ["Report"]
    assert names(filter={"subject": "hello"}, sort=newest) == ["Re: Hello", "Hello"]
    assert names(filter={"hasAttachment": True}) == ["Report"]
    assert names(filter={"after": "2026-06-03T00:00:00Z"}, sort=newest) == ["Report", "Lunch?"]
    assert names(filter={"before": "2026-06-02T00:00:00Z"}) == ["Hello"]
    assert names(filter={"operator": "NOT", "conditions": [{"inMailbox": inbox}]}) == []
    either = names(filter={"operator": "OR", "conditions": [{"hasKeyword": "$flagged"},
                                                            {"from": "dan"}]})  # fmt: skip
    assert set(either) == {"Report", "Lunch?"}
    assert names(filter={"inMailbox": inbox}, sort=[{"property": "subject"}]) == [
        "Hello",
        "Re: Hello",
        "Lunch?",
        "Report",
    ]  # base subject, then the newest first
    collapsed = names(filter={"inMailbox": inbox}, sort=newest, collapseThreads=True)
    assert collapsed == ["Report", "Lunch?", "Re: Hello"]
    flagged_first = names(sort=[{"property": "hasKeyword", "keyword": "$flagged",
                                 "isAscending": False}, *newest])  # fmt: skip
    assert flagged_first[0] == "Report"
    unsupported = jmap.call("Email/query", {"filter": {"colour": "red"}})
    assert unsupported["error"]["type"] == "unsupportedFilter"
    bad_sort = jmap.call("Email/query", {"sort": [{"property": "colour"}]})
    assert bad_sort["error"]["type"] == "unsupportedSort"
    bad_date = jmap.call("Email/query", {"filter": {"before": "yesterday"}})
    assert bad_date["error"]["type"] == "invalidArguments"


def test_query_changes(jmap: JmapClient, other: IMAPClient) -> None:
    seed(other)
    inbox = inbox_id(jmap)
    args = {"filter": {"inMailbox": inbox},
            "sort": [{"property": "receivedAt", "isAscending": False}]}  # fmt: skip
    first = jmap.call("Email/query", args)
    other.append("INBOX", message(7, "Newest"), msg_time=at(7))
    changes = jmap.call(
        "Email/queryChanges",
        {**args, "sinceQueryState": first["queryState"], "calculateTotal": True},
    )
    now = jmap.call("Email/query", args)
    assert changes["total"] == 5 and changes["newQueryState"] == now["queryState"]
    assert changes["added"] == [{"id": now["ids"][0], "index": 0}]
    replayed = [i for i in first["ids"] if i not in changes["removed"]]
    for item in changes["added"]:
        replayed.insert(item["index"], item["id"])
    assert replayed == now["ids"]


def test_download_message_and_part(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", WITH_ATTACHMENT)
    [email_id] = query(jmap)
    email = jmap.call("Email/get", {"ids": [email_id], "properties": ["blobId", "attachments"]})
    email = email["list"][0]
    [pdf] = email["attachments"]
    template = jmap.session["downloadUrl"]

    def url(blob: str, name: str, media_type: str) -> str:
        return template.format(accountId=jmap.account_id, blobId=blob, name=name,
                               type=media_type)  # fmt: skip

    whole = jmap.http.get(url(email["blobId"], "message.eml", "message/rfc822"))
    assert whole.status_code == 200 and whole.content == WITH_ATTACHMENT
    assert whole.headers["content-type"].startswith("message/rfc822")
    assert "immutable" in whole.headers["cache-control"]
    part = jmap.http.get(url(pdf["blobId"], "Rapport été.pdf", "application/pdf"))
    assert part.status_code == 200 and part.content == b"%PDF-1.4\n"
    assert part.headers["content-type"] == "application/pdf"
    disposition = part.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "Rapport%20%C3%A9t%C3%A9.pdf" in disposition
    assert jmap.http.get(url("Bnope", "x", "text/plain")).status_code == 404
    wrong_account = template.format(accountId="someone", blobId=email["blobId"], name="x",
                                    type="text/plain")  # fmt: skip
    assert jmap.http.get(wrong_account).status_code == 404


def test_another_users_blob_is_not_found(
    jmap: JmapClient, other: IMAPClient, bridge: BridgeServer, upstream: Dovecot
) -> None:
    other.append("INBOX", WITH_ATTACHMENT)
    [email_id] = query(jmap)
    blob = jmap.call("Email/get", {"ids": [email_id], "properties": ["blobId"]})["list"][0]
    stranger = bridge.client(*upstream.spare.pop(0))
    url = jmap.session["downloadUrl"].format(
        accountId=stranger.account_id, blobId=blob["blobId"], name="x", type="text/plain"
    )
    assert stranger.http.get(url).status_code == 404
    stranger.close()


def test_search_snippets(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", message(1, "Budget <draft> & plan", body="the quarterly budget is due"),
                 msg_time=at(1))  # fmt: skip
    other.append("INBOX", message(2, "Lunch"), msg_time=at(2))
    ids = query(jmap, sort=[{"property": "receivedAt"}])
    result = jmap.call(
        "SearchSnippet/get", {"filter": {"text": "budget"}, "emailIds": [*ids, "nope"]}
    )
    by_id = {s["emailId"]: s for s in result["list"]}
    assert by_id[ids[0]]["subject"] == "<mark>Budget</mark> &lt;draft&gt; &amp; plan"
    assert by_id[ids[0]]["preview"] == "the quarterly <mark>budget</mark> is due 1"
    assert by_id[ids[1]] == {"emailId": ids[1], "subject": None, "preview": None}
    assert result["notFound"] == ["nope"]

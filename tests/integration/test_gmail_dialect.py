"""bridge speaking Gmail's dialect, against the emulation (bridge/demo/gmail/) with Gmail's
SMTP side: text search through X-GM-RAW, Mailbox/set on labels and system folders, and
one sent copy after an EmailSubmission."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import free_port
from bridge.demo.gmail import ALL_MAIL, SENT_MAIL, GmailFront, GmailSmtp, gmail_dovecot
from bridge.mail.capabilities import SUBMISSION
from tests.integration.conftest import _require_dovecot, logged_in
from tests.integration.server import USING, BridgeServer, JmapClient

DOMAIN = "gmail.test"
USERS = {"gwen": "gwen-pw", "gil": "gil-pw"}
USER = "gwen"


@pytest.fixture(scope="module")
def front() -> Iterator[GmailFront]:
    _require_dovecot()
    relay_port = free_port()
    with (
        gmail_dovecot(USERS, relay_port) as dovecot,
        GmailFront(dovecot) as front,
        GmailSmtp(front, DOMAIN, relay_port),
    ):
        yield front


@pytest.fixture(scope="module")
def bridge(front: GmailFront, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeServer]:
    with BridgeServer(
        front.host, front.port, Path(tmp_path_factory.mktemp("gmail-dialect")),
        submission_port=front.dovecot.submission_port, submission_tls="plain",
        mail_domain=DOMAIN,
    ) as server:  # fmt: skip
        yield server


@pytest.fixture
def jmap(bridge: BridgeServer) -> Iterator[JmapClient]:
    client = bridge.client(USER, USERS[USER])
    yield client
    client.close()


@pytest.fixture
def gmail(front: GmailFront) -> Iterator[IMAPClient]:
    with logged_in(front, USER, USERS[USER]) as client:
        yield client


def deliver(gmail: IMAPClient, subject: str, sender: str = "Ann Lee <ann@example.com>") -> int:
    """A message in INBOX (and All Mail); its INBOX UID."""
    message_id = f"<{subject.replace(' ', '.')}@example.com>"
    gmail.append(
        "INBOX",
        (
            f"From: {sender}\r\nTo: {USER}@{DOMAIN}\r\nCc: Carl <carl@example.org>\r\n"
            f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n\r\nhello there\r\n"
        ).encode(),
    )
    gmail.select_folder("INBOX")
    return max(gmail.search(["HEADER", "Message-ID", message_id]))


def subjects(jmap: JmapClient, filter_: dict[str, Any]) -> set[str]:
    found = jmap.call("Email/query", {"filter": filter_})
    assert "ids" in found, found
    got = jmap.call("Email/get", {"ids": found["ids"], "properties": ["subject"]})
    return {email["subject"] for email in got["list"]}


# -- search -------------------------------------------------------------------------------


def test_text_conditions_go_to_gmails_search_as_quoted_phrases(
    jmap: JmapClient, gmail: IMAPClient, front: GmailFront
) -> None:
    deliver(gmail, "quarterly figures xq1")
    deliver(gmail, "holiday plans xq1", sender="Bo Diaz <bo@example.net>")
    del front.raw_queries[:]
    assert subjects(jmap, {"from": "Ann Lee", "subject": "xq1"}) == {"quarterly figures xq1"}
    assert subjects(jmap, {"text": '"holiday plans" xq1'}) == {"holiday plans xq1"}
    assert subjects(jmap, {"cc": "carl@example.org", "subject": "xq1"}) == {
        "quarterly figures xq1", "holiday plans xq1",
    }  # fmt: skip
    # Each token a quoted phrase behind its operator; a JMAP phrase stays one phrase.
    # One-word tokens of a header condition the cache's header index answers itself.
    assert {'"holiday plans" "xq1"', 'cc:"carl@example.org"'} <= set(front.raw_queries)
    assert 'subject:"xq1"' not in front.raw_queries
    assert 'from:"Ann" from:"Lee"' not in front.raw_queries


def test_a_clients_text_cannot_become_a_gmail_operator(
    jmap: JmapClient, gmail: IMAPClient, front: GmailFront
) -> None:
    starred = deliver(gmail, "starred or not xq2")
    gmail.add_flags([starred], [b"\\Flagged"])
    deliver(gmail, "talks about is:starred xq2")
    del front.raw_queries[:]
    # Unquoted, is:starred would find the starred message; as a phrase it is text.
    assert subjects(jmap, {"text": "is:starred", "subject": "xq2"}) == {
        "talks about is:starred xq2"
    }
    # A JMAP phrase holding an escaped quote: the quote cannot close Gmail's phrase.
    assert subjects(jmap, {"subject": '"xq2 \\" OR is:starred"'}) == set()
    # Words outside a phrase are phrases of their own, OR included.
    assert subjects(jmap, {"subject": 'xq2" OR "starred'}) == {"starred or not xq2"}
    assert '"is:starred"' in front.raw_queries
    # Whatever reached Gmail: outside quoted phrases only operators of bridge's own.
    for query in front.raw_queries:
        assert set(re.sub(r'"[^"]*"', "", query).split()) <= {"subject:", "from:"}, query


def test_to_body_and_header_stay_plain_search(
    jmap: JmapClient, gmail: IMAPClient, front: GmailFront
) -> None:
    deliver(gmail, "plain search xq3")
    del front.raw_queries[:]
    # Gmail's to: matches Cc too; it has no operator for the body alone or for a header.
    assert subjects(jmap, {"to": f"{USER}@{DOMAIN}", "subject": "xq3"}) == {"plain search xq3"}
    assert subjects(jmap, {"body": "hello", "subject": "xq3"}) == {"plain search xq3"}
    assert subjects(jmap, {"header": ["Message-ID", "plain.search.xq3"]}) == {"plain search xq3"}
    # The subject's one word the cache's header index answers: nothing went to X-GM-RAW.
    assert front.raw_queries == []


def test_the_emulations_to_matches_every_recipient(gmail: IMAPClient) -> None:
    uid = deliver(gmail, "recipients xq7")
    # Carl is on Cc only: Gmail's to: finds him anyway, its cc: too, its bcc: not.
    assert gmail.gmail_search('to:"carl@example.org" subject:xq7') == [uid]
    assert gmail.gmail_search('cc:"carl@example.org" subject:xq7') == [uid]
    assert gmail.gmail_search('bcc:"carl@example.org" subject:xq7') == []


# -- Mailbox/set --------------------------------------------------------------------------


def test_gmails_system_folders_cannot_be_renamed_or_destroyed(
    jmap: JmapClient, front: GmailFront
) -> None:
    boxes = jmap.mailboxes()
    system = ["INBOX", "[Gmail]", ALL_MAIL, SENT_MAIL, "[Gmail]/Drafts", "[Gmail]/Trash",
              "[Gmail]/Spam", "[Gmail]/Starred", "[Gmail]/Important"]  # fmt: skip
    ids = [boxes[name]["id"] for name in system]
    # Said up front, in myRights.
    assert not any(boxes[name]["myRights"]["mayRename"] for name in system)
    assert not any(boxes[name]["myRights"]["mayDelete"] for name in system)
    result = jmap.call("Mailbox/set", {
        "update": {box: {"name": "Mine"} for box in ids},
        "destroy": ids,
    })  # fmt: skip
    assert {box: error["type"] for box, error in result["notUpdated"].items()} == dict.fromkeys(
        ids, "forbidden"
    )
    assert {box: error["type"] for box, error in result["notDestroyed"].items()} == (
        dict.fromkeys(ids, "forbidden")
    )
    # Refused up front: the state did not move, and every folder is still there.
    assert result["oldState"] == result["newState"]
    assert set(system) <= set(jmap.mailboxes())


def test_renaming_and_deleting_a_label(
    jmap: JmapClient, gmail: IMAPClient, front: GmailFront
) -> None:
    uid = deliver(gmail, "labelled xq4")
    gmail.add_gmail_labels([uid], ["Projects"])
    boxes = jmap.mailboxes()
    label = boxes["Projects"]["id"]
    assert boxes["Projects"]["myRights"]["mayRename"] and boxes["Projects"]["myRights"]["mayDelete"]
    renamed = jmap.call("Mailbox/set", {"update": {label: {"name": "Plans"}}})
    assert renamed["updated"] == {label: None}
    assert gmail.get_gmail_labels([uid])[uid] and "Plans" in gmail.get_gmail_labels([uid])[uid]
    [email] = jmap.call("Email/get", {
        "ids": jmap.call("Email/query", {"filter": {"subject": "xq4"}})["ids"],
        "properties": ["mailboxIds"],
    })["list"]  # fmt: skip
    assert label in email["mailboxIds"]
    refused = jmap.call("Mailbox/set", {"destroy": [label]})
    assert refused["notDestroyed"][label]["type"] == "mailboxHasEmail"
    gone = jmap.call("Mailbox/set", {"destroy": [label], "onDestroyRemoveEmails": True})
    assert gone["destroyed"] == [label]
    # Gmail deletes the label, not the mail: the message keeps INBOX and All Mail.
    assert set(gmail.get_gmail_labels([uid])[uid]) == {"\\Inbox"}
    [email] = jmap.call("Email/get", {"ids": [email["id"]], "properties": ["mailboxIds"]})["list"]
    assert set(email["mailboxIds"]) == {boxes["INBOX"]["id"], boxes[ALL_MAIL]["id"]}


# -- EmailSubmission ------------------------------------------------------------------------


def sent_copies(front: GmailFront, message_id: str) -> list[int]:
    with logged_in(front, USER, USERS[USER]) as client:
        client.select_folder(SENT_MAIL, readonly=True)
        return client.search(["HEADER", "Message-ID", message_id])


def send(jmap: JmapClient, email_id: str, **on_success: Any) -> list[list[Any]]:
    identity = jmap.call("Identity/get", {"ids": None})["list"][0]["id"]
    return jmap.request(
        [["EmailSubmission/set", {
            "accountId": jmap.account_id,
            "create": {"send": {"identityId": identity, "emailId": email_id}},
            **on_success,
        }, "0"]],
        using=[*USING, SUBMISSION],
    )  # fmt: skip


def create_draft(jmap: JmapClient, subject: str, mailbox: str) -> tuple[str, str]:
    """A draft to gil, made with Email/set; (its id, its Message-ID)."""
    boxes = jmap.mailboxes()
    message_id = f"{subject.replace(' ', '.')}@{DOMAIN}"
    created = jmap.call("Email/set", {"create": {"d": {
        "mailboxIds": {boxes[mailbox]["id"]: True},
        "keywords": {"$draft": True, "$seen": True},
        "from": [{"email": f"{USER}@{DOMAIN}"}], "to": [{"email": f"gil@{DOMAIN}"}],
        "subject": subject, "messageId": [message_id],
        "bodyValues": {"b": {"value": "see you"}},
        "textBody": [{"partId": "b", "type": "text/plain"}],
    }}})["created"]["d"]  # fmt: skip
    return created["id"], f"<{message_id}>"


def test_a_draft_created_in_a_label_folder_is_created(jmap: JmapClient, front: GmailFront) -> None:
    # Gmail shows it in All Mail too, under the same X-GM-MSGID: that is no duplicate.
    email_id, message_id = create_draft(jmap, "new draft xq8", "[Gmail]/Drafts")
    boxes = jmap.mailboxes()
    [email] = jmap.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds"]})["list"]
    assert set(email["mailboxIds"]) == {boxes["[Gmail]/Drafts"]["id"], boxes[ALL_MAIL]["id"]}
    with logged_in(front, USER, USERS[USER]) as client:
        client.select_folder("[Gmail]/Drafts", readonly=True)
        assert len(client.search(["HEADER", "Message-ID", message_id])) == 1


def test_a_draft_filed_in_sent_after_sending_is_the_one_sent_copy(
    jmap: JmapClient, front: GmailFront
) -> None:
    email_id, message_id = create_draft(jmap, "draft to file xq5", "[Gmail]/Drafts")
    boxes = jmap.mailboxes()
    drafts, sent = boxes["[Gmail]/Drafts"]["id"], boxes[SENT_MAIL]["id"]
    responses = send(jmap, email_id, onSuccessUpdateEmail={"#send": {
        f"mailboxIds/{drafts}": None, f"mailboxIds/{sent}": True, "keywords/$draft": None,
    }})  # fmt: skip
    names = [name for name, _, _ in responses]
    assert names == ["EmailSubmission/set", "Email/set", "Email/set"], responses
    assert responses[1][1]["updated"] == {email_id: None}
    [gmails_copy] = responses[2][1]["destroyed"]
    assert gmails_copy != email_id
    # One copy in Sent Mail: the client's Email, still under its id.
    assert len(sent_copies(front, message_id)) == 1
    properties = ["mailboxIds", "keywords"]
    [email] = jmap.call("Email/get", {"ids": [email_id], "properties": properties})["list"]
    assert sent in email["mailboxIds"] and "$draft" not in email["keywords"]
    assert jmap.call("Email/get", {"ids": [gmails_copy]})["notFound"] == [gmails_copy]
    # It arrived at gil's.
    with logged_in(front, "gil", USERS["gil"]) as gil:
        gil.select_folder("INBOX", readonly=True)
        assert len(gil.search(["HEADER", "Message-ID", message_id])) == 1


def test_a_destroyed_draft_leaves_gmails_copy_as_the_sent_copy(
    jmap: JmapClient, front: GmailFront
) -> None:
    email_id, message_id = create_draft(jmap, "draft to drop xq6", "[Gmail]/Drafts")
    responses = send(jmap, email_id, onSuccessDestroyEmail=["#send"])
    assert [name for name, _, _ in responses] == ["EmailSubmission/set", "Email/set"]
    assert responses[1][1]["destroyed"] == [email_id]
    assert len(sent_copies(front, message_id)) == 1
    found = jmap.call("Email/query", {"filter": {"header": ["Message-ID", message_id]}})
    assert len(found["ids"]) == 1 and found["ids"] != [email_id]

"""bridge in front of the Gmail emulation (bridge/demo/gmail.py): a labelled message is one
Email, threads come from X-GM-THRID, and Gmail's special folders get their roles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.gmail import ALL_MAIL, GmailFront
from bridge.store.ids import derive_id
from tests.integration.conftest import GMAIL_USERS, logged_in
from tests.integration.server import BridgeServer, JmapClient

USER = "gus"


@pytest.fixture(scope="module")
def bridge_on_gmail(
    gmail_front: GmailFront, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeServer]:
    data = Path(tmp_path_factory.mktemp("gmail-data"))
    with BridgeServer(gmail_front.host, gmail_front.port, data) as server:
        yield server


@pytest.fixture
def jmap(bridge_on_gmail: BridgeServer) -> Iterator[JmapClient]:
    client = bridge_on_gmail.client(USER, GMAIL_USERS[USER])
    yield client
    client.close()


@pytest.fixture
def gmail(gmail_front: GmailFront) -> Iterator[IMAPClient]:
    with logged_in(gmail_front, USER, GMAIL_USERS[USER]) as client:
        yield client


def deliver(gmail: IMAPClient, subject: str, message_id: str, reply_to: str = "") -> int:
    thread = f"In-Reply-To: {reply_to}\r\nReferences: {reply_to}\r\n" if reply_to else ""
    gmail.append(
        "INBOX",
        (
            f"From: ann@example.com\r\nTo: gus@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\n{thread}\r\nhello\r\n"
        ).encode(),
    )
    gmail.select_folder("INBOX")
    return max(gmail.search(["HEADER", "Message-ID", message_id]))


def emails_with(jmap: JmapClient, message_id: str) -> list[dict]:
    found = jmap.call("Email/query", {"filter": {"header": ["Message-ID", message_id]}})
    got = jmap.call(
        "Email/get", {"ids": found["ids"], "properties": ["mailboxIds", "threadId", "subject"]}
    )
    return got["list"]


def test_gmail_folders_get_their_roles(jmap: JmapClient) -> None:
    roles = {path: box["role"] for path, box in jmap.mailboxes().items()}
    assert {
        "INBOX": "inbox",
        "[Gmail]/All Mail": "all",
        "[Gmail]/Sent Mail": "sent",
        "[Gmail]/Drafts": "drafts",
        "[Gmail]/Trash": "trash",
        "[Gmail]/Spam": "junk",
        # Views of a mark (\Flagged, \Important), not places to file mail in.
        "[Gmail]/Starred": None,
        "[Gmail]/Important": None,
    }.items() <= roles.items()


def test_a_message_with_three_labels_is_one_email(jmap: JmapClient, gmail: IMAPClient) -> None:
    uid = deliver(gmail, "three labels", "<labels@example.com>")
    gmail.add_gmail_labels([uid], ["Work", "Muy Importante"])
    boxes = jmap.mailboxes()
    (email,) = emails_with(jmap, "<labels@example.com>")
    # Three labels (INBOX, Work, Muy Importante) and All Mail, which holds every message.
    expected = {boxes[name]["id"] for name in ("INBOX", "Work", "Muy Importante", ALL_MAIL)}
    assert set(email["mailboxIds"]) == expected


def test_threads_are_gmails(jmap: JmapClient, gmail: IMAPClient) -> None:
    first = deliver(gmail, "plans", "<plans@example.com>")
    deliver(gmail, "Re: plans", "<plans-reply@example.com>", reply_to="<plans@example.com>")
    thread_number = gmail.fetch([first], ["X-GM-THRID"])[first][b"X-GM-THRID"]
    (start,) = emails_with(jmap, "<plans@example.com>")
    (reply,) = emails_with(jmap, "<plans-reply@example.com>")
    assert start["threadId"] == reply["threadId"] == derive_id("t", f"tid:{thread_number}")
    thread = jmap.call("Thread/get", {"ids": [start["threadId"]]})["list"][0]
    assert len(thread["emailIds"]) == 2


def test_destroy_deletes_through_the_trash(jmap: JmapClient, gmail: IMAPClient) -> None:
    uid = deliver(gmail, "delete me", "<delete-me@example.com>")
    gmail.add_gmail_labels([uid], ["Work"])
    (email,) = emails_with(jmap, "<delete-me@example.com>")
    result = jmap.call("Email/set", {"destroy": [email["id"]]})
    assert result["destroyed"] == [email["id"]]
    # Expunged from its folders alone, Gmail would have kept it (archived or trashed).
    for folder in ("INBOX", "Work", ALL_MAIL, "[Gmail]/Trash"):
        gmail.select_folder(folder)
        assert gmail.search(["HEADER", "Message-ID", "<delete-me@example.com>"]) == []
    assert jmap.call("Email/get", {"ids": [email["id"]]})["notFound"] == [email["id"]]
